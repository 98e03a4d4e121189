"""A SMPL body built from the user's model file, and its joints/vertices for given parameters."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from smplx import SMPL
from smplx.lbs import batch_rigid_transform, batch_rodrigues, blend_shapes, lbs, vertices2joints
from smplx.utils import Struct

from retarget.skeleton import NUM_JOINTS

from .smpl_files import find_model_file, load_model_arrays

SMPL_BODY_JOINTS = 23  # SMPL's body_pose covers joints 1..23; HumanML3D's 22 joints drop the two hands


@dataclass
class SmplParams:
    """SMPL parameters of a motion, per frame; axis-angle radians, metres, Y up."""

    global_orient: np.ndarray  # (T, 3)
    body_pose: np.ndarray      # (T, 69): joints 1..23 (the two hand joints stay at zero)
    betas: np.ndarray          # (10,)
    transl: np.ndarray         # (T, 3)

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float32) for k, v in vars(self).items()}


def load_body(smpl_dir: str | Path, gender: str = "neutral", num_betas: int = 10) -> SMPL:
    path = find_model_file(smpl_dir, gender)
    arrays = load_model_arrays(path)
    return SMPL(model_path=str(path), data_struct=Struct(**arrays), num_betas=num_betas, gender=gender)


def body_joints(body: SMPL, global_orient: torch.Tensor, body_pose: torch.Tensor, betas: torch.Tensor,
                transl: torch.Tensor) -> torch.Tensor:
    """The 22 kinematic joints (T, 22, 3) without skinning the mesh: the cheap path fitting needs."""
    frames = global_orient.shape[0]
    shaped = body.v_template + blend_shapes(betas.expand(1, -1), body.shapedirs)
    rest_joints = vertices2joints(body.J_regressor, shaped).expand(frames, -1, -1)
    pose = torch.cat([global_orient, body_pose], dim=-1).reshape(-1, 3)
    rot = batch_rodrigues(pose).reshape(frames, -1, 3, 3)
    posed, _ = batch_rigid_transform(rot, rest_joints, body.parents)
    return posed[:, :NUM_JOINTS] + transl[:, None]


def body_vertices(body: SMPL, params: SmplParams, batch: int = 64) -> np.ndarray:
    """Skinned vertices (T, V, 3) for every frame (SMPL's linear blend skinning with pose correctives)."""
    out = []
    betas = torch.as_tensor(params.betas, dtype=torch.float32)[None]
    with torch.no_grad():
        for start in range(0, len(params.transl), batch):
            sl = slice(start, start + batch)
            pose = torch.as_tensor(np.concatenate([params.global_orient[sl], params.body_pose[sl]], -1), dtype=torch.float32)
            verts, _ = lbs(betas.expand(len(pose), -1), pose, body.v_template, body.shapedirs, body.posedirs,
                           body.J_regressor, body.parents, body.lbs_weights)
            out.append((verts + torch.as_tensor(params.transl[sl], dtype=torch.float32)[:, None]).numpy())
    return np.concatenate(out, axis=0)
