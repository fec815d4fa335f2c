"""SoundStorm for SpeechTokenizer: RVQ-1 units -> RVQ layers 2-8, conditioned on a voice prompt.

This is the SoundStorm that SOLAMI and AnyGPT load from ``speechtokenizer_soundstorm_mls.pt``
(their vendored ``soundstorm_speechtokenizer`` package, itself soundstorm-speechtokenizer with
the conformer's conv module split into ``net1`` / ``ds_conv`` / ``net2``). The parameter names
are theirs, so that checkpoint loads into ours with ``strict=True`` as it does into theirs: a
conformer with summed per-quantizer code embeddings, the semantic RVQ-1 tokens added as a
condition, one logit head per quantizer, attention computed as in their ``attn_flash=False``
configuration.

Decoding is theirs too (``SoundStorm.generate`` as SOLAMI calls it: ``steps`` = ``vc_steps`` =
4, ``greedy=True``, top-k threshold 0.7, one fully sampled level):

- Level 0 (RVQ-2) takes ``steps + 1`` passes. Pass ``i`` keeps the top 30 % of the logits
  and samples with Gumbel noise at temperature ``i / steps``; with ``greedy`` the last pass
  is an argmax. Every pass writes the masked positions of every level of the target. After
  pass ``i < steps`` the samples are ranked by their softmax probability over every frame
  (prompt included) and every level; the ``floor(cos(pi/2 * i/steps) * (prompt + target
  frames))`` least likely are masked again where they lie on the target's level 0, and all
  higher levels of the target are masked again. The prompt is never masked.
- Each higher level takes one argmax pass (sampled at temperature 0 without ``greedy``) that
  overwrites that level and all above it at every frame, the prompt's included.

Sampling draws from a ``torch.Generator`` (seed 0 per call unless one is passed) in the
original's order, so a seeded call reproduces the original's output for the same seed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from einops import rearrange, reduce
from einops.layers.torch import EinMix, Rearrange
from torch import nn

from solami.errors import EngineUnavailable

CONFIG_FILE = "config.json"
# SOLAMI's generate_config.json "vc_steps".
DEFAULT_STEPS = 4
# Fraction of the vocabulary dropped before sampling (the original's ``topk_pres``).
TOP_K_THRESHOLD = 0.7
# Seed of a call's sampling when no generator is given.
DEFAULT_SEED = 0
# The original's epsilons in Gumbel sampling.
_LOG_EPS = 1e-10
_MIN_TEMPERATURE = 1e-10
# How many offending keys a load error names.
_KEYS_SHOWN = 5


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
    """Rotary self-attention, softmax(q k^T / sqrt(d)) v written out (the released model's
    ``attn_flash=False`` path, so results match it to the bit)."""

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
        sim = torch.einsum("b h i d, b h j d -> b h i j", q, k) * q.shape[-1] ** -0.5
        out = torch.einsum("b h i j, b h j d -> b h i d", sim.softmax(dim=-1), v)
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
    """Pointwise conv + GLU (``net1``), depthwise conv (``ds_conv``), Swish, channel norm and
    pointwise conv (``net2``): the SOLAMI/AnyGPT split of the module."""

    def __init__(self, dim: int, expansion_factor: int, kernel_size: int) -> None:
        super().__init__()
        inner = dim * expansion_factor
        self.net1 = nn.Sequential(
            nn.LayerNorm(dim),
            Rearrange("b n c -> b c n"),
            nn.Conv1d(dim, inner * 2, 1),
            GLU(dim=1),
        )
        self.ds_conv = DepthWiseConv1d(inner, kernel_size)
        self.net2 = nn.Sequential(
            Swish(),
            ChanLayerNorm(inner),
            nn.Conv1d(inner, dim, 1),
            Rearrange("b c n -> b n c"),
            nn.Dropout(0.0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net2(self.ds_conv(self.net1(x)))


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
        """codes (b, n, q) with ``codebook_size`` as the mask id -> logits (b, n * q, l)."""
        x = reduce(self.code_embeds(codes + self.quantizer_offsets), "b n q d -> b n d", "sum")
        return self.to_logits(self.heads(self.conformer(x + cond)))


def _top_k(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Logits outside the top ``ceil((1 - threshold) * vocabulary)`` set to -inf."""
    k = math.ceil((1 - threshold) * logits.shape[-1])
    values, indices = logits.topk(k, dim=-1)
    return torch.full_like(logits, -math.inf).scatter_(-1, indices, values)


