"""The SpeechTokenizer model (RVQ, 8 layers x 1024 codes, 50 frames/s at 16 kHz), shared by
asr (its encoder turns speech into unit ids) and tts (its decoder renders Vocode's codes).

The model is the ``speechtokenizer`` package's ``SpeechTokenizer`` class, built from a
``config.json`` and loaded from a checkpoint in a directory. The package's ``__init__`` also
imports its trainer, which needs torchaudio (not available for CPU torch on PyPI), so the
model module is imported without running the package initialiser.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path

from solami.errors import EngineUnavailable

CONFIG_FILE = "config.json"


def import_speechtokenizer_model() -> type:
    """``speechtokenizer.model.SpeechTokenizer`` without importing the trainer."""
    if "speechtokenizer" not in sys.modules:
        spec = importlib.util.find_spec("speechtokenizer")
        if spec is None or not spec.submodule_search_locations:
            raise EngineUnavailable("the speechtokenizer package is not installed")
        package = types.ModuleType("speechtokenizer")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["speechtokenizer"] = package
    return importlib.import_module("speechtokenizer.model").SpeechTokenizer


def load_speechtokenizer(model_dir: Path, checkpoint: str, device: str = "cpu"):
    """Builds the model from ``model_dir/config.json`` and loads ``model_dir/checkpoint``."""
    import torch

    config_path = model_dir / CONFIG_FILE
    checkpoint_path = model_dir / checkpoint
    for path in (config_path, checkpoint_path):
        if not path.is_file():
            raise EngineUnavailable(f"SpeechTokenizer file missing: {path}")
    model_class = import_speechtokenizer_model()
    config = json.loads(config_path.read_text())
    model = model_class(config)
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


# The released SpeechTokenizer (hubert_avg) architecture: 50 frames/s at 16 kHz, 8 x 1024 RVQ.
FULL_SIZE_CONFIG = {
    "n_filters": 64,
    "strides": [8, 5, 4, 2],
    "dimension": 1024,
    "semantic_dimension": 768,
    "bidirectional": True,
    "dilation_base": 2,
    "residual_kernel_size": 3,
    "n_residual_layers": 1,
    "lstm_layers": 2,
    "activation": "ELU",
    "codebook_size": 1024,
    "n_q": 8,
    "sample_rate": 16000,
}


def save_random_speechtokenizer(model_dir: Path, config: dict, checkpoint: str) -> None:
    """Writes ``config`` and a randomly initialised checkpoint of that architecture (tests,
    benchmarks: same layout as the released model directory)."""
    import torch

    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / CONFIG_FILE).write_text(json.dumps(config))
    model = import_speechtokenizer_model()(config)
    state = model.state_dict()
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        noise = torch.randn(1, 1, config["sample_rate"], generator=generator)
        scale = float(model.encoder(noise).std())
    for name, tensor in state.items():
        # The codebooks start empty (k-means init on the first training batch): give them
        # random codes at the encoder's output scale so a random model still spreads its
        # units over the vocabulary.
        if name.endswith("_codebook.embed") or name.endswith("_codebook.embed_avg"):
            tensor.copy_(scale * torch.randn(tensor.shape, generator=generator))
        elif name.endswith("_codebook.inited"):
            tensor.fill_(1.0)
    torch.save(state, model_dir / checkpoint)
