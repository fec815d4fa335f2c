"""Builds a motion library directory (``library.BuiltLibrary``) from a motion-text dataset.

    solami motion library build DATA --out LIB [--z-up] [--fps HZ] [--embedding-model DIR]
        [--device cuda]

DATA is searched recursively for SMPL-X ``.npz`` clips, read as the tokenizer training reads
them (``train.py``: frame rate from ``mocap_frame_rate`` / ``mocap_framerate`` / ``fps``, else
``--fps``, default 30; resampled to 30 fps by per-joint slerp; ``--z-up`` converts
Blender/AMASS Z-up data):

- ``poses`` (T, 165) + ``trans`` (T, 3) (our form, AMASS SMPL-X ``*_stageii.npz``), or the
  per-part SMPL-X keys (``root_orient``/``global_orient`` (T, 3), ``pose_body``/``body_pose``
  (T, 63), ``pose_hand`` (T, 90) or ``pose_lhand``/``left_hand_pose`` + ``pose_rhand``/
  ``right_hand_pose`` (T, 45 each), ``trans``/``transl``), the form of Inter-X's per-person
  ``motions/<id>/P1.npz`` / ``P2.npz`` (120 fps without a frame-rate key: build Inter-X with
  ``--fps 120``, as the original's ``raw_process_inter_x_1.py`` assumes); jaw and eyes are
  left at zero.

A clip's texts are the first of these files that exists: ``<clip>.txt`` next to it,
``DATA/texts/<clip>.txt`` (HumanML3D) or ``DATA/texts/<folder>.txt`` (Inter-X: both persons of
an interaction share its texts). One text per line; HumanML3D's ``caption#tokens#start#end`` is
cut to the caption; a caption tagged with a sub-segment (``start``/``end`` in seconds, not
0/0) belongs to a clip ``<clip>#<start>-<end>`` of those frames, the others to the whole clip.
HumanML3D's ``new_joint_vecs`` / ``new_joints`` are joint positions, not SMPL-X, and are not
read: point DATA at the AMASS SMPL-X npz the dataset was made from, with the texts alongside.

A clip that is unreadable, misshaped, non-finite, shorter than 2 frames or longer than 60 s,
or without texts is reported with its path and skipped; the build goes on. Each clip's motion
descriptor (``captioner.describe``, for CaptionMotion) is stored beside it. Texts are embedded
with the service's embedder (all-MiniLM-L6-v2 on CPU by default; another model, e.g. BGE-large,
from a directory on a GPU), so the index records that model's name and dimension.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from services.motion import captioner, features
from services.motion.backends.retrieval import TextEmbedder
from services.motion.features import Motion
from services.motion.library import (
    DESCRIPTORS,
    LIBRARY_FORMAT,
    LIBRARY_VERSION,
    MANIFEST,
    MAX_USER_CLIP_FRAMES,
    MIN_CLIP_FRAMES,
)
from services.motion.train import FRAME_RATE_KEYS, _frame_rate
from solami.avatar.rates import FPS
from solami.avatar.skeleton import POSE_DIMS

# Texts embedded per batch.
EMBED_BATCH = 256
_PARTS = (
    (("root_orient", "global_orient"), 3),
    (("pose_body", "body_pose"), 63),
)
_LEFT_HAND = ("pose_lhand", "left_hand_pose", "lhand_pose")
_RIGHT_HAND = ("pose_rhand", "right_hand_pose", "rhand_pose")


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What a build wrote and what it skipped (path, reason)."""

    clips: int
    frames: int
    texts: int
    skipped: tuple[tuple[str, str], ...]
    seconds: float


def _first(data: np.lib.npyio.NpzFile, keys: tuple[str, ...]) -> np.ndarray | None:
    for key in keys:
        if key in data.files:
            return np.asarray(data[key], dtype=np.float64)
    return None


