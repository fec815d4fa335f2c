"""The built-in clips of the motion library, authored as keyframes (see ``library.py``).

Angles are degrees, ``Rx @ Ry @ Rz``, local to the parent joint, on the SMPL-X rest frame
(Y up, facing +Z, the subject's left on +X). The elbows are hinges (Y only: negative bends the
left forearm forward, positive the right). Arm keys were solved for wrist targets on the
built-in skeleton (a 1.70 m adult) and rounded; ``tests/test_motion_library.py`` checks that
every clip does what its name says (hand above the head when waving, hands meeting when
clapping, ...).

=============  ======  ====  ===================================================================
clip           length  loop  what it shows
=============  ======  ====  ===================================================================
idle           4.0 s   yes   relaxed stance, breathing, slow weight shift and glances
wave           2.5 s         right hand raised beside the head, waving three times
nod            1.6 s         two nods
head_shake     1.8 s         head turned left and right three times
bow            2.6 s         bend forward from the waist, hold, come back up
clap           2.4 s         hands meet four times in front of the chest
shrug          1.8 s         shoulders up, forearms out with open hands, head tilt
point          2.2 s         right arm straight forward, index finger out
thinking       3.0 s         right hand at the chin, left arm across the waist, head tilt
celebrate      2.4 s         both fists up in a V with a small hop, twice
dance_step     2.0 s   yes   side step right and left on the beat, arms swinging, hips swaying
=============  ======  ====  ===================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

# Euler angles in degrees (x, y, z), applied as ``Rx @ Ry @ Rz``.
Euler = tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Key:
    """A keyframe: at ``t_s`` seconds, these joints take these Euler angles (degrees);
    ``root`` is the pelvis offset from its standing position, in metres; ``reset`` returns
    every joint not named to the relaxed pose."""

    t_s: float
    joints: Mapping[str, Euler] = dataclasses.field(default_factory=dict)
    root: Euler | None = None
    reset: bool = False


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """An authored clip: what it is called, what it means, how it moves."""

    name: str
    descriptions: tuple[str, ...]
    keys: tuple[Key, ...]
    loop: bool = False


FINGERS = ("index", "middle", "ring", "pinky")


def mirror(joints: Mapping[str, Euler]) -> dict[str, Euler]:
    """The right-side joints mirroring the given left-side ones (and the reverse)."""
    out: dict[str, Euler] = {}
    for name, (x, y, z) in joints.items():
        side, rest = name.split("_", 1)
        other = {"left": "right", "right": "left"}[side]
        out[f"{other}_{rest}"] = (x, -y, -z)
    return out


def both(joints: Mapping[str, Euler]) -> dict[str, Euler]:
    """Left-side joints and their mirror images."""
    return {**joints, **mirror(joints)}


def hand(side: str, curl: float, thumb: float | None = None) -> dict[str, Euler]:
    """Fingers of one hand curled by ``curl`` degrees per joint (0 open, 80 a fist)."""
    sign = -1.0 if side == "left" else 1.0
    joints = {f"{side}_{f}{i}": (0.0, 0.0, sign * curl) for f in FINGERS for i in (1, 2, 3)}
    thumb = curl / 2 if thumb is None else thumb
    joints.update({f"{side}_thumb{i}": (0.0, sign * thumb, 0.0) for i in (2, 3)})
    return joints


def crouch(degrees: float) -> dict[str, Euler]:
    """Both legs bent at hip, knee and ankle with the feet flat: the pelvis drops about
    0.78 m * (1 - cos(degrees))."""
    return both(
        {
            "left_hip": (-degrees, 0, 0),
            "left_knee": (2 * degrees, 0, 0),
            "left_ankle": (-degrees, 0, 0),
        }
    )


RELAXED: dict[str, Euler] = {
    **both({"left_shoulder": (0, -5, -72), "left_elbow": (0, -15, 0)}),
    **hand("left", 15),
    **hand("right", 15),
}

IDLE = ClipSpec(
    "idle",
    (
        "stand still",
        "idle",
        "breathe calmly",
        "wait patiently",
        "stand relaxed and listen",
        "do nothing",
    ),
    (
        Key(0.0),
        Key(1.0, {"head": (0, 4, 0), "spine2": (0, 0, 1)}, root=(0.008, 0, 0)),
        Key(2.0, {"head": (2, 0, 0), "spine2": (0, 0, 0)}, root=(0, 0, 0)),
        Key(3.0, {"head": (0, -4, 0), "spine2": (0, 0, -1)}, root=(-0.008, 0, 0)),
        Key(4.0, reset=True, root=(0, 0, 0)),
    ),
    loop=True,
)

_WAVE_IN = {"right_shoulder": (-61, 21, 5), "right_elbow": (0, 94, 0), "right_wrist": (0, 0, 10)}
_WAVE_OUT = {"right_shoulder": (-51, 13, -3), "right_elbow": (0, 49, 0), "right_wrist": (0, 0, -10)}
WAVE = ClipSpec(
    "wave",
    (
        "wave hello",
        "wave goodbye",
        "greet someone with a wave",
        "raise the right hand and wave",
        "say hi with a hand wave",
        "wave at someone",
    ),
    (
        Key(0.0),
        Key(0.45, {**_WAVE_IN, **hand("right", 0, 0), "head": (0, -5, 3)}),
        Key(0.75, _WAVE_OUT),
        Key(1.05, _WAVE_IN),
        Key(1.35, _WAVE_OUT),
        Key(1.65, _WAVE_IN),
        Key(1.95, _WAVE_OUT),
        Key(2.5, reset=True),
    ),
)

NOD = ClipSpec(
    "nod",
    (
        "nod",
        "nod yes",
        "agree by nodding",
        "nod the head in approval",
        "say yes",
        "I agree",
        "okay, sounds good",
    ),
    (
        Key(0.0),
        Key(0.3, {"head": (18, 0, 0), "neck": (6, 0, 0)}),
        Key(0.6, {"head": (-3, 0, 0), "neck": (0, 0, 0)}),
        Key(0.9, {"head": (16, 0, 0), "neck": (5, 0, 0)}),
        Key(1.2, {"head": (0, 0, 0), "neck": (0, 0, 0)}),
        Key(1.6, reset=True),
    ),
)

HEAD_SHAKE = ClipSpec(
    "head_shake",
    ("shake the head", "shake head no", "disagree", "refuse by shaking the head", "say no"),
    (
        Key(0.0),
        Key(0.25, {"head": (0, 22, 0), "neck": (0, 6, 0)}),
        Key(0.55, {"head": (0, -22, 0), "neck": (0, -6, 0)}),
        Key(0.85, {"head": (0, 20, 0), "neck": (0, 5, 0)}),
        Key(1.15, {"head": (0, -20, 0), "neck": (0, -5, 0)}),
        Key(1.4, {"head": (0, 0, 0), "neck": (0, 0, 0)}),
        Key(1.8, reset=True),
    ),
)

_BOW_DOWN = {
    "spine1": (20, 0, 0), "spine2": (15, 0, 0), "spine3": (12, 0, 0), "neck": (8, 0, 0),
    "head": (10, 0, 0), **both({"left_shoulder": (0, -12, -78)}), **crouch(9),
}  # fmt: skip
BOW = ClipSpec(
    "bow",
    (
        "bow",
        "take a bow",
        "bow politely",
        "bow forward to show respect",
        "thank the audience with a bow",
        "make a respectful bow",
    ),
    (
        Key(0.0),
        Key(0.9, _BOW_DOWN, root=(0, -0.0096, 0)),
        Key(1.5, _BOW_DOWN),
        Key(2.6, reset=True, root=(0, 0, 0)),
    ),
)

_CLAP_OPEN = {
    **both({"left_shoulder": (-27, -18, -70), "left_elbow": (0, -76, 0)}),
    **hand("left", 5, 0), **hand("right", 5, 0),
}  # fmt: skip
_CLAP_SHUT = both({"left_shoulder": (-43, -41, -86), "left_elbow": (0, -64, 0)})
CLAP = ClipSpec(
    "clap",
    ("clap", "clap hands", "applaud", "give a round of applause", "clap your hands happily"),
    (
        Key(0.0),
        Key(0.4, _CLAP_OPEN),
        Key(0.6, _CLAP_SHUT),
        Key(0.8, _CLAP_OPEN),
        Key(1.0, _CLAP_SHUT),
        Key(1.2, _CLAP_OPEN),
        Key(1.4, _CLAP_SHUT),
        Key(1.6, _CLAP_OPEN),
        Key(1.8, _CLAP_SHUT),
        Key(2.4, reset=True),
    ),
)

_SHRUG = {
    **both({"left_collar": (0, 0, 14), "left_shoulder": (-19, -1, -67), "left_elbow": (0, -40, 0),
            "left_wrist": (-60, 0, 0)}),
    **hand("left", 0, 0), **hand("right", 0, 0), "head": (0, 0, 9),
}  # fmt: skip
SHRUG = ClipSpec(
    "shrug",
    ("shrug", "shrug the shoulders", "I don't know", "express uncertainty", "who knows"),
    (Key(0.0), Key(0.5, _SHRUG), Key(1.1, _SHRUG), Key(1.8, reset=True)),
)

_POINT = {
    "right_shoulder": (-2, 92, -4), "right_elbow": (0, 12, 0), **hand("right", 75, 40),
    "right_index1": (0, 0, 0), "right_index2": (0, 0, 0), "right_index3": (0, 0, 0),
    "head": (0, -4, 0),
}  # fmt: skip
POINT = ClipSpec(
    "point",
    (
        "point forward",
        "point at something",
        "point at you",
        "show the direction with the finger",
        "point over there",
    ),
    (
        Key(0.0),
        Key(0.35, {"right_shoulder": (11, 59, 20), "right_elbow": (0, 57, 0)}),
        Key(0.7, _POINT),
        Key(1.6, _POINT),
        Key(2.2, reset=True),
    ),
)

_THINK = {
    "right_shoulder": (-43, 48, 80), "right_elbow": (0, 130, 0), **hand("right", 45),
    "left_shoulder": (38, -105, -12), "left_elbow": (0, -49, 0),
    "head": (6, 0, 8), "neck": (4, 0, 0),
}  # fmt: skip
THINKING = ClipSpec(
    "thinking",
    (
        "think",
        "thinking pose",
        "ponder with a hand on the chin",
        "hmm let me think",
        "consider the question carefully",
    ),
    (
        Key(0.0),
        Key(0.7, _THINK),
        Key(1.5, {"head": (8, 0, 12)}),
        Key(2.3, {"head": (6, 0, 8)}),
        Key(3.0, reset=True),
    ),
)

_CHEER = {
    **both({"left_shoulder": (0, -27, 67), "left_elbow": (0, -20, 0)}),
    **hand("left", 80), **hand("right", 80), "head": (-10, 0, 0),
}  # fmt: skip
_CHEER_LOW = both({"left_shoulder": (0, -20, 40), "left_elbow": (0, -70, 0)})
CELEBRATE = ClipSpec(
    "celebrate",
    ("celebrate", "cheer", "raise both arms in victory", "jump for joy", "hooray", "we did it"),
    (
        Key(0.0),
        Key(
            0.4,
            {**_CHEER_LOW, **hand("left", 80), **hand("right", 80), **crouch(20)},
            root=(0, -0.047, 0),
        ),
        Key(0.75, {**_CHEER, **crouch(0)}, root=(0, 0.08, 0)),
        Key(1.05, {**_CHEER_LOW, **crouch(18)}, root=(0, -0.038, 0)),
        Key(1.4, {**_CHEER, **crouch(0)}, root=(0, 0.08, 0)),
        Key(1.8, _CHEER, root=(0, 0, 0)),
        Key(2.4, reset=True),
    ),
)

_ARMS_BENT = both({"left_shoulder": (-9, -9, -71), "left_elbow": (0, -84, 0)})
_STEP_RIGHT = {
    **_ARMS_BENT, "left_shoulder": (-9, -25, -71), "right_shoulder": (-9, -7, 71),
    **crouch(0), "left_hip": (-8, 0, 6), "left_knee": (18, 0, 0),
    "spine2": (0, 0, 5), "head": (0, 0, -5),
}  # fmt: skip
_STEP_LEFT = {
    **_ARMS_BENT, "left_shoulder": (-9, 7, -71), "right_shoulder": (-9, 25, 71),
    **crouch(0), "right_hip": (-8, 0, -6), "right_knee": (18, 0, 0),
    "spine2": (0, 0, -5), "head": (0, 0, 5),
}  # fmt: skip
_CENTER = {**_ARMS_BENT, **crouch(15), "spine2": (0, 0, 0), "head": (0, 0, 0)}
DANCE_STEP = ClipSpec(
    "dance_step",
    (
        "dance",
        "do a little dance",
        "dance step",
        "groove to the music",
        "sway side to side",
        "bust a move",
    ),
    (
        Key(0.0, _CENTER, root=(0, -0.027, 0)),
        Key(0.5, _STEP_RIGHT, root=(-0.12, 0, 0)),
        Key(1.0, _CENTER, root=(0, -0.027, 0)),
        Key(1.5, _STEP_LEFT, root=(0.12, 0, 0)),
        Key(2.0, _CENTER, root=(0, -0.027, 0)),
    ),
    loop=True,
)

BUILT_IN_CLIPS = (
    IDLE, WAVE, NOD, HEAD_SHAKE, BOW, CLAP, SHRUG, POINT, THINKING, CELEBRATE, DANCE_STEP,
)  # fmt: skip
