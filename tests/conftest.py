"""Shared fixtures: settings for in-process services and real test speech."""

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
