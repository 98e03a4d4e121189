"""Quaternion and rotation-matrix math on numpy arrays.

Quaternions are (..., 4) in (w, x, y, z) order; every function broadcasts over leading axes.
Pure functions, no state: the same helpers serve forward kinematics, feature extraction and retargeting.
"""
from __future__ import annotations

import numpy as np


def qnormalize(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def qinv(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion (its conjugate)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b first, then a)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b over the last axis; written out because np.cross is slow on many small vectors."""
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=-1)


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4)."""
    qvec = q[..., 1:]
    uv = cross(qvec, v)
    uuv = cross(qvec, uv)
    return v + 2.0 * (q[..., :1] * uv + uuv)


def qbetween(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Shortest-arc rotation taking direction v0 to direction v1."""
    v = cross(v0, v1)
    w = np.sqrt((v0**2).sum(-1, keepdims=True) * (v1**2).sum(-1, keepdims=True)) + (v0 * v1).sum(-1, keepdims=True)
    return qnormalize(np.concatenate([w, v], axis=-1))


def qfix(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip quaternion signs along `axis` (time) so consecutive quaternions stay in one hemisphere."""
    q = np.moveaxis(q.copy(), axis, 0)
    dots = (q[1:] * q[:-1]).sum(-1)
    flip = np.cumsum(dots < 0, axis=0) % 2 == 1
    q[1:][flip] *= -1.0
    return np.moveaxis(q, 0, axis)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.moveaxis(q, -1, 0)
    two_s = 2.0 / (q * q).sum(-1)
    m = np.stack(
        [
            1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
            two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
            two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
        ],
        axis=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) to unit quaternions with w >= 0 (numerically robust branch choice)."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # Four candidate solutions; pick the one with the largest (best-conditioned) denominator.
    cands = np.stack(
        [
            np.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )
    diag = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = np.argmax(diag, axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = qnormalize(q)
    return np.where(q[..., :1] < 0, -q, q)


def axis_angle_to_quat(axis_angle: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(x/2)/x -> 1/2 as x -> 0
    k = np.where(angle > 1e-8, np.sin(half) / np.maximum(angle, 1e-12), 0.5 - angle**2 / 48.0)
    return np.concatenate([np.cos(half), axis_angle * k], axis=-1)


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    q = np.where(q[..., :1] < 0, -q, q)
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    k = np.where(sin_half > 1e-8, angle / np.maximum(sin_half, 1e-12), 2.0)
    return q[..., 1:] * k


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    return quat_to_matrix(axis_angle_to_quat(axis_angle))


def quat_to_cont6d(q: np.ndarray) -> np.ndarray:
    """The 6-D continuous rotation representation: the first two columns of the matrix."""
    m = quat_to_matrix(q)
    return np.concatenate([m[..., 0], m[..., 1]], axis=-1)


def cont6d_to_matrix(c: np.ndarray) -> np.ndarray:
    a1, a2 = c[..., 0:3], c[..., 3:6]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    b3 = cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def yaw_quat(angle: np.ndarray | float) -> np.ndarray:
    """Rotation by `angle` radians about +Y."""
    angle = np.asarray(angle, dtype=np.float64)
    return np.stack([np.cos(angle / 2), np.zeros_like(angle), np.sin(angle / 2), np.zeros_like(angle)], axis=-1)


def frame_from_axes(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) whose columns are primary, secondary made perpendicular to it, and their cross."""
    e1 = primary / np.maximum(np.linalg.norm(primary, axis=-1, keepdims=True), 1e-12)
    e2 = secondary - (secondary * e1).sum(-1, keepdims=True) * e1
    e2 = e2 / np.maximum(np.linalg.norm(e2, axis=-1, keepdims=True), 1e-12)
    return np.stack([e1, e2, cross(e1, e2)], axis=-1)


def rigid_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) best turning vectors source (..., K, 3) onto target (..., K, 3), least squares (Kabsch)."""
    h = np.swapaxes(source, -1, -2) @ target
    u, _, vt = np.linalg.svd(h)
    v, ut = np.swapaxes(vt, -1, -2), np.swapaxes(u, -1, -2)
    fix = np.ones(h.shape[:-1])
    fix[..., 2] = np.sign(np.linalg.det(v @ ut))  # a rotation, never a reflection
    return v @ (fix[..., None] * ut)
