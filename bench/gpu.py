"""gpu: sizing of the GPU backends on CUDA with the full-size architectures (random weights):
SpeechTokenizer Tokenize (8 layers) and UniTalker-B face animation for 10 s of audio. Skipped
where no CUDA device is present."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import report

AUDIO_S = 10.0
RUNS = 10


def _timed_runs(fn) -> float:
    import torch

    fn()
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        print("\n== gpu ==\n  skipped: no CUDA device")
        return
    from services.asr.backends.speechtokenizer import SpeechTokenizerBackend
    from services.face.backends.unitalker import save_random_unitalker
    from services.face.backends.wav2vec import WAVLM_BASE_PLUS
    from services.face.engine import FaceEngine
    from services.face.settings import FaceSettings
    from services.speechtokenizer import FULL_SIZE_CONFIG, save_random_speechtokenizer

    rng = np.random.default_rng(0)
    samples = (0.1 * rng.standard_normal(int(AUDIO_S * 16_000))).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        save_random_speechtokenizer(Path(tmp), FULL_SIZE_CONFIG, "SpeechTokenizer.pt")
        tokenizer = SpeechTokenizerBackend(Path(tmp), "SpeechTokenizer.pt", "cuda")
        tokenizer.load()
        path = Path(tmp) / "unitalker-b.pt"
        save_random_unitalker(path, WAVLM_BASE_PLUS, decoder_dim=256, identities=8)
        settings = dataclasses.replace(
            FaceSettings(), backend="unitalker", unitalker_weights=path, device="cuda"
        )
        face = FaceEngine(settings)
        face.load()
    tokenize_s = _timed_runs(lambda: tokenizer.tokenize(samples, 8))
    face_s = _timed_runs(lambda: face.animate(samples, 16_000))
    peak_gib = torch.cuda.max_memory_allocated() / 2**30
    rows = [
        ("device", torch.cuda.get_device_name(0)),
        (
            "SpeechTokenizer, 10 s, 8 layers",
            f"{tokenize_s * 1e3:.1f} ms = {AUDIO_S / tokenize_s:.0f}x real time",
        ),
        ("UniTalker-B, 10 s", f"{face_s * 1e3:.1f} ms = RTF {face_s / AUDIO_S:.4f}"),
        ("peak GPU memory", f"{peak_gib:.2f} GiB"),
    ]
    report("gpu", rows, {"tokenize_s": tokenize_s, "unitalker_s": face_s, "peak_gib": peak_gib})


if __name__ == "__main__":
    main()
