"""A process running the real asr service runtime and servicer over a FakeTranscriber.

Used by lifecycle tests (SIGTERM drain) that need a controllable model delay:
``SOLAMI_FAKE_DELAY_S`` sets each transcription's duration.
"""

from __future__ import annotations

import os

from services.asr.engine import AsrEngine
from services.asr.server import DEFINITION
from services.asr.settings import INFO, AsrSettings
from solami.server import run_service
from solami.settings import load_settings
from tests.support.fakes import FakeTranscriber

if __name__ == "__main__":
    settings = load_settings(AsrSettings, INFO.env_prefix)
    transcriber = FakeTranscriber(delay_s=float(os.environ.get("SOLAMI_FAKE_DELAY_S", "0")))
    raise SystemExit(run_service(DEFINITION, settings, AsrEngine(settings, transcriber)))
