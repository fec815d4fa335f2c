"""The SOLAMI motion tokenizers: T2M-GPT-style 1D-conv VQ-VAEs and the relative-transform VQ.

Module and parameter names match the original ``VQVae`` and ``VQVAE_Trans`` (SOLAMI's
``models/vla/motion/vqvae.py``, which its server imports; the same code as its
``models/motiongpt/mGPT/archs/mgpt_vq.py`` and MotionGPT's ``mGPT.archs.mgpt_vq``) so that its
``body.pth``, ``hand.pth`` and ``transform.pth`` state dicts load with ``strict=True``, and the
computation is the same: ``tests/test_motion_golden.py`` checks tiny checkpoints written by the
original code against its recorded ids (exactly) and decoded features. Unlike the original,
``encode`` returns the ids alone and ``decode`` works on batches (the original decodes one
sequence); the original decoder always up-samples by 2, so only ``stride_t=2`` is the original.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

# EMA decay of the codebook statistics while training.
CODEBOOK_DECAY = 0.99


@dataclasses.dataclass(frozen=True)
class VQConfig:
    """Architecture of a 1D-conv motion VQ-VAE (``body.yaml``/``hand.yaml`` of the original)."""

    nfeats: int
    code_num: int = 512
    code_dim: int = 512
    output_emb_width: int = 512
    down_t: int = 2
    stride_t: int = 2
    width: int = 512
    depth: int = 3
    dilation_growth_rate: int = 3

    @property
    def frames_per_token(self) -> int:
        return self.stride_t**self.down_t

    def decoder_context_tokens(self) -> int:
        """Tokens on each side that influence a decoded frame (its receptive field), rounded
        up with one token of margin: decoding a window with this much context on both sides
        gives exactly the frames of decoding the whole sequence."""
        dilation_sum = sum(self.dilation_growth_rate**d for d in range(self.depth))
        radius = 1.0  # first conv, kernel 3, at token rate
        for stage in range(self.down_t):
            rate = self.stride_t**stage
            radius += dilation_sum / rate + 1.0 / (rate * self.stride_t)
        radius += 2.0 / self.frames_per_token  # the two output convs
        return math.ceil(radius) + 1


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    """Architecture of the relative-transform VQ (``trans.yaml`` of the original)."""

    nfeats: int = 5
    code_num: int = 256
    code_dim: int = 16
    # Hidden widths 16 and 32 times this (fixed at 3 in the original).
    hidden_scale: int = 3


BODY = VQConfig(nfeats=135)
HAND = VQConfig(nfeats=180)
TRANSFORM = TransformConfig()


class ResConv1DBlock(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.norm1 = nn.Identity()
        self.norm2 = nn.Identity()
        self.activation1 = nn.ReLU()
        self.activation2 = nn.ReLU()
        self.conv1 = nn.Conv1d(width, width, 3, 1, dilation, dilation)
        self.conv2 = nn.Conv1d(width, width, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.activation1(self.norm1(x)))
        return x + self.conv2(self.activation2(self.norm2(h)))


class Resnet1D(nn.Module):
    """Dilated residual stack; dilations growth**d, largest first (as T2M-GPT)."""

    def __init__(self, width: int, depth: int, growth: int) -> None:
        super().__init__()
        blocks = [ResConv1DBlock(width, growth**d) for d in range(depth)]
        self.model = nn.Sequential(*blocks[::-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    def __init__(self, c: VQConfig) -> None:
        super().__init__()
        kernel, pad = c.stride_t * 2, c.stride_t // 2
        blocks: list[nn.Module] = [nn.Conv1d(c.nfeats, c.width, 3, 1, 1), nn.ReLU()]
        for _ in range(c.down_t):
            blocks.append(
                nn.Sequential(
                    nn.Conv1d(c.width, c.width, kernel, c.stride_t, pad),
                    Resnet1D(c.width, c.depth, c.dilation_growth_rate),
                )
            )
        blocks.append(nn.Conv1d(c.width, c.output_emb_width, 3, 1, 1))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, c: VQConfig) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv1d(c.output_emb_width, c.width, 3, 1, 1), nn.ReLU()]
        for _ in range(c.down_t):
            blocks.append(
                nn.Sequential(
                    Resnet1D(c.width, c.depth, c.dilation_growth_rate),
                    nn.Upsample(scale_factor=c.stride_t, mode="nearest"),
                    nn.Conv1d(c.width, c.width, 3, 1, 1),
                )
            )
        blocks += [nn.Conv1d(c.width, c.width, 3, 1, 1), nn.ReLU()]
        blocks.append(nn.Conv1d(c.width, c.nfeats, 3, 1, 1))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class QuantizeEMAReset(nn.Module):
    """Nearest-codebook quantiser; while training, EMA codebook updates with dead-code reset.

    Only ``codebook`` is a saved buffer (as the original); the EMA statistics live in
    ``code_sum``/``code_count`` and start from the first training batch.
    """

    def __init__(self, code_num: int, code_dim: int, decay: float = CODEBOOK_DECAY) -> None:
        super().__init__()
        self.code_num = code_num
        self.code_dim = code_dim
        self.decay = decay
        self.register_buffer("codebook", torch.zeros(code_num, code_dim))
        self.code_sum: torch.Tensor | None = None
        self.code_count: torch.Tensor | None = None

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) index of the nearest code (squared Euclidean distance)."""
        distance = (
            x.pow(2).sum(-1, keepdim=True)
            - 2 * x @ self.codebook.t()
            + self.codebook.pow(2).sum(-1)[None]
        )
        return distance.argmin(-1)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.codebook)

    def _random_codes(self, x: torch.Tensor) -> torch.Tensor:
        repeats = math.ceil(self.code_num / x.shape[0])
        tiled = x.repeat(repeats, 1)
        tiled = tiled + torch.randn_like(tiled) * (0.01 / math.sqrt(self.code_dim))
        return tiled[torch.randperm(tiled.shape[0], device=x.device)[: self.code_num]]

    @torch.no_grad()
    def _start(self, x: torch.Tensor) -> None:
        self.codebook.copy_(self._random_codes(x))
        self.code_sum = self.codebook.clone()
        self.code_count = torch.ones(self.code_num, device=x.device)

    @torch.no_grad()
    def _update(self, x: torch.Tensor, ids: torch.Tensor) -> None:
        onehot = F.one_hot(ids, self.code_num).to(x.dtype).t()
        self.code_sum = self.decay * self.code_sum + (1 - self.decay) * (onehot @ x)
        self.code_count = self.decay * self.code_count + (1 - self.decay) * onehot.sum(-1)
        used = (self.code_count >= 1.0).to(x.dtype)[:, None]
        updated = self.code_sum / self.code_count.clamp_min(1e-6)[:, None]
        self.codebook.copy_(used * updated + (1 - used) * self._random_codes(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, D) latents -> straight-through quantised latents, commitment loss, perplexity."""
        if self.training and self.code_sum is None:
            self._start(x.detach())
        ids = self.quantize(x)
        quantized = self.dequantize(ids)
        if self.training:
            self._update(x.detach(), ids)
        commit = F.mse_loss(x, quantized.detach())
        counts = torch.bincount(ids, minlength=self.code_num).to(x.dtype)
        prob = counts / counts.sum()
        perplexity = torch.exp(-(prob * torch.log(prob + 1e-7)).sum())
        return x + (quantized - x).detach(), commit, perplexity


class VQVae(nn.Module):
    """Motion features (B, T, nfeats) <-> token ids (B, T / 4)."""

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantizer = QuantizeEMAReset(config.code_num, config.code_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: reconstruction (B, T, nfeats), commitment loss, perplexity."""
        latent = self.encoder(x.permute(0, 2, 1))
        batch, dim, steps = latent.shape
        flat = latent.permute(0, 2, 1).reshape(-1, dim)
        quantized, commit, perplexity = self.quantizer(flat)
        quantized = quantized.view(batch, steps, dim).permute(0, 2, 1)
        return self.decoder(quantized).permute(0, 2, 1), commit, perplexity

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, nfeats) with T a multiple of 4 -> (B, T / 4) ids."""
        latent = self.encoder(x.permute(0, 2, 1)).permute(0, 2, 1)
        return self.quantizer.quantize(latent.reshape(-1, latent.shape[-1])).view(x.shape[0], -1)

    @torch.inference_mode()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, N) ids -> (B, 4 N, nfeats)."""
        latent = self.quantizer.dequantize(ids).permute(0, 2, 1).contiguous()
        return self.decoder(latent).permute(0, 2, 1)


