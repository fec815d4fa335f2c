"""Perturbed versions of a motion clip, as another performer, place or speed would give it:
held-out cases for the motion captioner's tests and benchmark."""

from __future__ import annotations

import numpy as np

from services.motion import features
from services.motion.features import Motion, Placement
from solami.avatar.rates import FPS

# Capture noise: a per-joint bias of the performer and per-frame jitter (radians), and
# position jitter (metres).
BIAS_RAD = 0.03
JITTER_RAD = 0.01
JITTER_M = 0.005


def time_warp(motion: Motion, speed: float) -> Motion:
    """``motion`` played ``speed`` times as fast."""
    return features.resample(motion, FPS * speed)


def sub_window(motion: Motion, fraction: float, rng: np.random.Generator) -> Motion:
    """A random part of ``fraction`` of the clip."""
    length = max(2, round(motion.n_frames * fraction))
    start = int(rng.integers(0, motion.n_frames - length + 1))
    return Motion(motion.poses[start : start + length], motion.trans[start : start + length])


def noised(motion: Motion, rng: np.random.Generator) -> Motion:
    """Another performer (a per-joint pose bias) captured with jitter."""
    shape = motion.poses.shape
    bias = rng.normal(0.0, BIAS_RAD, (1, shape[1]))
    poses = motion.poses + bias + rng.normal(0.0, JITTER_RAD, shape)
    return Motion(poses, motion.trans + rng.normal(0.0, JITTER_M, motion.trans.shape))


def moved(motion: Motion, rng: np.random.Generator) -> Motion:
    """The clip somewhere else in the room, facing another way."""
    offset = np.array([rng.uniform(-2, 2), 0.0, rng.uniform(-2, 2)])
    return features.apply_placement(motion, Placement(float(rng.uniform(-np.pi, np.pi)), offset))
