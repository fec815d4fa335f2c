"""SoundStorm for SpeechTokenizer: RVQ-1 units -> RVQ layers 2-8, conditioned on a voice prompt.

The architecture and parameter names are those of soundstorm-speechtokenizer (a conformer
from soundstorm-pytorch with summed per-quantizer code embeddings, one logit head per
quantizer, and the semantic RVQ-1 tokens added as a condition), so its released checkpoints
load with ``strict=True``. Decoding is MaskGIT: RVQ-2 is unmasked over ``steps`` greedy
iterations with a cosine schedule, each higher layer in one greedy pass; the prompt's
acoustic tokens stay fixed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from einops import rearrange
from einops.layers.torch import EinMix, Rearrange
from torch import nn

from solami.errors import EngineUnavailable

CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class SoundStormConfig:
    """Sizes of the model; the defaults are the released SOLAMI/AnyGPT SoundStorm."""

    dim: int = 1024
    depth: int = 12
    heads: int = 8
    dim_head: int = 128
    ff_mult: int = 4
    conv_expansion_factor: int = 2
    conv_kernel_size: int = 31
    codebook_size: int = 1024
    # Acoustic RVQ layers predicted (SpeechTokenizer layers 2-8).
    num_quantizers: int = 7
    num_semantic_token_ids: int = 1024


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.sigmoid()


class GLU(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, gate = x.chunk(2, dim=self.dim)
        return out * gate.sigmoid()


class DepthWiseConv1d(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.padding = (kernel_size // 2, kernel_size // 2 - (kernel_size + 1) % 2)
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class ChanLayerNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-6 if x.dtype == torch.float32 else 1e-4
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) * var.clamp(min=eps).rsqrt() * self.gamma


class Scale(nn.Module):
    def __init__(self, scale: float, fn: nn.Module) -> None:
        super().__init__()
        self.scale = scale
        self.fn = fn

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(x, **kwargs) * self.scale


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(self.norm(x), **kwargs)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, rotary: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.to_q(x), *self.to_kv(x).chunk(2, dim=-1))
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        q = q * rotary.cos() + _rotate_half(q) * rotary.sin()
        k = k * rotary.cos() + _rotate_half(k) * rotary.sin()
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim * mult),
            Swish(),
            nn.Dropout(0.0),
            nn.Linear(dim * mult, dim),
            nn.Dropout(0.0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConformerConvModule(nn.Module):
    def __init__(self, dim: int, expansion_factor: int, kernel_size: int) -> None:
        super().__init__()
        inner = dim * expansion_factor
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            Rearrange("b n c -> b c n"),
            nn.Conv1d(dim, inner * 2, 1),
            GLU(dim=1),
            DepthWiseConv1d(inner, kernel_size),
            Swish(),
            ChanLayerNorm(inner),
            nn.Conv1d(inner, dim, 1),
            Rearrange("b c n -> b n c"),
            nn.Dropout(0.0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConformerBlock(nn.Module):
    def __init__(self, c: SoundStormConfig) -> None:
        super().__init__()
        self.ff1 = Scale(0.5, PreNorm(c.dim, FeedForward(c.dim, c.ff_mult)))
        self.attn = PreNorm(c.dim, Attention(c.dim, c.heads, c.dim_head))
        self.conv = ConformerConvModule(c.dim, c.conv_expansion_factor, c.conv_kernel_size)
        self.ff2 = Scale(0.5, PreNorm(c.dim, FeedForward(c.dim, c.ff_mult)))
        self.post_norm = nn.LayerNorm(c.dim)

    def forward(self, x: torch.Tensor, rotary: torch.Tensor) -> torch.Tensor:
        x = self.ff1(x) + x
        x = self.attn(x, rotary=rotary) + x
        x = self.conv(x) + x
        x = self.ff2(x) + x
        return self.post_norm(x)


class Conformer(nn.Module):
    def __init__(self, c: SoundStormConfig) -> None:
        super().__init__()
        self.dim = c.dim
        self.layers = nn.ModuleList(ConformerBlock(c) for _ in range(c.depth))
        inv_freq = 1.0 / (10000 ** (torch.arange(0, c.dim_head, 2).float() / c.dim_head))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.arange(x.shape[-2], device=x.device).type_as(self.inv_freq)
        freqs = torch.einsum("i , j -> i j", t, self.inv_freq)
        rotary = torch.cat((freqs, freqs), dim=-1)
        for block in self.layers:
            x = block(x, rotary)
        return x


class ConformerWrapper(nn.Module):
    """Sums the per-quantizer code embeddings of each frame, runs the conformer, and predicts
    every quantizer's logits for every frame."""

    def __init__(self, c: SoundStormConfig) -> None:
        super().__init__()
        q = c.num_quantizers
        self.conformer = Conformer(c)
        self.num_quantizers = q
        self.codebook_size = c.codebook_size
        self.code_embeds = nn.Embedding((c.codebook_size + 1) * q, c.dim)
        offsets = torch.arange(q) * (c.codebook_size + 1)
        self.register_buffer("quantizer_offsets", offsets, persistent=False)
        self.heads = nn.Sequential(
            nn.Linear(c.dim, c.dim * q), Rearrange("b n (h d) -> b (n h) d", h=q)
        )
        self.to_logits = nn.Sequential(
            nn.LayerNorm(c.dim),
            Rearrange("b (n gq) d -> b n gq d", gq=q),
            EinMix(
                "b n gq d -> b n gq l",
                weight_shape="gq d l",
                bias_shape="gq l",
                gq=q,
                l=c.codebook_size,
                d=c.dim,
            ),
            Rearrange("b ... d -> b (...) d"),
        )

    def forward(self, codes: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """codes (b, n, q) with ``codebook_size`` as the mask id -> logits (b, n, q, l)."""
        x = self.code_embeds(codes + self.quantizer_offsets).sum(dim=2) + cond
        logits = self.to_logits(self.heads(self.conformer(x)))
        return rearrange(logits, "b (n q) l -> b n q l", q=self.num_quantizers)


class SoundStorm(nn.Module):
    def __init__(self, config: SoundStormConfig) -> None:
        super().__init__()
        self.config = config
        self.net = ConformerWrapper(config)
        self.semantic_token_emb = nn.Embedding(config.num_semantic_token_ids, config.dim)

    @property
    def mask_id(self) -> int:
        return self.config.codebook_size

    @torch.inference_mode()
    def generate(
        self, semantic: torch.Tensor, prompt: torch.Tensor | None = None, steps: int = 4
    ) -> torch.Tensor:
        """semantic (1, n) RVQ-1 ids, prompt (1, p, 1 + q) codes -> (1, n, 1 + q) codes."""
        q = self.config.num_quantizers
        n = semantic.shape[1]
        known = semantic.new_zeros((1, 0, q)) if prompt is None else prompt[:, :, 1:]
        cond_ids = semantic if prompt is None else torch.cat([prompt[:, :, 0], semantic], 1)
        cond = self.semantic_token_emb(cond_ids)
        p = known.shape[1]
        codes = torch.cat([known, semantic.new_full((1, n, q), self.mask_id)], dim=1)
        for level in range(q):
            iterations = steps if level == 0 else 1
            masked = torch.ones(n, dtype=torch.bool, device=semantic.device)
            for i in range(iterations):
                probs = self.net(codes, cond)[0, p:, level].softmax(dim=-1)
                confidence, ids = probs.max(dim=-1)
                codes[0, p:, level] = torch.where(masked, ids, codes[0, p:, level])
                keep_masked = math.floor(n * math.cos(math.pi / 2 * (i + 1) / iterations))
                if keep_masked <= 0:
                    break
                confidence = confidence.masked_fill(~masked, math.inf)
                masked = torch.zeros_like(masked)
                masked[confidence.argsort()[:keep_masked]] = True
                codes[0, p:, level] = codes[0, p:, level].masked_fill(masked, self.mask_id)
        return torch.cat([semantic.unsqueeze(-1), codes[:, p:]], dim=-1)


def read_config(model_dir: Path) -> SoundStormConfig:
    """``model_dir/config.json`` when present, else the released architecture."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        return SoundStormConfig()
    values = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(SoundStormConfig)}
    return SoundStormConfig(**{k: v for k, v in values.items() if k in names})


def load_soundstorm(model_dir: Path, checkpoint: str, device: str = "cpu") -> SoundStorm:
    """Builds the model from ``model_dir`` and loads ``model_dir/checkpoint`` strictly."""
    path = Path(model_dir) / checkpoint
    if not path.is_file():
        raise EngineUnavailable(f"SoundStorm checkpoint missing: {path}")
    model = SoundStorm(read_config(Path(model_dir)))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state.get("model"), dict):
        state = state["model"]
    model.load_state_dict(state)
    return model.to(device).eval()


def save_random_soundstorm(model_dir: Path, config: SoundStormConfig, checkpoint: str) -> None:
    """Writes ``config`` and a randomly initialised checkpoint (tests, benchmarks)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(config)))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        state = SoundStorm(config).state_dict()
    torch.save(state, model_dir / checkpoint)
