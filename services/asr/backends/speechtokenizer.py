"""SpeechTokenizer (RVQ, 8 layers x 1024 codes, 50 frames/s at 16 kHz): audio -> unit ids.

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

import numpy as np

from solami.errors import EngineUnavailable, InvalidInput

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


class SpeechTokenizerBackend:
    """Encodes 16 kHz audio into residual-VQ unit ids."""

    def __init__(self, model_dir: Path, checkpoint: str, device: str = "cpu") -> None:
        self._model_dir = Path(model_dir)
        self._checkpoint = checkpoint
        self._device = device
        self._model = None

    def load(self) -> None:
        self._model = load_speechtokenizer(self._model_dir, self._checkpoint, self._device)

    @property
    def num_layers(self) -> int:
        return int(self._model.n_q)

    def tokenize(self, samples: np.ndarray, num_layers: int) -> list[np.ndarray]:
        import torch

        if not 1 <= num_layers <= self.num_layers:
            raise InvalidInput(f"num_layers must be between 1 and {self.num_layers}")
        wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        with torch.inference_mode():
            codes = self._model.encode(wav.view(1, 1, -1).to(self._device), n_q=num_layers)
        # codes: (n_q, batch, frames)
        return [codes[i, 0].cpu().numpy().astype(np.int64) for i in range(num_layers)]
