"""Fit SMPL pose (and optionally shape) to a joint sequence, SMPLify-style, batched over all frames.

Loss: squared joint error + temporal smoothness of the pose + a small pose prior that keeps limbs near
rest where joints leave a rotation undetermined (twist). L-BFGS on every frame at once; a first pass with
only the root (orientation and translation) avoids starting from a body turned the wrong way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from smplx import SMPL

from retarget.skeleton import joint_index

from .body_model import SMPL_BODY_JOINTS, SmplParams, body_joints


@dataclass
class FitReport:
    mean_error_m: float
    max_error_m: float
    iterations: int


def _initial_yaw(joints: np.ndarray) -> np.ndarray:
    """Axis-angle about Y turning SMPL's rest facing (+Z) to the facing of each frame."""
    across = (joints[:, joint_index("left_hip")] - joints[:, joint_index("right_hip")]) + (
        joints[:, joint_index("left_shoulder")] - joints[:, joint_index("right_shoulder")])
    yaw = np.arctan2(-across[:, 2], across[:, 0])  # rest 'across' (left minus right) points to +X
    return np.stack([np.zeros_like(yaw), yaw, np.zeros_like(yaw)], axis=-1)


def fit_smpl(body: SMPL, joints: np.ndarray, fit_shape: bool = False, iterations: int = 150,
             smooth_weight: float = 1e-4, prior_weight: float = 1e-6) -> tuple[SmplParams, FitReport]:
    target = torch.as_tensor(np.asarray(joints), dtype=torch.float32)
    frames = target.shape[0]
    global_orient = torch.tensor(_initial_yaw(np.asarray(joints)), dtype=torch.float32, requires_grad=True)
    body_pose = torch.zeros(frames, SMPL_BODY_JOINTS * 3, requires_grad=True)
    betas = torch.zeros(1, body.num_betas, requires_grad=fit_shape)
    with torch.no_grad():
        rest_root = body_joints(body, global_orient, body_pose, betas, torch.zeros(frames, 3))[:, 0]
    transl = (target[:, 0] - rest_root).clone().requires_grad_(True)

    def loss_fn(with_pose: bool) -> torch.Tensor:
        pred = body_joints(body, global_orient, body_pose, betas, transl)
        loss = ((pred - target) ** 2).sum(-1).mean()
        if with_pose:
            pose = torch.cat([global_orient, body_pose], -1)
            if frames > 1:
                loss = loss + smooth_weight * ((pose[1:] - pose[:-1]) ** 2).sum(-1).mean()
            loss = loss + prior_weight * (body_pose**2).sum(-1).mean()
            if fit_shape:
                loss = loss + 1e-4 * (betas**2).sum()
        return loss

    def run(params: list[torch.Tensor], steps: int, with_pose: bool) -> None:
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-9, tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            loss = loss_fn(with_pose)
            loss.backward()
            return loss

        opt.step(closure)

    run([global_orient, transl], 20, with_pose=False)
    run([global_orient, body_pose, transl] + ([betas] if fit_shape else []), iterations, with_pose=True)

    with torch.no_grad():
        err = (body_joints(body, global_orient, body_pose, betas, transl) - target).norm(dim=-1)
    params = SmplParams(global_orient=global_orient.detach().numpy(), body_pose=body_pose.detach().numpy(),
                        betas=betas.detach().numpy()[0], transl=transl.detach().numpy())
    return params, FitReport(float(err.mean()), float(err.max()), iterations)
