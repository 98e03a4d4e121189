"""The motion VQ-VAE of T2M-GPT / Motion-Agent / IRG-MotionLLM, in one file.

Normalised HumanML3D features (B, T, 263) go through a 1-D conv encoder that downsamples time by
stride_t ** down_t (4 in the release), each latent vector snaps to the nearest of nb_code codebook rows,
and a mirrored decoder with nearest-neighbour upsampling turns the code rows back into features.

Module and buffer names follow the release exactly (`vqvae.encoder.model.2.1.model.0.conv1.weight`,
`vqvae.quantizer.codebook`, ...), so the Motion-Agent `vqvae.pth` state dict loads with strict=True
into `MotionVQVAE(VQVAEConfig())`; reference/irg-motionllm.md section 1.4 lists the layout.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from backend.config_file import check_keys


@dataclass
class VQVAEConfig:
    input_dim: int = 263        # HumanML3D features (KIT-ML: 251)
    nb_code: int = 512          # codebook size = number of <Motion_k> tokens in the LLM
    code_dim: int = 512         # width of a codebook row (the release's output_emb_width)
    width: int = 512            # channels of the conv stacks
    depth: int = 3              # residual blocks per Resnet1D
    down_t: int = 2             # number of stride-2 stages: time shrinks by stride_t ** down_t
    stride_t: int = 2
    dilation_growth: int = 3    # block k of a Resnet1D has dilation growth ** k, applied in reverse order
    ema_decay: float = 0.99     # mu of the EMA-reset codebook update during training

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "ema_decay":
                if not 0.0 < value < 1.0:
                    raise ValueError(f"ema_decay must be in (0, 1), got {value}")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VQ-VAE config: {f.name} must be a positive integer, got {value!r}")
        if self.stride_t < 2:
            raise ValueError(f"stride_t must be at least 2, got {self.stride_t}")

    @property
    def downsample(self) -> int:
        """Frames per code (4 in the release)."""
        return self.stride_t ** self.down_t

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "VQ-VAE config") -> "VQVAEConfig":
        check_keys(d, cls, source)
        return cls(**d)


class ResConv1DBlock(nn.Module):
    """Pre-activation residual block: x + conv2(relu(conv1(relu(x)))), conv1 dilated k3, conv2 k1."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 3, 1, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Resnet1D(nn.Module):
    def __init__(self, channels: int, depth: int, growth: int):
        super().__init__()
        dilations = [growth ** k for k in range(depth)][::-1]  # 9, 3, 1 for depth 3
        self.model = nn.Sequential(*[ResConv1DBlock(channels, d) for d in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    def __init__(self, c: VQVAEConfig):
        super().__init__()
        k, pad = 2 * c.stride_t, c.stride_t // 2
        layers: list[nn.Module] = [nn.Conv1d(c.input_dim, c.width, 3, 1, 1), nn.ReLU()]
        for _ in range(c.down_t):
            layers.append(nn.Sequential(nn.Conv1d(c.width, c.width, k, c.stride_t, pad),
                                        Resnet1D(c.width, c.depth, c.dilation_growth)))
        layers.append(nn.Conv1d(c.width, c.code_dim, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, c: VQVAEConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(c.code_dim, c.width, 3, 1, 1), nn.ReLU()]
        for _ in range(c.down_t):
            layers.append(nn.Sequential(Resnet1D(c.width, c.depth, c.dilation_growth),
                                        nn.Upsample(scale_factor=c.stride_t, mode="nearest"),
                                        nn.Conv1d(c.width, c.width, 3, 1, 1)))
        layers += [nn.Conv1d(c.width, c.width, 3, 1, 1), nn.ReLU(), nn.Conv1d(c.width, c.input_dim, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _distributed() -> bool:
    """Whether this is one of several training processes (torchrun / accelerate launch)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


class QuantizeEMAReset(nn.Module):
    """Nearest-neighbour codebook. In training mode the rows follow an exponential moving average of the
    latents assigned to them, and rows nobody used lately are reset to random latents of the batch.
    Only `codebook` is saved in the state dict (as in the release); the EMA statistics are training state
    (`ema_state` / `load_ema_state`). A zero `code_count` means the codebook was never fitted to data, and the
    first training batch initialises it. Under torchrun / accelerate the update uses the whole global batch
    (sums all-reduced, reset rows from rank 0), so every process keeps the same codebook."""

    def __init__(self, nb_code: int, code_dim: int, decay: float):
        super().__init__()
        self.nb_code, self.code_dim, self.decay = nb_code, code_dim, decay
        self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        self.register_buffer("code_sum", torch.zeros(nb_code, code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(nb_code), persistent=False)

    def ema_state(self) -> dict[str, torch.Tensor]:
        return {"code_sum": self.code_sum.clone(), "code_count": self.code_count.clone()}

    def load_ema_state(self, state: dict[str, torch.Tensor]) -> None:
        self.code_sum.copy_(state["code_sum"])
        self.code_count.copy_(state["code_count"])

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """(N, code_dim) latents -> (N,) indices of the nearest rows (squared L2)."""
        dist = (x.pow(2).sum(-1, keepdim=True) - 2 * x @ self.codebook.t()
                + self.codebook.pow(2).sum(-1)[None, :])
        return dist.argmin(dim=-1)

    def dequantize(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.codebook)

    def _random_rows(self, x: torch.Tensor) -> torch.Tensor:
        """nb_code rows drawn from the batch latents (repeated with a little noise when the batch is small)."""
        if x.shape[0] < self.nb_code:
            reps = (self.nb_code + x.shape[0] - 1) // x.shape[0]
            std = 0.01 / x.shape[1] ** 0.5
            x = x.repeat(reps, 1) + torch.randn(reps * x.shape[0], x.shape[1], device=x.device) * std
        return x[torch.randperm(x.shape[0], device=x.device)[: self.nb_code]]

    def _shared_random_rows(self, x: torch.Tensor) -> torch.Tensor:
        """`_random_rows`, the same on every process of a distributed run (rank 0's)."""
        rows = self._random_rows(x)
        if _distributed():
            torch.distributed.broadcast(rows, src=0)
        return rows

    @torch.no_grad()
    def _ema_update(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        onehot = F.one_hot(idx, self.nb_code).type_as(x)  # (N, nb_code)
        batch_sum, batch_count = onehot.t() @ x, onehot.sum(0)
        if _distributed():   # the EMA of the global batch: every process then holds the same codebook
            torch.distributed.all_reduce(batch_sum)
            torch.distributed.all_reduce(batch_count)
        self.code_sum.mul_(self.decay).add_(batch_sum, alpha=1 - self.decay)
        self.code_count.mul_(self.decay).add_(batch_count, alpha=1 - self.decay)
        used = (self.code_count >= 1.0).unsqueeze(1).type_as(x)
        centres = self.code_sum / self.code_count.clamp(min=1e-6).unsqueeze(1)
        self.codebook.copy_(used * centres + (1 - used) * self._shared_random_rows(x))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, code_dim, T') -> (quantised z with straight-through gradients, codes (B, T'),
        commitment loss, perplexity of the code histogram)."""
        b, c, t = z.shape
        x = z.permute(0, 2, 1).reshape(-1, c)
        if self.training and self.code_count.sum() == 0:  # first training batch: start from the data
            with torch.no_grad():
                self.codebook.copy_(self._shared_random_rows(x.detach()))
                self.code_sum.copy_(self.codebook)
                self.code_count.fill_(1.0)
        idx = self.quantize(x)
        xq = self.dequantize(idx)
        if self.training:
            self._ema_update(x.detach(), idx)
        commit = F.mse_loss(x, xq.detach())
        xq = x + (xq - x).detach()
        prob = torch.bincount(idx, minlength=self.nb_code).float() / idx.numel()
        perplexity = torch.exp(-(prob * torch.log(prob + 1e-7)).sum())
        return xq.view(b, t, c).permute(0, 2, 1), idx.view(b, t), commit, perplexity


class MotionVQVAE(nn.Module):
    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        self.vqvae = nn.ModuleDict(dict(
            encoder=Encoder(config),
            decoder=Decoder(config),
            quantizer=QuantizeEMAReset(config.nb_code, config.code_dim, config.ema_decay),
        ))

    def _check_features(self, x: torch.Tensor) -> None:
        c = self.config
        if x.ndim != 3 or x.shape[-1] != c.input_dim:
            raise ValueError(f"features must have shape (batch, frames, {c.input_dim}), got {tuple(x.shape)}")
        if x.shape[1] == 0 or x.shape[1] % c.downsample:
            raise ValueError(f"frames must be a positive multiple of {c.downsample} (one code per "
                             f"{c.downsample} frames), got {x.shape[1]}; crop the motion first")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised features (B, T, D) -> (reconstruction (B, T, D), codes (B, T/4), commitment loss, perplexity)."""
        self._check_features(x)
        z = self.vqvae.encoder(x.permute(0, 2, 1))
        zq, codes, commit, perplexity = self.vqvae.quantizer(z)
        recon = self.vqvae.decoder(zq).permute(0, 2, 1)
        return recon, codes, commit, perplexity

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised features (B, T, D), T a multiple of 4 -> codes (B, T/4) int64."""
        self._check_features(x)
        z = self.vqvae.encoder(x.permute(0, 2, 1))
        b, c, t = z.shape
        return self.vqvae.quantizer.quantize(z.permute(0, 2, 1).reshape(-1, c)).view(b, t)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, N) or (N,) -> normalised features (B, 4N, D)."""
        codes = torch.as_tensor(codes, device=self.vqvae.quantizer.codebook.device)
        if codes.ndim == 1:
            codes = codes[None]
        if codes.ndim != 2 or codes.shape[1] == 0:
            raise ValueError(f"codes must have shape (batch, n) with n >= 1, got {tuple(codes.shape)}")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"codes must be integers, got {codes.dtype}")
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= self.config.nb_code:
            raise ValueError(f"codes must be in 0..{self.config.nb_code - 1}, got values from {lo} to {hi}")
        zq = self.vqvae.quantizer.dequantize(codes.long()).permute(0, 2, 1)
        return self.vqvae.decoder(zq).permute(0, 2, 1)
