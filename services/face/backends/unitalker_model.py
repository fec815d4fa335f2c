"""The UniTalker architecture (ECCV 2024): a WavLM / wav2vec 2.0 audio encoder, a
temporal-convolution decoder with a learned style (identity) embedding, and one output head
per training dataset.

The service keeps the head of the 3D-ETF datasets (D3 HDTF, D4 RAVDESS; annotation type
``3DETF_blendshape_weight``): 52 ARKit blendshape weights at 30 fps, in the order the 3D-ETF
data and EmoTalk use, which is the alphabetical order of the lowerCamelCase ARKit names
(``browDownLeft`` first, ``eyeBlinkLeft`` 9th, ``tongueOut`` last), not the LiveLinkFace
order; ``ETF_TO_CHANNEL`` permutes them into the 61 channels by name.

Module names follow UniTalker's own (``audio_encoder``, ``decoder.learnable_style_emb``,
``decoder.audio_feature_map``, ``decoder.tcn.first_net.conv_layers``, ``out_head_dict``), so
its released state_dicts load into this module.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from services.face.backends.wav2vec import EncoderConfig, SpeechEncoder
from solami.avatar.face import INDEX, pascal

SAMPLE_RATE_HZ = 16_000
BLENDSHAPE_HEAD = "3DETF_blendshape_weight"
# Width of the style embedding UniTalker concatenates to the audio features.
STYLE_DIM = 64
# Convolution layers of the decoder's temporal network.
TCN_LAYERS = 3
# Output order of the 3D-ETF head (EmoTalk's blendshape list).
ETF_BLENDSHAPES = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)  # fmt: skip
# Column of each 3D-ETF output in the 61-channel frame.
ETF_TO_CHANNEL = np.array([INDEX[pascal(name)] for name in ETF_BLENDSHAPES])


class ConvNormRelu(nn.Module):
    """Conv1d (kernel 3) -> LayerNorm over channels -> + residual -> ReLU."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, 3, padding=1)
        self.norm = nn.LayerNorm(out_dim)
        if in_dim != out_dim:
            self.residual_layer = nn.Sequential(nn.Conv1d(in_dim, out_dim, 3, padding=1))
        else:
            self.residual_layer = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)
        return F.relu(out + self.residual_layer(x))


class SeqTranslator(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        layers = [ConvNormRelu(in_dim, out_dim)]
        layers += [ConvNormRelu(out_dim, out_dim) for _ in range(TCN_LAYERS - 1)]
        self.conv_layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_layers(x)


class TemporalNet(nn.Module):
    """The decoder's TCN: audio features with the style vector appended to every frame."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.first_net = SeqTranslator(in_dim, out_dim)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = style[:, :, None].expand(-1, -1, x.shape[2])
        return self.first_net(torch.cat([x, style], dim=1))


class Decoder(nn.Module):
    """Audio states (batch, frames, hidden) + style id -> decoder features (batch, frames, D)."""

    def __init__(self, hidden_size: int, decoder_dim: int, identities: int) -> None:
        super().__init__()
        self.learnable_style_emb = nn.Embedding(identities, STYLE_DIM)
        self.audio_feature_map = nn.Linear(hidden_size, decoder_dim)
        self.tcn = TemporalNet(decoder_dim + STYLE_DIM, decoder_dim)

    def forward(self, states: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        features = self.audio_feature_map(states).transpose(1, 2)
        return self.tcn(features, self.learnable_style_emb(style)).transpose(1, 2)


class OutHead(nn.Module):
    """(Linear + Tanh) x (layers - 1) -> Linear."""

    def __init__(self, decoder_dim: int, out_dim: int, layers: int) -> None:
        super().__init__()
        stack: list[nn.Module] = []
        for _ in range(layers - 1):
            stack += [nn.Linear(decoder_dim, decoder_dim), nn.Tanh()]
        self.head_layer = nn.Sequential(*stack, nn.Linear(decoder_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_layer(x)


def _head(decoder_dim: int, out_dim: int, layers: int) -> nn.Module:
    return nn.Linear(decoder_dim, out_dim) if layers == 1 else OutHead(decoder_dim, out_dim, layers)


class UniTalker(nn.Module):
    """Audio -> 52 ARKit blendshape weights (3D-ETF order) per 30 fps frame."""

    def __init__(
        self,
        encoder: EncoderConfig,
        decoder_dim: int = 256,
        identities: int = 1,
        head_layers: int = 1,
    ) -> None:
        super().__init__()
        self.audio_encoder = SpeechEncoder(encoder)
        self.decoder = Decoder(encoder.hidden_size, decoder_dim, identities)
        heads = {BLENDSHAPE_HEAD: _head(decoder_dim, len(ETF_BLENDSHAPES), head_layers)}
        self.out_head_dict = nn.ModuleDict(heads)

    def forward(self, audio16: torch.Tensor, style: torch.Tensor, frames: int) -> torch.Tensor:
        states = self.audio_encoder(audio16)
        states = F.interpolate(
            states.transpose(1, 2), size=frames, mode="linear", align_corners=True
        ).transpose(1, 2)
        return self.out_head_dict[BLENDSHAPE_HEAD](self.decoder(states, style))
