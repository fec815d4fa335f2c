"""SpeechTokenizer unit tokenization: 16 kHz audio -> residual-VQ unit ids (50 frames/s).

The model itself (loading, configuration) is ``services.speechtokenizer``, which tts shares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.speechtokenizer import load_speechtokenizer
from solami.errors import InvalidInput


class SpeechTokenizerBackend:
    """Encodes 16 kHz audio into residual-VQ unit ids (a ``UnitTokenizer``)."""

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
