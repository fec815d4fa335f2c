"""The motion library TextToMotion retrieves from: authored clips plus the user's own.

Built-in clips (``library_clips.py``) are keyframed joint rotations: each key sets Euler angles
(degrees, ``Rx @ Ry @ Rz``, local to the parent joint) for some joints and inherits the rest
from the previous key; the first key inherits the relaxed standing pose. Between keys every
joint turns along the shortest path (slerp) with ease-in-out (smoothstep) timing, and a
breathing layer (spine, collars, 4 s period) is added on top so that no clip is ever frozen.
Looping clips end on their first key.

User clips: a folder of ``<name>.npz`` (``poses`` (T, 165), ``trans`` (T, 3), Y-up, 30 fps,
optional boolean ``loop``) each with ``<name>.txt`` holding one description per line. They are
placed like the built-ins: starting at x = z = 0 facing +Z.

Built library (``solami motion library build``, dataset scale, e.g. HumanML3D + Inter-X): a
directory recognised by its ``manifest.json``; its clips replace the authored ones for retrieval
(the authored idle stays, to blend in and out of). Files:

- ``manifest.json``: ``{"format": "solami-motion-library", "version": 1, "fps": 30,
  "clips": N, "frames": F, "texts": M, "embedding_model": NAME, "embedding_dims": D}``.
- ``clips.jsonl``: N lines ``{"name", "source", "texts": [...]}`` (one or more texts each).
- ``poses.f32`` (F, 165) and ``trans.f32`` (F, 3): raw little-endian float32, every clip's
  frames one after the other (30 fps, Y-up SMPL-X, as stored in the source: placed at load);
  ``offsets.i64`` (N + 1): clip i is frames ``offsets[i]:offsets[i+1]``. Memory-mapped.
- ``embeddings.f32`` (M, D): unit text embeddings, one row per text in clips.jsonl order;
  ``text_clip.i32`` (M): the clip of each row.
- Optional (a library built before has none): ``descriptors.f32`` (N, K), each clip's motion
  descriptor for captioning (``captioner.describe`` on the built-in skeleton), named in the
  manifest by ``"descriptor": NAME, "descriptor_dims": K``.

A library whose files disagree with its manifest (counts, sizes) or whose embedding model or
dimension differ from the service's is refused at start (``LibraryFormatError``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from services.motion.features import Motion, apply_placement, placement_of
from services.motion.library_clips import BUILT_IN_CLIPS, RELAXED, ClipSpec, Euler
from services.motion.skeleton import BUILT_IN, Skeleton
from solami.avatar import rotations
from solami.avatar.rates import FPS
from solami.avatar.skeleton import JOINT_INDEX, NUM_JOINTS, POSE_DIMS

# Breathing layer: period (s) and amplitudes (degrees) of the spine and collar channels.
BREATH_PERIOD_S = 4.0
BREATH_SPINE_DEG = 1.2
BREATH_COLLAR_DEG = 0.8
# Shortest and longest accepted user clip, in frames.
MIN_CLIP_FRAMES = 2
MAX_USER_CLIP_FRAMES = 60 * FPS


@dataclasses.dataclass(frozen=True)
class LibraryClip:
    """A ready clip of the library."""

    name: str
    descriptions: tuple[str, ...]
    motion: Motion
    loop: bool
    source: str

    @property
    def duration_s(self) -> float:
        return self.motion.n_frames / FPS


def _pose_keys(spec: ClipSpec, base: Mapping[str, Euler]) -> tuple[np.ndarray, np.ndarray]:
    eulers, roots = [], []
    pose, root = dict(base), (0.0, 0.0, 0.0)
    for key in spec.keys:
        if key.reset:
            pose = dict(base)
        pose.update(key.joints)
        root = key.root if key.root is not None else root
        angles = np.zeros((NUM_JOINTS, 3))
        for joint, euler in pose.items():
            angles[JOINT_INDEX[joint]] = euler
        eulers.append(angles)
        roots.append(root)
    return np.array(eulers), np.array(roots, dtype=np.float64)


def _ease(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def render(spec: ClipSpec, base: Mapping[str, Euler], skeleton: Skeleton = BUILT_IN) -> Motion:
    """Samples an authored clip at 30 fps into an SMPL-X clip standing at the origin."""
    times = np.array([key.t_s for key in spec.keys])
    if len(times) < 2 or np.any(np.diff(times) <= 0) or times[0] != 0.0:
        raise ValueError(f"clip {spec.name}: keys must start at 0 s and increase")
    eulers, roots = _pose_keys(spec, base)
    keys = rotations.matrix_to_quat(rotations.euler_xyz_to_matrix(eulers))
    n = round(times[-1] * FPS) + (0 if spec.loop else 1)
    t = np.arange(n) / FPS
    segment = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    fraction = _ease(np.clip((t - times[segment]) / np.diff(times)[segment], 0.0, 1.0))
    quats = rotations.slerp(keys[segment], keys[segment + 1], fraction[:, None])
    offset = (1 - fraction[:, None]) * roots[segment] + fraction[:, None] * roots[segment + 1]
    breath = np.zeros((n, NUM_JOINTS, 3))
    wave = np.sin(2 * np.pi * t / BREATH_PERIOD_S)
    breath[:, JOINT_INDEX["spine3"], 0] = -BREATH_SPINE_DEG * wave
    breath[:, JOINT_INDEX["left_collar"], 2] = BREATH_COLLAR_DEG * wave
    breath[:, JOINT_INDEX["right_collar"], 2] = -BREATH_COLLAR_DEG * wave
    local = rotations.quat_to_matrix(quats) @ rotations.euler_xyz_to_matrix(breath)
    poses = rotations.matrix_to_axis_angle(local)
    trans = offset + np.array([0.0, skeleton.floor_to_pelvis_m, 0.0])
    return Motion(poses.reshape(n, POSE_DIMS), trans)


def load_user_clips(directory: Path, skeleton: Skeleton = BUILT_IN) -> list[LibraryClip]:
    """The user's clips in ``directory`` (see the module doc); a bad file raises ValueError
    naming it."""
    clips = []
    for path in sorted(directory.glob("*.npz")):
        captions = path.with_suffix(".txt")
        if not captions.is_file():
            raise ValueError(f"{path}: missing descriptions file {captions.name}")
        descriptions = tuple(
            line.strip() for line in captions.read_text().splitlines() if line.strip()
        )
        if not descriptions:
            raise ValueError(f"{captions}: no descriptions")
        with np.load(path, allow_pickle=False) as data:
            poses = np.asarray(data["poses"], dtype=np.float64)
            trans = np.asarray(data["trans"], dtype=np.float64)
            loop = bool(data["loop"]) if "loop" in data.files else False
        if poses.ndim != 2 or poses.shape[1] != POSE_DIMS or trans.shape != (len(poses), 3):
            raise ValueError(f"{path}: poses must be (T, 165) and trans (T, 3)")
        if not MIN_CLIP_FRAMES <= len(poses) <= MAX_USER_CLIP_FRAMES:
            raise ValueError(f"{path}: {len(poses)} frames, accepted 2 to {MAX_USER_CLIP_FRAMES}")
        if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
            raise ValueError(f"{path}: contains NaN or infinite values")
        motion = Motion(poses, trans)
        placement = placement_of(motion, skeleton)
        placement = dataclasses.replace(placement, offset=placement.offset * [1.0, 0.0, 1.0])
        clips.append(
            LibraryClip(
                path.stem, descriptions, apply_placement(motion, placement), loop, str(path)
            )
        )
    return clips


class MotionLibrary:
    """Named clips with their descriptions; ``idle`` is what others blend in and out of."""

    def __init__(self, clips: Sequence[LibraryClip]) -> None:
        self.clips = {clip.name: clip for clip in clips}
        if "idle" not in self.clips:
            raise ValueError("the motion library needs an 'idle' clip")

    @property
    def idle(self) -> LibraryClip:
        return self.clips["idle"]

    @classmethod
    def load(cls, user_dir: Path | None = None, skeleton: Skeleton = BUILT_IN) -> MotionLibrary:
        """The built-in clips, then the user's (a user clip replaces a built-in of its name)."""
        clips = [
            LibraryClip(
                spec.name, spec.descriptions, render(spec, RELAXED, skeleton), spec.loop, "built-in"
            )
            for spec in BUILT_IN_CLIPS
        ]
        if user_dir is not None:
            clips += load_user_clips(user_dir, skeleton)
        return cls(clips)

    def export(self, directory: Path) -> list[Path]:
        """Writes every clip as ``<name>.npz`` + ``<name>.txt`` (the user-clip format)."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for clip in self.clips.values():
            path = directory / f"{clip.name}.npz"
            np.savez(path, poses=clip.motion.poses, trans=clip.motion.trans, loop=clip.loop)
            path.with_suffix(".txt").write_text("\n".join(clip.descriptions) + "\n")
            written.append(path)
        return written


LIBRARY_FORMAT = "solami-motion-library"
LIBRARY_VERSION = 1
MANIFEST = "manifest.json"
# Optional file of the clips' motion descriptors.
DESCRIPTORS = "descriptors.f32"


class LibraryFormatError(ValueError):
    """A built library whose files do not match its manifest or the service's embedder."""


