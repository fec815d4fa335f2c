"""Writing a turn's reply to disk: the audio as played, the body motion, the face."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relay.clients.motion import BodyMotion
from relay.turns import Clip
from solami import audio
from solami.avatar.face import CHANNEL_COUNT
from solami.avatar.face_npz import write_npz
from solami.avatar.rates import FPS


def record_turn(folder: Path, clips: list[Clip], body: BodyMotion | None) -> None:
    """``reply.wav`` (the clips back to back), ``motion.npz`` (SMPL-X ``poses``/``trans``,
    30 fps) and ``face.npz`` (the original LiveLinkFace layout) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rate = clips[0].rate_hz
    samples = np.concatenate([audio.resample(c.samples, c.rate_hz, rate) for c in clips])
    (folder / "reply.wav").write_bytes(audio.encode_wav(samples, rate))
    faces = []
    for clip in clips:
        frames = round(clip.duration_s * FPS)
        face = clip.face if clip.face is not None else np.zeros((0, CHANNEL_COUNT), np.float32)
        padded = np.zeros((frames, CHANNEL_COUNT), np.float32)
        padded[: min(frames, len(face))] = face[:frames]
        faces.append(padded)
    write_npz(folder / "face.npz", np.concatenate(faces))
    if body is not None:
        np.savez(folder / "motion.npz", poses=body.poses, trans=body.trans, fps=FPS)
