"""Mean/std normalisation of HumanML3D features, and the dataset's way of computing Mean.npy / Std.npy."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def compute_mean_std(features: Sequence[np.ndarray], joints_num: int = 22) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over all frames, with each feature group's std replaced by the group's average
    (root rotation, root XZ velocity, root height, RIC, rotations, local velocities, foot contacts),
    exactly as HumanML3D's Mean.npy/Std.npy were made."""
    data = np.concatenate([np.asarray(f, dtype=np.float64) for f in features], axis=0)
    expected = 8 + (joints_num - 1) * 9 + joints_num * 3
    if data.shape[-1] != expected:
        raise ValueError(f"features for {joints_num} joints are {expected}-d, got {data.shape[-1]}-d")
    mean, std = data.mean(axis=0), data.std(axis=0)
    j = joints_num
    bounds = [0, 1, 3, 4, 4 + (j - 1) * 3, 4 + (j - 1) * 9, 4 + (j - 1) * 9 + j * 3, expected]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        std[lo:hi] = std[lo:hi].mean()
    return mean.astype(np.float32), std.astype(np.float32)


class Normalizer:
    """(x - mean) / std and back, for numpy arrays and torch tensors alike."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        mean, std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"mean and std must have the same length, got {mean.shape[0]} and {std.shape[0]}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
            raise ValueError("std must be finite and positive and mean finite; recompute Mean.npy/Std.npy")
        self.mean, self.std = mean, std

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def load(cls, folder: str | Path, mean_name: str = "Mean.npy", std_name: str = "Std.npy") -> "Normalizer":
        folder = Path(folder)
        missing = [n for n in (mean_name, std_name) if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: missing {', '.join(missing)} (the dataset's feature statistics)")
        return cls(np.load(folder / mean_name), np.load(folder / std_name))

    def save(self, folder: str | Path, mean_name: str = "Mean.npy", std_name: str = "Std.npy") -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / mean_name, self.mean)
        np.save(folder / std_name, self.std)

    def _stats_like(self, x):
        if self.dim != x.shape[-1]:
            raise ValueError(f"features are {x.shape[-1]}-d but the statistics are {self.dim}-d")
        if isinstance(x, np.ndarray):
            return self.mean, self.std
        import torch  # only when called with tensors: keeps this module numpy-only otherwise

        return (torch.as_tensor(self.mean, device=x.device, dtype=x.dtype),
                torch.as_tensor(self.std, device=x.device, dtype=x.dtype))

    def normalize(self, x):
        mean, std = self._stats_like(x)
        return (x - mean) / std

    def denormalize(self, x):
        mean, std = self._stats_like(x)
        return x * std + mean