def is_built_library(directory: Path | None) -> bool:
    return directory is not None and (directory / MANIFEST).is_file()


def _raw(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    size = path.stat().st_size if path.is_file() else -1
    if size != expected:
        raise LibraryFormatError(f"{path}: {size} bytes, the manifest gives {shape} ({expected})")
    if expected == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


@dataclasses.dataclass(frozen=True)
class BuiltLibrary:
    """A built library (see the module doc), memory-mapped; clips are read when retrieved."""

    directory: Path
    names: tuple[str, ...]
    texts: tuple[str, ...]
    embeddings: np.ndarray  # (M, D) float32, unit rows
    text_clip: np.ndarray  # (M,) int32
    offsets: np.ndarray  # (N + 1,) int64
    poses: np.ndarray  # (F, 165) float32
    trans: np.ndarray  # (F, 3) float32
    embedding_model: str
    # (N, K) float32 motion descriptors and their name, when the build stored them.
    descriptors: np.ndarray | None = None
    descriptor: str = ""

    @classmethod
    def open(cls, directory: Path) -> BuiltLibrary:
        """Opens ``directory``; LibraryFormatError when its files disagree with the manifest."""
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
            if manifest.get("format") != LIBRARY_FORMAT or manifest.get("version") != 1:
                raise LibraryFormatError(f"{directory / MANIFEST}: not a {LIBRARY_FORMAT} v1")
            n, frames, m = int(manifest["clips"]), int(manifest["frames"]), int(manifest["texts"])
            dims, model = int(manifest["embedding_dims"]), str(manifest["embedding_model"])
            lines = (directory / "clips.jsonl").read_text().splitlines()
            entries = [json.loads(line) for line in lines if line.strip()]
        except (OSError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, LibraryFormatError):
                raise
            raise LibraryFormatError(f"{directory}: unreadable library ({exc})") from None
        if len(entries) != n:
            raise LibraryFormatError(
                f"{directory}: clips.jsonl has {len(entries)} clips, manifest {n}"
            )
        texts = tuple(text for entry in entries for text in entry["texts"])
        if len(texts) != m:
            raise LibraryFormatError(
                f"{directory}: clips.jsonl has {len(texts)} texts, manifest {m}"
            )
        offsets = _raw(directory / "offsets.i64", "<i8", (n + 1,))
        if offsets[0] != 0 or offsets[-1] != frames or np.any(np.diff(offsets) < MIN_CLIP_FRAMES):
            raise LibraryFormatError(f"{directory}/offsets.i64: does not split {frames} frames")
        descriptors, descriptor = None, str(manifest.get("descriptor", ""))
        if descriptor:
            try:
                shape = (n, int(manifest["descriptor_dims"]))
            except (KeyError, TypeError, ValueError):
                raise LibraryFormatError(f"{directory / MANIFEST}: no descriptor_dims") from None
            descriptors = _raw(directory / DESCRIPTORS, "<f4", shape)
        text_clip = _raw(directory / "text_clip.i32", "<i4", (m,))
        owners = np.repeat(np.arange(n), [len(entry["texts"]) for entry in entries])
        if not np.array_equal(np.asarray(text_clip), owners):
            raise LibraryFormatError(f"{directory}/text_clip.i32: does not match clips.jsonl")
        return cls(
            directory,
            tuple(entry["name"] for entry in entries),
            texts,
            _raw(directory / "embeddings.f32", "<f4", (m, dims)),
            np.asarray(text_clip),
            np.asarray(offsets),
            _raw(directory / "poses.f32", "<f4", (frames, POSE_DIMS)),
            _raw(directory / "trans.f32", "<f4", (frames, 3)),
            model,
            descriptors,
            descriptor,
        )

    def check_embedder(self, model: str, dims: int) -> None:
        """LibraryFormatError unless the index was built with this model and dimension."""
        if self.embedding_model != model or self.embeddings.shape[1] != dims:
            raise LibraryFormatError(
                f"{self.directory}: index built with {self.embedding_model} "
                f"({self.embeddings.shape[1]} dims), the service embeds with {model} "
                f"({dims} dims); rebuild the library with this model "
                "or set SOLAMI_MOTION_EMBEDDING_MODEL"
            )

    def clip(self, index: int, skeleton: Skeleton = BUILT_IN) -> LibraryClip:
        """Clip ``index`` placed like a user clip (x = z = 0, facing +Z)."""
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        motion = Motion(
            np.asarray(self.poses[start:end], np.float64),
            np.asarray(self.trans[start:end], np.float64),
        )
        placement = placement_of(motion, skeleton)
        placement = dataclasses.replace(placement, offset=placement.offset * [1.0, 0.0, 1.0])
        first = int(np.searchsorted(self.text_clip, index))
        last = int(np.searchsorted(self.text_clip, index, side="right"))
        return LibraryClip(
            self.names[index],
            self.texts[first:last],
            apply_placement(motion, placement),
            False,
            str(self.directory),
        )