def _gumbel_sample(
    logits: torch.Tensor, temperature: float, generator: torch.Generator
) -> torch.Tensor:
    uniform = torch.empty_like(logits).uniform_(0, 1, generator=generator)
    noise = -torch.log(-torch.log(uniform + _LOG_EPS) + _LOG_EPS)
    return (logits / max(temperature, _MIN_TEMPERATURE) + noise).argmax(dim=-1)


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
        self,
        semantic: torch.Tensor,
        prompt: torch.Tensor | None = None,
        steps: int = DEFAULT_STEPS,
        *,
        greedy: bool = True,
        top_k_threshold: float = TOP_K_THRESHOLD,
        sampled_levels: int = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """semantic (b, n) RVQ-1 ids, prompt (b, p, 1 + q) codes -> (b, n, 1 + q) codes.

        ``sampled_levels`` is the original's ``num_full_sampling_levels``: how many levels
        take ``steps + 1`` passes (the rest one pass each)."""
        if steps < 1:
            raise ValueError(f"SoundStorm needs at least one decoding step, got {steps}")
        q = self.config.num_quantizers
        b, n = semantic.shape
        device = semantic.device
        if prompt is None:
            prompt = semantic.new_zeros((b, 0, 1 + q))
        if generator is None:
            generator = torch.Generator(device).manual_seed(DEFAULT_SEED)
        p = prompt.shape[1]
        cond = self.semantic_token_emb(torch.cat([prompt[:, :, 0], semantic], dim=1))
        codes = torch.cat([prompt[:, :, 1:], semantic.new_full((b, n, q), self.mask_id)], dim=1)
        writable = torch.zeros_like(codes, dtype=torch.bool)
        writable[:, p:] = True
        masked = writable.clone()
        # Entries left masked after each pass: the cosine schedule times prompt + target frames.
        frames = torch.full((b,), p + n, device=device)
        times = torch.linspace(0.0, 1.0, steps + 1, device=device)
        schedule = (torch.cos(times * math.pi / 2)[:, None] * frames).long()
        for level in range(q):
            sampled = level < sampled_levels
            counts = schedule if sampled else schedule.new_zeros((1, b))
            for i, count in enumerate(counts):
                logits = self.net(codes, cond)
                last = bool((count == 0).all())
                if greedy and (not sampled or last):
                    ids = logits.argmax(dim=-1)
                else:
                    logits = _top_k(logits, top_k_threshold)
                    ids = _gumbel_sample(logits, i / steps, generator)
                frame_ids = ids.view(b, -1, q)
                if not sampled:
                    codes[:, :, level:] = frame_ids[:, :, level:]
                    continue
                codes = torch.where(masked, frame_ids, codes)
                if last:
                    continue
                doubt = 1 - logits.softmax(dim=-1).gather(2, ids[..., None])[..., 0]
                rank = doubt.argsort(dim=-1, descending=True).argsort(dim=-1)
                masked = (rank < count[:, None]).view(b, -1, q)
                masked[:, :, level + 1 :] = True
                masked &= writable
                codes = codes.masked_fill(masked, self.mask_id)
        return torch.cat([semantic[..., None], codes[:, p:]], dim=-1)


def read_config(model_dir: Path) -> SoundStormConfig:
    """``model_dir/config.json`` when present, else the released architecture."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        return SoundStormConfig()
    values = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(SoundStormConfig)}
    return SoundStormConfig(**{k: v for k, v in values.items() if k in names})


def _check_layout(path: Path, state: dict, expected: dict) -> None:
    """Raises with the first offending keys when ``state`` is not the model's layout."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        hint = ""
        if any(".conv.net." in k for k in unexpected):
            hint = (
                " (conv.net.* is soundstorm-speechtokenizer's layout; the SOLAMI/AnyGPT model"
                " names the conformer conv module conv.net1 / conv.ds_conv / conv.net2)"
            )
        raise EngineUnavailable(
            f"SoundStorm checkpoint {path} is not the SOLAMI/AnyGPT SoundStorm layout{hint}: "
            f"missing {missing[:_KEYS_SHOWN]}, unexpected {unexpected[:_KEYS_SHOWN]}; "
            f"expected {len(expected)} keys such as {list(expected)[:_KEYS_SHOWN]}"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise EngineUnavailable(
            f"SoundStorm checkpoint {path} does not fit the sizes in {CONFIG_FILE} "
            f"(or the released defaults): {wrong[:_KEYS_SHOWN]}"
        )


def load_soundstorm(model_dir: Path, checkpoint: str, device: str = "cpu") -> SoundStorm:
    """Builds the model from ``model_dir`` and loads ``model_dir/checkpoint`` strictly."""
    path = Path(model_dir) / checkpoint
    if not path.is_file():
        raise EngineUnavailable(f"SoundStorm checkpoint missing: {path}")
    model = SoundStorm(read_config(Path(model_dir)))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state.get("model"), dict):
        state = state["model"]
    _check_layout(path, state, model.state_dict())
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def save_random_soundstorm(model_dir: Path, config: SoundStormConfig, checkpoint: str) -> None:
    """Writes ``config`` and a randomly initialised checkpoint (tests, benchmarks)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(config)))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        state = SoundStorm(config).state_dict()
    torch.save(state, model_dir / checkpoint)
