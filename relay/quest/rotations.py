"""Batched rotation helpers: quaternions ``(x, y, z, w)``, axis-angle vectors, 3x3 matrices."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

# Reflection through the YZ plane: Unity's left-handed axes seen from a right-handed frame.
MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def rotation_x(degrees: float) -> np.ndarray:
    """The 3x3 right-handed rotation about +X by ``degrees``."""
    return Rotation.from_euler("x", degrees, degrees=True).as_matrix()


def _flatten(values: np.ndarray, *tail: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """``values`` as a flat batch of ``tail``-shaped items, and the leading shape."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[values.ndim - len(tail) :] != tail:
        raise ValueError(f"expected shape (..., {', '.join(map(str, tail))}), got {values.shape}")
    lead = values.shape[: values.ndim - len(tail)]
    return values.reshape(-1, *tail), lead


def quat_to_matrix(quats: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions ``(x, y, z, w)`` (normalised here) to ``(..., 3, 3)``."""
    flat, lead = _flatten(quats, 4)
    if not len(flat):
        return np.zeros((*lead, 3, 3))
    return Rotation.from_quat(flat).as_matrix().reshape(*lead, 3, 3)


def matrix_to_quat(matrices: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotations to ``(..., 4)`` unit quaternions ``(x, y, z, w)`` with w >= 0.

    Shepperd's method in numpy (for the stacks of exact rotation products this module sees it
    is several times faster than ``Rotation.from_matrix``, which re-orthogonalises each one).
    """
    flat, lead = _flatten(matrices, 3, 3)
    m = flat.reshape(-1, 9).T
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    # Four times the square of w, x, y, z; the largest gives the best-conditioned branch.
    squares = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22]
    )
    candidates = np.stack(
        [
            [m21 - m12, m02 - m20, m10 - m01, squares[0]],
            [squares[1], m10 + m01, m02 + m20, m21 - m12],
            [m10 + m01, squares[2], m21 + m12, m02 - m20],
            [m02 + m20, m21 + m12, squares[3], m10 - m01],
        ]
    )  # (branch, xyzw, N)
    best = np.argmax(squares, axis=0)
    columns = np.arange(flat.shape[0])
    quats = candidates[best, :, columns]  # (N, 4)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    quats *= np.where(quats[:, 3:] < 0.0, -1.0, 1.0)
    return quats.reshape(*lead, 4)


def axis_angle_to_matrix(vectors: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle vectors (radians) to ``(..., 3, 3)`` rotation matrices."""
    flat, lead = _flatten(vectors, 3)
    if not len(flat):
        return np.zeros((*lead, 3, 3))
    return Rotation.from_rotvec(flat).as_matrix().reshape(*lead, 3, 3)


def matrix_to_axis_angle(matrices: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices to ``(..., 3)`` axis-angle vectors, angle in [0, pi]."""
    quats, lead = _flatten(matrix_to_quat(matrices), 4)
    if not len(quats):
        return np.zeros((*lead, 3))
    return Rotation.from_quat(quats).as_rotvec().reshape(*lead, 3)


def nearest_rotation(matrices: np.ndarray) -> np.ndarray:
    """The rotations closest to ``(..., 3, 3)`` nearly orthonormal matrices (polar factor)."""
    u, _, vt = np.linalg.svd(np.asarray(matrices, dtype=np.float64))
    return u @ vt


def mirror_quat_x(quats: np.ndarray) -> np.ndarray:
    """Conjugates ``(..., 4)`` rotations by ``MIRROR_X``: ``(x, y, z, w) -> (x, -y, -z, w)``.

    This is how a rotation reads after changing handedness by flipping X (its own inverse).
    """
    return np.asarray(quats, dtype=np.float64) * np.array([1.0, -1.0, -1.0, 1.0])
