"""Rotation conversions on numpy arrays of any leading shape (float64 inside).

Conventions: rotation matrices act on column vectors (``v' = R @ v``); axis-angle vectors are
``axis * angle`` in radians (SMPL-X ``poses``); the 6D representation is the first two columns
of the matrix, ``[R[:, 0], R[:, 1]]`` (as the SOLAMI features); quaternions are ``(w, x, y, z)``.
"""

from __future__ import annotations

import numpy as np

# Below this angle (radians) the Rodrigues terms switch to their Taylor expansions.
SMALL_ANGLE_RAD = 1e-6


def _skew(v: np.ndarray) -> np.ndarray:
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = np.zeros_like(x)
    return np.stack(
        [np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)],
        -2,
    )


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (Rodrigues)."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1)[..., None, None]
    small = angle < SMALL_ANGLE_RAD
    safe = np.where(small, 1.0, angle)
    a = np.where(small, 1.0 - angle**2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - angle**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    k = _skew(aa)
    return np.eye(3) + a * k + b * (k @ k)


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w >= 0), stable everywhere."""
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate magnitudes; the largest one gives a well-conditioned division.
    candidates = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    best = np.argmax(candidates, axis=-1)
    root = np.sqrt(np.maximum(np.take_along_axis(candidates, best[..., None], -1)[..., 0], 1e-12))
    s = 0.5 / root
    q = np.empty((*m.shape[:-2], 4))
    options = (
        (
            0.5 * root,
            (m[..., 2, 1] - m[..., 1, 2]) * s,
            (m[..., 0, 2] - m[..., 2, 0]) * s,
            (m[..., 1, 0] - m[..., 0, 1]) * s,
        ),
        (
            (m[..., 2, 1] - m[..., 1, 2]) * s,
            0.5 * root,
            (m[..., 0, 1] + m[..., 1, 0]) * s,
            (m[..., 0, 2] + m[..., 2, 0]) * s,
        ),
        (
            (m[..., 0, 2] - m[..., 2, 0]) * s,
            (m[..., 0, 1] + m[..., 1, 0]) * s,
            0.5 * root,
            (m[..., 1, 2] + m[..., 2, 1]) * s,
        ),
        (
            (m[..., 1, 0] - m[..., 0, 1]) * s,
            (m[..., 0, 2] + m[..., 2, 0]) * s,
            (m[..., 1, 2] + m[..., 2, 1]) * s,
            0.5 * root,
        ),
    )
    for index, option in enumerate(options):
        chosen = best == index
        for component in range(4):
            q[..., component] = np.where(chosen, option[component], q[..., component])
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 3) axis-angle with angle in [0, pi]."""
    q = np.asarray(q, dtype=np.float64)
    q = np.where(q[..., :1] < 0, -q, q)
    sin_half = np.linalg.norm(q[..., 1:], axis=-1)
    angle = 2.0 * np.arctan2(sin_half, q[..., 0])
    small = sin_half < SMALL_ANGLE_RAD
    scale = np.where(small, 2.0, angle / np.where(small, 1.0, sin_half))
    return q[..., 1:] * scale[..., None]


def matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle (exact near 0 and near pi)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (normalised here) -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between unit quaternions; ``t`` broadcasts over leading dims."""
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


def matrix_to_6d(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): the first column then the second column."""
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def six_d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt on the two columns, third = their cross product.

    The nearest rotation for outputs of a network, the exact inverse of ``matrix_to_6d``.
    """
    d6 = np.asarray(d6, dtype=np.float64)
    a, b = d6[..., :3], d6[..., 3:]
    u1 = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b - np.sum(u1 * b, axis=-1, keepdims=True) * u1
    u2 = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.stack([u1, u2, np.cross(u1, u2)], axis=-1)


def rotation_y(angle: np.ndarray) -> np.ndarray:
    """(...) angles in radians -> (..., 3, 3) rotations about +Y."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(angle), np.ones_like(angle)
    return np.stack(
        [np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1), np.stack([-s, zero, c], -1)],
        -2,
    )


def heading(m: np.ndarray) -> np.ndarray:
    """Yaw (radians) of (..., 3, 3) rotations: the Y angle of the extrinsic y-z-x Euler
    decomposition ``R = Rx @ Rz @ Ry(yaw)``, as the SOLAMI features use for the root."""
    return np.arctan2(m[..., 0, 2], m[..., 0, 0])


def euler_xyz_to_matrix(degrees: np.ndarray) -> np.ndarray:
    """(..., 3) angles in degrees -> ``Rx @ Ry @ Rz`` (how the motion library is authored)."""
    rad = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    x = axis_angle_to_matrix(rad[..., 0:1] * np.array([1.0, 0.0, 0.0]))
    y = axis_angle_to_matrix(rad[..., 1:2] * np.array([0.0, 1.0, 0.0]))
    z = axis_angle_to_matrix(rad[..., 2:3] * np.array([0.0, 0.0, 1.0]))
    return x @ y @ z


def geodesic_angle(m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Angle (radians) of the rotation between two (..., 3, 3) rotation stacks."""
    relative = np.swapaxes(m1, -1, -2) @ m2
    cos = (np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))
