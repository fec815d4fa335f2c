"""Rotation maths on numpy arrays of any leading shape (float64 inside), for every part.

Conventions: rotation matrices act on column vectors (``v' = R @ v``); axis-angle vectors are
``axis * angle`` in radians (SMPL-X ``poses``); quaternions are ``(x, y, z, w)`` (scipy's and
Unity's order); the 6D representation is the first two matrix columns ``[R[:, 0], R[:, 1]]``
(the SOLAMI motion feature). scipy's ``Rotation`` does the conversions it covers; what it does
not (6D, batched slerp of arbitrary pairs, Shepperd's method for exact rotation products, the
SOLAMI heading) is written here.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

# Reflection through the YZ plane: Unity's left-handed axes seen from a right-handed frame.
MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def _flatten(values: np.ndarray, *tail: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """``values`` as a flat batch of ``tail``-shaped items, and the leading shape."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[values.ndim - len(tail) :] != tail:
        raise ValueError(f"expected shape (..., {', '.join(map(str, tail))}), got {values.shape}")
    lead = values.shape[: values.ndim - len(tail)]
    return values.reshape(-1, *tail), lead


def rotation_x(degrees: float) -> np.ndarray:
    """The 3x3 right-handed rotation about +X by ``degrees``."""
    return Rotation.from_euler("x", degrees, degrees=True).as_matrix()


def rotation_y(angle_rad: np.ndarray) -> np.ndarray:
    """``(...)`` angles in radians to ``(..., 3, 3)`` rotations about +Y."""
    angle = np.asarray(angle_rad, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(angle), np.ones_like(angle)
    return np.stack(
        [np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1), np.stack([-s, zero, c], -1)],
        -2,
    )


def axis_angle_to_matrix(vectors: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle vectors (radians) to ``(..., 3, 3)`` rotation matrices."""
    flat, lead = _flatten(vectors, 3)
    if not len(flat):
        return np.zeros((*lead, 3, 3))
    return Rotation.from_rotvec(flat).as_matrix().reshape(*lead, 3, 3)


def quat_to_matrix(quats: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions ``(x, y, z, w)`` (normalised here) to ``(..., 3, 3)``."""
    flat, lead = _flatten(quats, 4)
    if not len(flat):
        return np.zeros((*lead, 3, 3))
    return Rotation.from_quat(flat).as_matrix().reshape(*lead, 3, 3)


def quat_to_axis_angle(quats: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions ``(x, y, z, w)`` to ``(..., 3)`` axis-angle, angle in [0, pi]."""
    flat, lead = _flatten(quats, 4)
    if not len(flat):
        return np.zeros((*lead, 3))
    return Rotation.from_quat(flat).as_rotvec().reshape(*lead, 3)


def matrix_to_quat(matrices: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotations to ``(..., 4)`` unit quaternions ``(x, y, z, w)`` with w >= 0.

    Shepperd's method in numpy: for the stacks of exact rotation products seen here it is
    several times faster than ``Rotation.from_matrix``, which re-orthogonalises each one.
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


def matrix_to_axis_angle(matrices: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices to ``(..., 3)`` axis-angle, angle in [0, pi]."""
    return quat_to_axis_angle(matrix_to_quat(matrices))


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between unit quaternions, pair by pair (scipy's ``Slerp``
    interpolates one key sequence, not a batch of pairs); ``t`` broadcasts over leading dims."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.clip(np.abs(dot), -1.0, 1.0)
    theta = np.arccos(dot)
    near = theta < 1e-4
    sin_theta = np.where(near, 1.0, np.sin(theta))
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / sin_theta)
    w1 = np.where(near, t, np.sin(t * theta) / sin_theta)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def matrix_to_6d(matrices: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` to ``(..., 6)``: the first column then the second column."""
    return np.concatenate([matrices[..., :, 0], matrices[..., :, 1]], axis=-1)


def six_d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """``(..., 6)`` to ``(..., 3, 3)``: Gram-Schmidt on the two columns, third = their cross
    product. The nearest rotation for outputs of a network, the exact inverse of
    ``matrix_to_6d``."""
    d6 = np.asarray(d6, dtype=np.float64)
    a, b = d6[..., :3], d6[..., 3:]
    u1 = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b - np.sum(u1 * b, axis=-1, keepdims=True) * u1
    u2 = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.stack([u1, u2, np.cross(u1, u2)], axis=-1)


def heading(matrices: np.ndarray) -> np.ndarray:
    """Yaw (radians) of ``(..., 3, 3)`` rotations: the Y angle of the extrinsic y-z-x Euler
    decomposition ``R = Rx @ Rz @ Ry(yaw)``, as the SOLAMI features use for the root."""
    return np.arctan2(matrices[..., 0, 2], matrices[..., 0, 0])


def euler_xyz_to_matrix(degrees: np.ndarray) -> np.ndarray:
    """``(..., 3)`` angles in degrees to ``Rx @ Ry @ Rz`` (intrinsic x-y-z)."""
    flat, lead = _flatten(degrees, 3)
    if not len(flat):
        return np.zeros((*lead, 3, 3))
    return Rotation.from_euler("XYZ", flat, degrees=True).as_matrix().reshape(*lead, 3, 3)


def geodesic_angle(m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Angle (radians) of the rotation between two ``(..., 3, 3)`` rotation stacks."""
    relative = np.swapaxes(m1, -1, -2) @ m2
    cos = (np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def nearest_rotation(matrices: np.ndarray) -> np.ndarray:
    """The rotations closest to ``(..., 3, 3)`` nearly orthonormal matrices (polar factor)."""
    u, _, vt = np.linalg.svd(np.asarray(matrices, dtype=np.float64))
    return u @ vt


def mirror_quat_x(quats: np.ndarray) -> np.ndarray:
    """Conjugates ``(..., 4)`` rotations by ``MIRROR_X``: ``(x, y, z, w) -> (x, -y, -z, w)``.

    This is how a rotation reads after changing handedness by flipping X (its own inverse).
    """
    return np.asarray(quats, dtype=np.float64) * np.array([1.0, -1.0, -1.0, 1.0])
