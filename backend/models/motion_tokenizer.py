"""Joints <-> motion tokens: the VQ-VAE plus the feature statistics it was trained with.

`MotionTokenizer.codes_from_joints` extracts HumanML3D features, normalises them, crops to a whole number
of codes and encodes; `joints_from_codes` decodes, de-normalises and recovers joint positions. A tokenizer
folder holds `vqvae.safetensors`, `vqvae_config.json`, `mean.npy` and `std.npy`; `load_release_vqvae`
reads the Motion-Agent `vqvae.pth` (`{'net': state_dict}`) with the evaluator's mean/std instead.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from backend.motion.features import extract_features, recover_from_ric
from backend.motion.normalize import Normalizer

from .vqvae import MotionVQVAE, VQVAEConfig

WEIGHTS_FILE = "vqvae.safetensors"
CONFIG_FILE = "vqvae_config.json"
MEAN_FILE, STD_FILE = "mean.npy", "std.npy"


def load_state_dict_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True) with one readable error naming missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: {tuple(state[k].shape)} in file, {tuple(v.shape)} in model"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        def few(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
        problems = [f"missing {len(missing)} keys ({few(missing)})" if missing else "",
                    f"{len(unexpected)} unexpected keys ({few(unexpected)})" if unexpected else "",
                    f"wrong shapes ({few(shapes)})" if shapes else ""]
        raise ValueError(f"{source} does not match the VQ-VAE config: " + "; ".join(p for p in problems if p))
    model.load_state_dict(state, strict=True)


class MotionTokenizer:
    def __init__(self, model: MotionVQVAE, normalizer: Normalizer):
        if normalizer.dim != model.config.input_dim:
            raise ValueError(f"mean/std are {normalizer.dim}-d but the VQ-VAE takes {model.config.input_dim}-d features")
        self.model = model.eval()
        self.normalizer = normalizer

    @property
    def config(self) -> VQVAEConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return self.model.vqvae.quantizer.codebook.device

    def to(self, device: str | torch.device) -> "MotionTokenizer":
        self.model.to(device)
        return self

    def codes_from_features(self, features: np.ndarray) -> list[int]:
        """Raw (not normalised) features (T, D) -> codes; the tail beyond a multiple of 4 frames is dropped."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.config.input_dim:
            raise ValueError(f"features must have shape (frames, {self.config.input_dim}), got {features.shape}")
        step = self.config.downsample
        frames = len(features) // step * step
        if frames == 0:
            raise ValueError(f"a motion needs at least {step} feature frames ({step + 1} joint frames) for one code, got {len(features)}")
        x = torch.from_numpy(self.normalizer.normalize(features[:frames])).to(self.device)
        return self.model.encode(x[None])[0].tolist()

    def codes_from_joints(self, joints: np.ndarray) -> list[int]:
        """Joints (T, 22, 3) in metres, Y up -> floor((T-1)/4) codes in 0..nb_code-1."""
        return self.codes_from_features(extract_features(joints).features)

    def features_from_codes(self, codes) -> np.ndarray:
        """Codes (N,) -> de-normalised features (4N, D) float32."""
        codes = torch.as_tensor(np.asarray(codes))
        if codes.ndim != 1:
            raise ValueError(f"codes must be a flat sequence, got shape {tuple(codes.shape)}")
        x = self.model.decode(codes.to(self.device))[0]
        return self.normalizer.denormalize(x.float().cpu().numpy())

    def joints_from_codes(self, codes) -> np.ndarray:
        """Codes (N,) -> joints (4N, 22, 3) float32, in metres, starting at the origin facing +Z."""
        return recover_from_ric(self.features_from_codes(codes)).astype(np.float32)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        (folder / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        self.normalizer.save(folder, MEAN_FILE, STD_FILE)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> "MotionTokenizer":
        folder = Path(folder)
        missing = [n for n in (WEIGHTS_FILE, CONFIG_FILE, MEAN_FILE, STD_FILE) if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a motion tokenizer folder: missing {', '.join(missing)}")
        config = VQVAEConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
        model = MotionVQVAE(config)
        load_state_dict_strict(model, load_file(str(folder / WEIGHTS_FILE)), str(folder / WEIGHTS_FILE))
        return cls(model, Normalizer.load(folder, MEAN_FILE, STD_FILE)).to(device)


def load_release_vqvae(path: str | Path, mean_path: str | Path, std_path: str | Path,
                       config: VQVAEConfig | None = None, device: str | torch.device = "cpu") -> MotionTokenizer:
    """The Motion-Agent / IRG-MotionLLM tokenizer: `vqvae.pth` holding {'net': state_dict} and the
    evaluator's mean.npy/std.npy (263-d). `config` defaults to the release's (512 codes, width 512, depth 3)."""
    path = Path(path)
    for p in (path, Path(mean_path), Path(std_path)):
        if not p.is_file():
            raise FileNotFoundError(f"{p} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "net" not in checkpoint:
        keys = sorted(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path} is not a Motion-Agent VQ-VAE checkpoint: expected a dict with 'net', got {keys}")
    model = MotionVQVAE(config or VQVAEConfig())
    load_state_dict_strict(model, checkpoint["net"], str(path))
    return MotionTokenizer(model, Normalizer(np.load(mean_path), np.load(std_path))).to(device)
