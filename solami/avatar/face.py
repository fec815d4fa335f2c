"""The character's face: the 61 LiveLinkFace channels, their order, and name conversions.

The order is the column order of a LiveLinkFace CSV export (``Idle.csv``) and of the original
``face_ai.npz``: the 52 ARKit blendshapes grouped by face region (eyes, jaw, mouth, brows,
cheeks, nose, tongue), then head yaw/pitch/roll, then left and right eye yaw/pitch/roll.
Frames produced by every backend are ``(n_frames, 61)`` arrays in this order.
"""

from __future__ import annotations

# The 52 ARKit blendshapes in LiveLinkFace order (PascalCase, as in the CSV header).
ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft",
    "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight",
    "JawForward", "JawLeft", "JawRight", "JawOpen",
    "MouthClose", "MouthFunnel", "MouthPucker", "MouthLeft", "MouthRight",
    "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight",
    "MouthUpperUpLeft", "MouthUpperUpRight",
    "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight",
    "NoseSneerLeft", "NoseSneerRight",
    "TongueOut",
)  # fmt: skip

# Head and eye rotations LiveLinkFace appends after the blendshapes.
ROTATIONS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip

# Every channel of a face frame, in order.
CHANNELS: tuple[str, ...] = ARKIT_BLENDSHAPES + ROTATIONS
CHANNEL_COUNT = len(CHANNELS)  # 61
# The ARKit blendshapes lead the channel list.
BLENDSHAPE_COUNT = len(ARKIT_BLENDSHAPES)  # 52
# Column of each channel in a frame array.
INDEX: dict[str, int] = {name: i for i, name in enumerate(CHANNELS)}

# The mouth region: the channels lip-sync drives (used for quality measures).
MOUTH_CHANNELS: tuple[str, ...] = tuple(
    name for name in ARKIT_BLENDSHAPES if name.startswith(("Jaw", "Mouth"))
)


def lower_camel(name: str) -> str:
    """The ARKit/Unity spelling of a channel name: ``JawOpen`` -> ``jawOpen``."""
    return name[:1].lower() + name[1:]


def pascal(name: str) -> str:
    """The LiveLinkFace spelling of a channel name: ``jawOpen`` -> ``JawOpen``."""
    return name[:1].upper() + name[1:]


def indices(names: tuple[str, ...] | list[str]) -> list[int]:
    """Columns of ``names`` (PascalCase or lowerCamelCase) in a frame array."""
    return [INDEX[pascal(name)] for name in names]
