"""Seams between the Vocode chunks of one reply, on the tiny SoundStorm + SpeechTokenizer
models (the real architectures, random weights, loaded through the real loading code).

The relay voices a reply in ONE Vocode stream fed chunk by chunk (``relay/turns/solami.py``);
the stream renders each chunk with the units of the one before as context and cross-fades the
held-back audio of its last units, so the reply's audio has no seam where chunks meet. A
property test with a stated factor, not a timing. (With random weights the decoder's output is
mostly its biases, so a stream per chunk, what the relay did before, shows no seam on these
models either; ``python -m bench tts`` reports both paths side by side.)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from services.tts.backends.vocoder import CROSSFADE_UNITS, SAMPLES_PER_UNIT
from services.tts.engine import TtsEngine
from services.tts.settings import TtsSettings
from services.tts.speech import Audio
from tests.support.seams import MEASURES
from tests.support.tts_models import save_tiny_vocode_models

CHARACTER = "Samantha"
# Units per chunk (what the relay sends at a time) and chunks per reply: two seams.
CHUNK_UNITS = 50
CHUNKS = 3
# A seam may be at most this many times the 99th percentile of the same measure inside the
# chunks (for each measure).
SEAM_FACTOR = 2.0


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> TtsEngine:
    soundstorm_dir, speechtokenizer_dir = save_tiny_vocode_models(tmp_path_factory.mktemp("m"))
    settings = dataclasses.replace(
        TtsSettings(),
        backend="espeak",
        soundstorm_dir=soundstorm_dir,
        speechtokenizer_dir=speechtokenizer_dir,
    )
    engine = TtsEngine(settings)
    engine.load()
    return engine


def _units() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 1024, CHUNK_UNITS * CHUNKS)


def _samples(events) -> list[np.ndarray]:
    return [event.samples for event in events if isinstance(event, Audio)]


def _one_stream(engine: TtsEngine, units: np.ndarray) -> np.ndarray:
    torch.manual_seed(0)
    stream = engine.open_vocode(engine.options(CHARACTER, "", 0, 0, vocode=True))
    parts = []
    for start in range(0, units.size, CHUNK_UNITS):
        parts += _samples(stream.add(units[start : start + CHUNK_UNITS]))
    parts += _samples(stream.finish())
    return np.concatenate(parts)


def _chunk_seams() -> list[int]:
    """Where one chunk's units end and the next chunk's begin, in samples."""
    return [k * CHUNK_UNITS * SAMPLES_PER_UNIT for k in range(1, CHUNKS)]


def _crossfade_starts() -> list[int]:
    """Where the one stream's cross-fade into the next chunk's rendering begins."""
    return [n - CROSSFADE_UNITS * SAMPLES_PER_UNIT for n in _chunk_seams()]


def test_one_stream_joins_its_chunks_without_a_seam(engine):
    units = _units()
    samples = _one_stream(engine, units)
    assert samples.size == units.size * SAMPLES_PER_UNIT and np.isfinite(samples).all()
    for name, measure in MEASURES.items():
        stats = measure(samples, sorted(_chunk_seams() + _crossfade_starts()))
        assert stats.worst_ratio <= SEAM_FACTOR, (name, stats.seams, stats.inside.max())
