"""Self-supervised speech encoders in torch: WavLM and wav2vec 2.0, the audio encoders UniTalker
fine-tunes (UniTalker-B: WavLM base plus; UniTalker-L: wav2vec 2.0 large XLSR-53).

Module and parameter names follow the ``transformers`` implementations (``WavLMModel``,
``Wav2Vec2Model``), so their checkpoints, and UniTalker's ``audio_encoder.*`` weights, load
as they are. The positional convolution is weight-normalised: its magnitude and direction are
``...conv.parametrizations.weight.original0/1`` (older checkpoints: ``weight_g/weight_v``,
renamed on load).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Shape of a WavLM / wav2vec 2.0 encoder."""

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    # "group": GroupNorm after the first conv only (base models); "layer": LayerNorm after all.
    feat_extract_norm: str = "group"
    # Pre-norm transformer layers with a final LayerNorm (large models) instead of post-norm.
    stable_layer_norm: bool = False
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    # WavLM's gated relative position bias; False gives wav2vec 2.0 attention.
    relative_attention: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    layer_norm_eps: float = 1e-5

    @property
    def samples_per_frame(self) -> int:
        return math.prod(self.conv_stride)


# microsoft/wavlm-base-plus (UniTalker-B).
WAVLM_BASE_PLUS = EncoderConfig()
# facebook/wav2vec2-large-xlsr-53 (UniTalker-L).
WAV2VEC2_LARGE_XLSR = EncoderConfig(
    hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096, conv_bias=True,
    feat_extract_norm="layer", stable_layer_norm=True, relative_attention=False,
)  # fmt: skip


class _ConvLayer(nn.Module):
    def __init__(self, config: EncoderConfig, index: int) -> None:
        super().__init__()
        in_dim = config.conv_dim[index - 1] if index > 0 else 1
        out_dim = config.conv_dim[index]
        self.conv = nn.Conv1d(
            in_dim,
            out_dim,
            config.conv_kernel[index],
            config.conv_stride[index],
            bias=config.conv_bias,
        )
        self.norm_kind = "none"
        if config.feat_extract_norm == "layer":
            self.layer_norm = nn.LayerNorm(out_dim)
            self.norm_kind = "layer"
        elif index == 0:
            self.layer_norm = nn.GroupNorm(out_dim, out_dim, affine=True)
            self.norm_kind = "group"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_kind == "layer":
            x = self.layer_norm(x.transpose(-2, -1)).transpose(-2, -1)
        elif self.norm_kind == "group":
            x = self.layer_norm(x)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    """Raw 16 kHz audio -> one feature vector per 20 ms."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(_ConvLayer(config, i) for i in range(len(config.conv_dim)))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.conv_dim[-1], config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(x))


class PositionalConvEmbedding(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        conv = nn.Conv1d(
            config.hidden_size,
            config.hidden_size,
            config.pos_conv_kernel,
            padding=config.pos_conv_kernel // 2,
            groups=config.pos_conv_groups,
        )
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.remove_last = config.pos_conv_kernel % 2 == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.remove_last:
            y = y[:, :, :-1]
        return F.gelu(y).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention; with WavLM's gated relative position bias when configured."""

    def __init__(self, config: EncoderConfig, has_position_bias: bool) -> None:
        super().__init__()
        size, heads = config.hidden_size, config.num_heads
        self.num_heads = heads
        self.head_dim = size // heads
        self.q_proj = nn.Linear(size, size)
        self.k_proj = nn.Linear(size, size)
        self.v_proj = nn.Linear(size, size)
        self.out_proj = nn.Linear(size, size)
        self.relative = config.relative_attention
        self.num_buckets = config.num_buckets
        self.max_distance = config.max_distance
        if self.relative:
            self.gru_rel_pos_const = nn.Parameter(torch.ones(1, heads, 1, 1))
            self.gru_rel_pos_linear = nn.Linear(self.head_dim, 8)
            if has_position_bias:
                self.rel_attn_embed = nn.Embedding(config.num_buckets, heads)

    def position_bias(self, length: int) -> torch.Tensor:
        """(heads, T, T) bias from bucketed relative positions (first layer only)."""
        positions = torch.arange(length, device=self.rel_attn_embed.weight.device)
        relative = positions[None, :] - positions[:, None]
        half = self.num_buckets // 2
        buckets = (relative > 0).long() * half
        distance = relative.abs()
        exact = half // 2
        scaled = torch.log(distance.float().clamp(min=1) / exact) / math.log(
            self.max_distance / exact
        )
        large = (exact + scaled * (half - exact)).long().clamp(max=half - 1)
        buckets = buckets + torch.where(distance < exact, distance, large)
        return self.rel_attn_embed(buckets).permute(2, 0, 1)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = x.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        mask = None
        if self.relative:
            if bias is None:
                bias = self.position_bias(length)
            gates = self.gru_rel_pos_linear(x.view(shape).transpose(1, 2))
            gate_a, gate_b = torch.sigmoid(gates.view(*gates.shape[:-1], 2, 4).sum(-1)).chunk(
                2, dim=-1
            )
            mask = (gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0) * bias[None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return self.out_proj(out), bias


class FeedForward(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    def __init__(self, config: EncoderConfig, index: int) -> None:
        super().__init__()
        self.attention = Attention(config, has_position_bias=index == 0)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pre_norm = config.stable_layer_norm

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pre_norm:
            attended, bias = self.attention(self.layer_norm(x), bias)
            x = x + attended
            return x + self.feed_forward(self.final_layer_norm(x)), bias
        attended, bias = self.attention(x, bias)
        x = self.layer_norm(x + attended)
        return self.final_layer_norm(x + self.feed_forward(x)), bias


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.pos_conv_embed = PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(config, i) for i in range(config.num_layers))
        self.pre_norm = config.stable_layer_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_conv_embed(x)
        if not self.pre_norm:
            x = self.layer_norm(x)
        bias = None
        for layer in self.layers:
            x, bias = layer(x, bias)
        return self.layer_norm(x) if self.pre_norm else x


class SpeechEncoder(nn.Module):
    """16 kHz audio (batch, samples) -> hidden states (batch, frames, hidden_size), 50 per s."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = FeatureEncoder(config)
        self.feature_projection = FeatureProjection(config)
        self.encoder = Encoder(config)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        features = self.feature_extractor(audio).transpose(1, 2)
        return self.encoder(self.feature_projection(features))
