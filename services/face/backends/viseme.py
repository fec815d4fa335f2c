"""The embedded lip-sync model: speech -> articulation -> ARKit blendshapes, on the CPU.

Per 30 fps frame the mouth gesture (see ``services.face.visemes``) comes from the phoneme
timings when the speech synthesizer sent them, otherwise from the audio itself:
- loudness, relative to a tracked speech level, opens the mouth; silence closes it;
- the first-formant centroid (jaw height: /a/ high, /i u/ low) scales the opening;
- the second-formant centroid tells spread lips (/i e/) from rounded ones (/u o/);
- frication (s, sh, f) keeps the jaw nearly shut;
- a quiet frame between stretches of speech is a lip closure (/p b m/, stop gaps).
Coarticulation: gestures are smoothed over neighbouring frames with a kernel that leans
ahead in time (the lips move before the sound they shape), so a frame is final once the
audio ``LOOKAHEAD_FRAMES`` later is known. Blinks, gaze, brows and head motion come from
``services.face.idle``. The model is deterministic: same audio, same frames.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from services.face.backends.base import frame_count
from services.face.features import FrameAnalyzer
from services.face.idle import IdleMotion
from services.face.settings import FaceSettings
from services.face.visemes import (
    CLOSURE,
    OPEN,
    PARAMS,
    ROUND,
    SPREAD,
    phoneme_articulation,
    to_blendshapes,
)
from solami.avatar.face import CHANNEL_COUNT
from solami.avatar.rates import FPS
from solami.speech import Phoneme

# Coarticulation kernel over frames i-2 .. i+5, centred 1.5 frames (50 ms) ahead.
SMOOTHING_KERNEL = np.array([0.2, 0.45, 0.75, 0.95, 0.95, 0.75, 0.45, 0.2], dtype=np.float32)
LOOKBACK_FRAMES = 2
# Lip closures are brief: a narrower kernel over frames i-1 .. i+2.
CLOSURE_KERNEL = np.array([0.5, 1.0, 1.0, 0.5], dtype=np.float32)
CLOSURE_LOOKBACK_FRAMES = 1
# Frames on each side searched for speech around a quiet frame (a closure lies inside speech).
CLOSURE_CONTEXT_FRAMES = 3
# Frames of features a frame waits for: the smoothing kernel's reach, and the closure
# kernel's reach plus the context its closure targets look at.
LOOKAHEAD_FRAMES = max(
    len(SMOOTHING_KERNEL) - 1 - LOOKBACK_FRAMES,
    len(CLOSURE_KERNEL) - 1 - CLOSURE_LOOKBACK_FRAMES + CLOSURE_CONTEXT_FRAMES,
)
# Below this level a frame is silence whatever the tracked speech level, in dBFS.
SILENCE_DB = -60.0
# Tracked speech level: start, floor and decay per frame (3 dB/s), in dB.
LEVEL_START_DB = -20.0
LEVEL_FLOOR_DB = -40.0
LEVEL_DECAY_DB = 0.1
# Loudness maps 0..1 from this far below the speech level to this far below it, in dB.
QUIET_BELOW_DB = 35.0
FULL_BELOW_DB = 6.0
# First-formant centroid of a closed (/i u/) and of a fully open (/a/) vowel, in Hz.
F1_CLOSED_HZ = 300.0
F1_OPEN_HZ = 750.0
# Second-formant-band centroid above which lips spread and below which they round, in Hz.
F2_SPREAD_HZ = (1800.0, 2700.0)
F2_ROUND_HZ = (1700.0, 1100.0)
# Frication share where frication starts to dominate and where it is complete.
FRICATION_RANGE = (0.3, 0.7)
# Opening of any voiced sound before the formant scaling.
BASE_OPENING = 0.2
# Phoneme mode: how much the audio's loudness still scales the phoneme's opening.
STRESS_SCALING = 0.45
# Emphasis (brows, nods): fast and slow loudness followers per frame, and gain.
EMPHASIS_FAST = 0.3
EMPHASIS_SLOW = 0.03
EMPHASIS_GAIN = 2.5


def _ramp(x: np.ndarray, start: float, end: float) -> np.ndarray:
    """0 at ``start``, 1 at ``end``, linear between (either direction), clipped."""
    return np.clip((x - start) / (end - start), 0.0, 1.0)


class VisemeBackend:
    """Factory of lip-sync streams; nothing to load."""

    name = "viseme"

    def __init__(self, settings: FaceSettings) -> None:
        self._seed = settings.seed
        self._idle_motion = settings.idle_motion

    def load(self) -> None:
        """The model is a set of rules and constants: nothing to load."""

    def open(self, rate_hz: int, start_frame: int) -> VisemeStream:
        return VisemeStream(rate_hz, start_frame, IdleMotion(self._seed, self._idle_motion))


class VisemeStream:
    """Lip-sync state of one stream of audio."""

    def __init__(self, rate_hz: int, start_frame: int, idle: IdleMotion) -> None:
        self._analyzer = FrameAnalyzer(rate_hz)
        self._rate_hz = rate_hz
        self._start_frame = start_frame
        self._idle = idle
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_offset = 0  # stream index of self._buffer[0]
        self._received = 0
        self._analyzed = 0  # frames whose features are known
        self._emitted = 0
        self._level_db = LEVEL_START_DB
        self._fast = 0.0
        self._slow = 0.0
        self._loud: list[float] = []
        self._gesture: list[np.ndarray] = []  # open, round, spread per frame (audio estimate)
        self._emphasis: list[float] = []
        self._phonemes: list[Phoneme] = []
        self._phoneme_starts: list[float] = []

    def add_phonemes(self, phonemes: Sequence[Phoneme]) -> None:
        for phoneme in phonemes:
            at = bisect.bisect_right(self._phoneme_starts, phoneme.start_s)
            self._phoneme_starts.insert(at, phoneme.start_s)
            self._phonemes.insert(at, phoneme)

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        self._received += len(samples)
        ready = self._analyzed
        while self._analyzer.window_end(ready) <= self._received:
            ready += 1
        self._analyze_to(ready)
        return self._emit_to(self._analyzed - LOOKAHEAD_FRAMES)

    def finish(self) -> np.ndarray:
        total = frame_count(self._received, self._rate_hz)
        self._analyze_to(total + LOOKAHEAD_FRAMES)
        return self._emit_to(total)

    def _analyze_to(self, end: int) -> None:
        count = end - self._analyzed
        if count <= 0:
            return
        features = self._analyzer.analyze(self._buffer, self._buffer_offset, self._analyzed, count)
        for i in range(count):
            level = float(features.level_db[i])
            self._level_db = max(level, self._level_db - LEVEL_DECAY_DB, LEVEL_FLOOR_DB)
            loud = 0.0
            if level > SILENCE_DB:
                quiet = self._level_db - QUIET_BELOW_DB
                loud = min(1.0, max(0.0, (level - quiet) / (QUIET_BELOW_DB - FULL_BELOW_DB)))
            self._loud.append(loud)
            self._fast += EMPHASIS_FAST * (loud - self._fast)
            self._slow += EMPHASIS_SLOW * (loud - self._slow)
            self._emphasis.append(min(1.0, max(0.0, EMPHASIS_GAIN * (self._fast - self._slow))))
        loud = np.array(self._loud[self._analyzed :], dtype=np.float32)
        openness = _ramp(features.f1_centroid_hz, F1_CLOSED_HZ, F1_OPEN_HZ)
        frication = _ramp(features.frication, *FRICATION_RANGE)
        closeness = 1.0 - openness
        opening = loud * (BASE_OPENING + (1 - BASE_OPENING) * openness) * (1 - 0.7 * frication)
        spread = loud * np.maximum(
            0.8 * closeness * _ramp(features.f2_centroid_hz, *F2_SPREAD_HZ), 0.4 * frication
        )
        rounding = loud * 0.8 * closeness * _ramp(features.f2_centroid_hz, *F2_ROUND_HZ)
        rounding *= 1 - frication
        self._gesture.extend(np.stack([opening, rounding, spread], axis=1).astype(np.float32))
        self._analyzed = end
        # Keep only the samples later windows can still reach.
        keep_from = self._analyzer.window_start(self._analyzed) - self._buffer_offset
        if keep_from > 0:
            self._buffer = self._buffer[keep_from:]
            self._buffer_offset += keep_from

    def _articulation(self, frame: int) -> np.ndarray:
        """The gesture target of one frame (before coarticulation smoothing)."""
        target = np.zeros(len(PARAMS), dtype=np.float32)
        if frame < 0 or frame >= len(self._gesture):
            return target
        loud = self._loud[frame]
        phoneme = self._phoneme_at((self._start_frame + frame + 0.5) / FPS)
        if phoneme is not None:
            shape = phoneme_articulation(phoneme.symbol)
            if shape is None:
                return target
            shape = shape.copy()
            shape[OPEN] *= 1 - STRESS_SCALING + STRESS_SCALING * loud
            return shape
        target[[OPEN, ROUND, SPREAD]] = self._gesture[frame]
        lo, hi = frame - CLOSURE_CONTEXT_FRAMES, frame + CLOSURE_CONTEXT_FRAMES + 1
        before = max(self._loud[max(lo, 0) : frame], default=0.0)
        after = max(self._loud[frame + 1 : hi], default=0.0)
        target[CLOSURE] = (1 - loud) * min(before, after)
        return target

    def _phoneme_at(self, t_s: float) -> Phoneme | None:
        at = bisect.bisect_right(self._phoneme_starts, t_s) - 1
        if at >= 0 and self._phonemes[at].end_s > t_s:
            return self._phonemes[at]
        return None

    def _emit_to(self, end: int) -> np.ndarray:
        first = self._emitted
        count = end - first
        if count <= 0:
            return np.zeros((0, CHANNEL_COUNT), dtype=np.float32)
        span = range(first - LOOKBACK_FRAMES, end + len(SMOOTHING_KERNEL) - 1 - LOOKBACK_FRAMES)
        targets = np.stack([self._articulation(f) for f in span])
        smoothed = np.zeros((count, len(PARAMS)), dtype=np.float32)
        weights = SMOOTHING_KERNEL / SMOOTHING_KERNEL.sum()
        for tap, weight in enumerate(weights):
            smoothed += weight * targets[tap : tap + count]
        closure = np.zeros(count, dtype=np.float32)
        closure_weights = CLOSURE_KERNEL / CLOSURE_KERNEL.sum()
        offset = LOOKBACK_FRAMES - CLOSURE_LOOKBACK_FRAMES
        for tap, weight in enumerate(closure_weights):
            closure += weight * targets[offset + tap : offset + tap + count, CLOSURE]
        smoothed[:, CLOSURE] = closure
        emphasis = np.array(self._emphasis[first:end], dtype=np.float32)
        frames = to_blendshapes(smoothed)
        frames += self._idle.layer(self._start_frame + first, count, emphasis)
        self._emitted = end
        return np.clip(frames, 0.0, 1.0)
