"""Shared fixtures: settings for in-process services, a real Redis, tiny Vocode models."""

from __future__ import annotations

import dataclasses

import pytest

from services.asr.settings import AsrSettings


@pytest.fixture
def asr_settings() -> AsrSettings:
    """Asr settings for an in-process server: loopback, port 0, metrics on a free port."""
    return dataclasses.replace(AsrSettings(), host="127.0.0.1", port=0, metrics_port=0)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port for the test session."""
    from solami.redis_local import start_local_redis
    from tests.support.servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    process = start_local_redis(url)
    yield url
    process.stop()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests: tiny models gain nothing from threads, and on a
    shared 2-core machine two threads spinning against other processes are many times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """Tiny SoundStorm and SpeechTokenizer checkpoints (their directories) for Vocode tests."""
    from tests.support.tts_models import save_tiny_vocode_models

    return save_tiny_vocode_models(tmp_path_factory.mktemp("vocode"))
