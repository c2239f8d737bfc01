"""Damped-least-squares inverse kinematics on a MuJoCo site (for scripted Cartesian controllers).

One DLS step (Wampler 1986; Buss 2004, eq. 10): ``dq = Jᵀ (J Jᵀ + λ² I)⁻¹ e`` with the site's 6×n
Jacobian ``J`` (``mujoco.mj_jacSite``: translation rows, rotation rows) restricted to the given
degrees of freedom and the pose error ``e`` = (position error in m, rotation error as an axis-angle
vector in rad, both in world coordinates).
"""

from __future__ import annotations

import mujoco
import numpy as np


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (3,) (rad, world frame) of the rotation taking ``current`` to ``target``
    (both 3×3 rotation matrices)."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, (target @ current.T).ravel())
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


def rot_x(angle: float) -> np.ndarray:
    """3×3 rotation by ``angle`` rad about the world x axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    """3×3 rotation by ``angle`` rad about the world y axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(angle: float) -> np.ndarray:
    """3×3 rotation by ``angle`` rad about the world z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def dls_step(model: mujoco.MjModel, data: mujoco.MjData, site_id: int, pos: np.ndarray, rot: np.ndarray,
             dofs: np.ndarray, damping: float = 0.05, max_lin: float = 0.04, max_ang: float = 0.25,
             rot_weight: float = 0.5, rest: np.ndarray | None = None, rest_gain: float = 0.3,
             limit_margin: float = 0.05) -> tuple[np.ndarray, float, float]:
    """Joint displacement (len(dofs),) in rad moving site ``site_id`` toward pose (``pos`` (3,) m,
    ``rot`` 3×3) by at most ``max_lin`` m and ``max_ang`` rad.

    ``data`` must hold current kinematics (``mj_kinematics``/``mj_step`` ran). The rotation rows are
    scaled by ``rot_weight`` (m per rad) so both errors weigh alike in the least squares. With a
    ``rest`` posture (len(dofs),), ``rest_gain`` × its offset is added in the Jacobian's null space.
    Joints that would pass within ``limit_margin`` rad of their range are held and the step is
    solved again with the others (the dofs must be hinge/slide joints with ranges).

    Returns:
        ``(dq, position error norm in m, rotation error norm in rad)`` before clipping.
    """
    jacp = np.zeros((3, model.nv))
    jacr = np.zeros((3, model.nv))
    mujoco.mj_jacSite(model, data, jacp, jacr, site_id)
    e_pos = pos - data.site_xpos[site_id]
    e_rot = rotation_error(rot, data.site_xmat[site_id].reshape(3, 3))
    dist, ang = float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))
    e_pos = e_pos * min(1.0, max_lin / max(dist, 1e-9))
    e_rot = e_rot * min(1.0, max_ang / max(ang, 1e-9))
    jac = np.vstack([jacp[:, dofs], rot_weight * jacr[:, dofs]])
    err = np.concatenate([e_pos, rot_weight * e_rot])
    joints = model.dof_jntid[dofs]
    q = data.qpos[model.jnt_qposadr[joints]]
    lo, hi = model.jnt_range[joints, 0] + limit_margin, model.jnt_range[joints, 1] - limit_margin
    free = np.ones(len(dofs), bool)
    for _ in range(3):
        j = jac * free
        pinv = j.T @ np.linalg.inv(j @ j.T + damping**2 * np.eye(6))
        dq = pinv @ err
        if rest is not None:
            # toward the rest posture, and away from joints' limits once within 0.3 rad of them
            bias = rest_gain * (rest - q) + np.clip(lo + 0.25 - q, 0, None) - np.clip(q - hi + 0.25, 0, None)
            dq += ((np.eye(len(dofs)) - pinv @ j) @ bias) * free
        blocked = free & (((q + dq) > hi) & (dq > 0) | ((q + dq) < lo) & (dq < 0))
        if not blocked.any():
            break
        free &= ~blocked
    return dq * free, dist, ang