def _poses(data: np.lib.npyio.NpzFile) -> np.ndarray:
    if "poses" in data.files:
        return np.asarray(data["poses"], dtype=np.float64)
    parts = []
    for keys, dims in _PARTS:
        part = _first(data, keys)
        if part is None:
            raise ValueError(f"no 'poses' nor {'/'.join(keys)}")
        parts.append(part.reshape(len(part), dims))
    hands = _first(data, ("pose_hand", "hand_pose"))
    if hands is None:
        left, right = _first(data, _LEFT_HAND), _first(data, _RIGHT_HAND)
        if left is None or right is None:
            raise ValueError("no hand poses")
        hands = np.concatenate([left.reshape(len(left), 45), right.reshape(len(right), 45)], 1)
    n = len(parts[0])
    return np.concatenate([parts[0], parts[1], np.zeros((n, 9)), hands.reshape(n, 90)], 1)


def read_clip(path: Path, z_up: bool, default_fps: float = FPS) -> Motion:
    """The clip at ``path`` at 30 fps, Y-up; ValueError with the reason when unusable."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"unreadable, not an npz ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError("unreadable, not an npz")
    try:
        with data:
            poses = _poses(data)
            trans = _first(data, ("trans", "transl"))
            named = any(key in data.files for key in FRAME_RATE_KEYS)
            rate_hz = _frame_rate(data) if named else default_fps
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"unreadable ({exc})") from None
    if trans is None:
        raise ValueError("no 'trans'")
    if poses.ndim != 2 or poses.shape[1] != POSE_DIMS or trans.shape != (len(poses), 3):
        raise ValueError(f"poses {poses.shape} / trans {trans.shape}, expected (T, 165) / (T, 3)")
    if rate_hz <= 0 or len(poses) < MIN_CLIP_FRAMES:
        raise ValueError(f"{len(poses)} frames at {rate_hz} Hz")
    if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
        raise ValueError("NaN or infinite values")
    motion = features.resample(Motion(poses, trans), rate_hz)
    if not MIN_CLIP_FRAMES <= motion.n_frames <= MAX_USER_CLIP_FRAMES:
        raise ValueError(
            f"{motion.n_frames} frames at 30 fps, accepted 2 to {MAX_USER_CLIP_FRAMES}"
        )
    return features.convert_up_axis(motion) if z_up else motion


def texts_file(clip: Path, data_dir: Path) -> Path | None:
    """The texts of ``clip`` (see the module doc), or None."""
    for path in (
        clip.with_suffix(".txt"),
        data_dir / "texts" / f"{clip.stem}.txt",
        data_dir / "texts" / f"{clip.parent.name}.txt",
    ):
        if path.is_file():
            return path
    return None


def read_texts(path: Path) -> dict[tuple[float, float] | None, list[str]]:
    """Texts by segment (None: the whole clip), one per line, HumanML3D
    ``caption#tokens#start#end`` cut to the caption."""
    segments: dict[tuple[float, float] | None, list[str]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("#")
        text = " ".join(fields[0].split())
        segment = None
        if len(fields) >= 4:
            try:
                start, end = float(fields[2]), float(fields[3])
            except ValueError:
                start = end = 0.0
            if end > start >= 0.0:
                segment = (start, end)
        texts = segments.setdefault(segment, [])
        if text and text not in texts:
            texts.append(text)
    return {segment: texts for segment, texts in segments.items() if texts}


def build(
    data_dir: Path,
    out_dir: Path,
    embedder: TextEmbedder,
    z_up: bool = False,
    log=None,
    default_fps: float = FPS,
) -> BuildReport:
    """Writes the library of ``data_dir``'s clips to ``out_dir`` (see the module doc)."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, skipped, offsets, descriptors = [], [], [0], []
    with open(out_dir / "poses.f32", "wb") as poses, open(out_dir / "trans.f32", "wb") as trans:
        for path in sorted(data_dir.rglob("*.npz")):
            if path.is_relative_to(out_dir):
                continue
            texts_path = texts_file(path, data_dir)
            try:
                segments = read_texts(texts_path) if texts_path is not None else {}
                if not segments:
                    raise ValueError("no texts (<clip>.txt, texts/<clip>.txt or texts/<dir>.txt)")
                motion = read_clip(path, z_up, default_fps)
            except ValueError as exc:
                skipped.append((str(path), str(exc)))
                if log is not None:
                    log(f"skipped {path}: {exc}")
                continue
            name = path.relative_to(data_dir).with_suffix("").as_posix()
            for segment, texts in segments.items():
                part, part_name = motion, name
                if segment is not None:
                    first, last = (round(t * FPS) for t in segment)
                    part = Motion(motion.poses[first:last], motion.trans[first:last])
                    part_name = f"{name}#{segment[0]:g}-{segment[1]:g}"
                    if part.n_frames < MIN_CLIP_FRAMES:
                        reason = f"segment {segment} outside its {motion.n_frames} frames"
                        skipped.append((f"{path}#{segment[0]:g}-{segment[1]:g}", reason))
                        continue
                poses.write(part.poses.astype("<f4").tobytes())
                trans.write(part.trans.astype("<f4").tobytes())
                offsets.append(offsets[-1] + part.n_frames)
                descriptors.append(captioner.describe(part))
                entries.append({"name": part_name, "source": str(path), "texts": texts})
    embedder.load()
    all_texts = [text for entry in entries for text in entry["texts"]]
    with open(out_dir / "embeddings.f32", "wb") as out:
        for start in range(0, len(all_texts), EMBED_BATCH):
            batch = embedder.embed(all_texts[start : start + EMBED_BATCH])
            out.write(np.asarray(batch, dtype="<f4").tobytes())
    owners = np.repeat(np.arange(len(entries)), [len(entry["texts"]) for entry in entries])
    owners.astype("<i4").tofile(out_dir / "text_clip.i32")
    np.asarray(offsets, dtype="<i8").tofile(out_dir / "offsets.i64")
    shape = (len(descriptors), captioner.DESCRIPTOR_DIMS)
    np.asarray(descriptors, dtype="<f4").reshape(shape).tofile(out_dir / DESCRIPTORS)
    with open(out_dir / "clips.jsonl", "w", encoding="utf-8") as out:
        for entry in entries:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
    manifest = {
        "format": LIBRARY_FORMAT,
        "version": LIBRARY_VERSION,
        "fps": FPS,
        "clips": len(entries),
        "frames": offsets[-1],
        "texts": len(all_texts),
        "embedding_model": embedder.name,
        "embedding_dims": embedder.dims,
        "descriptor": captioner.DESCRIPTOR,
        "descriptor_dims": captioner.DESCRIPTOR_DIMS,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return BuildReport(
        len(entries), offsets[-1], len(all_texts), tuple(skipped), time.perf_counter() - started
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="solami motion library build", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("data", type=Path, help="folder of SMPL-X npz clips and their texts")
    parser.add_argument("--out", type=Path, required=True, help="library directory to write")
    parser.add_argument("--z-up", action="store_true", help="the clips are Z-up (AMASS, Blender)")
    parser.add_argument(
        "--embedding-model", type=Path, default=None, help="model directory (default: packaged)"
    )
    parser.add_argument("--device", default="cpu", help="torch device for the embeddings")
    parser.add_argument(
        "--fps", type=float, default=FPS, help="frame rate of clips that name none (Inter-X: 120)"
    )
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"{args.data} is not a directory")
    embedder = TextEmbedder(args.embedding_model, args.device)
    report = build(
        args.data, args.out, embedder, args.z_up, lambda m: print(m, file=sys.stderr), args.fps
    )
    print(
        f"{args.out}: {report.clips} clips, {report.frames} frames, {report.texts} texts, "
        f"{len(report.skipped)} skipped, {report.seconds:.1f} s"
    )
    return 0 if report.clips else 1
