"""Batched, differentiable torch version of `recover_from_ric` for model losses and decoding on the GPU."""
from __future__ import annotations

import torch


def _qrot(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    qvec = q[..., 1:]
    uv = torch.cross(qvec, v, dim=-1)
    uuv = torch.cross(qvec, uv, dim=-1)
    return v + 2.0 * (q[..., :1] * uv + uuv)


def _qinv(q: torch.Tensor) -> torch.Tensor:
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def recover_root_rot_pos(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    angle = torch.cumsum(torch.cat([torch.zeros_like(data[..., :1, 0]), data[..., :-1, 0]], dim=-1), dim=-1)
    zeros = torch.zeros_like(angle)
    quat = torch.stack([torch.cos(angle), zeros, torch.sin(angle), zeros], dim=-1)
    step = torch.stack([data[..., :-1, 1], torch.zeros_like(data[..., :-1, 1]), data[..., :-1, 2]], dim=-1)
    step = torch.cat([torch.zeros_like(step[..., :1, :]), step], dim=-2)
    pos = torch.cumsum(_qrot(_qinv(quat), step), dim=-2)
    pos = torch.stack([pos[..., 0], data[..., 3], pos[..., 2]], dim=-1)
    return quat, pos


def recover_from_ric(data: torch.Tensor, joints_num: int = 22) -> torch.Tensor:
    """Features (..., T, dim) -> joints (..., T, joints_num, 3)."""
    quat, root = recover_root_rot_pos(data)
    ric = data[..., 4 : 4 + (joints_num - 1) * 3].reshape(data.shape[:-1] + (joints_num - 1, 3))
    ric = _qrot(_qinv(quat)[..., None, :].expand(ric.shape[:-1] + (4,)), ric)
    ric = ric + torch.stack([root[..., 0], torch.zeros_like(root[..., 0]), root[..., 2]], dim=-1)[..., None, :]
    return torch.cat([root[..., None, :], ric], dim=-2)