class EncoderTrans(nn.Module):
    def __init__(self, c: TransformConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(c.nfeats, 16 * c.hidden_scale)
        self.fc2 = nn.Linear(16 * c.hidden_scale, 32 * c.hidden_scale)
        self.fc3 = nn.Linear(32 * c.hidden_scale, c.code_dim)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


class DecoderTrans(nn.Module):
    def __init__(self, c: TransformConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(c.code_dim, 16 * c.hidden_scale)
        self.fc2 = nn.Linear(16 * c.hidden_scale, 32 * c.hidden_scale)
        self.fc3 = nn.Linear(32 * c.hidden_scale, c.nfeats)
        self.relu = nn.ReLU()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(z)))))


class TransformVQ(nn.Module):
    """Relative transform (B, 5) <-> one id in [0, 256) per row (``VQVAE_Trans``)."""

    def __init__(self, config: TransformConfig = TRANSFORM) -> None:
        super().__init__()
        self.config = config
        self.encoder = EncoderTrans(config)
        self.decoder = DecoderTrans(config)
        self.quantizer = QuantizeEMAReset(config.code_num, config.code_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        quantized, commit, perplexity = self.quantizer(self.encoder(x))
        return self.decoder(quantized), commit, perplexity

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer.quantize(self.encoder(x))

    @torch.inference_mode()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.dequantize(ids))


def randomize_codebook(model: VQVae | TransformVQ, sample: np.ndarray, seed: int = 0) -> None:
    """Fills the codebook with encoder outputs of ``sample`` plus noise, so that a randomly
    initialised model (tests, benchmarks) spreads its ids over the whole vocabulary."""
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        x = torch.as_tensor(sample, dtype=torch.float32)
        if isinstance(model, VQVae):
            latent = model.encoder(x.permute(0, 2, 1)).permute(0, 2, 1)
        else:
            latent = model.encoder(x)
        latent = latent.reshape(-1, latent.shape[-1])
        scale = latent.std(0, keepdim=True) + 1e-6
        picks = torch.randint(len(latent), (model.quantizer.code_num,), generator=generator)
        noise = torch.randn(model.quantizer.code_num, latent.shape[-1], generator=generator)
        model.quantizer.codebook.copy_(latent[picks] + 0.5 * scale * noise)
