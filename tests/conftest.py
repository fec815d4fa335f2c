"""Shared fixtures: settings for in-process services and real test speech."""

from __future__ import annotations

import dataclasses

import pytest

from services.asr.settings import AsrSettings


@pytest.fixture
def asr_settings() -> AsrSettings:
    """Asr settings for an in-process server: loopback, port 0, metrics on a free port."""
    return dataclasses.replace(AsrSettings(), host="127.0.0.1", port=0, metrics_port=0)
