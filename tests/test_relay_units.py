"""Relay building blocks: animation timeline, sessions in real Redis, settings."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis.asyncio as aioredis

from relay.animation import Animator, blend_poses
from relay.quest.characters import character_for
from relay.sessions import Message, SessionStore
from relay.settings import RelaySettings, load_relay_settings
from solami.settings import SettingsError, load_settings


def _animator(blend_s: float = 0.3) -> Animator:
    idle_poses = np.zeros((30, 165), np.float32)
    idle_face = np.zeros((30, 61), np.float32)
    return Animator(idle_poses, np.zeros((30, 3), np.float32), idle_face, blend_s)


def test_idle_plays_when_nothing_is_said():
    pose, trans, face = _animator().frame(12.34)
    assert not pose.any() and not trans.any() and not face.any()


def test_answer_fades_in_and_out_over_the_blend_time():
    animator = _animator(0.3)
    body = np.tile(np.r_[np.full(3, 0.5), np.zeros(162)], (90, 1)).astype(np.float32)
    animator.play_body(1.0, body, np.zeros((90, 3), np.float32))
    face = np.full((60, 61), 0.8, np.float32)
    animator.play_face(1.0, face)
    angle = lambda t: np.linalg.norm(animator.frame(t)[0][:3])  # noqa: E731
    assert angle(0.9) == 0.0
    assert angle(1.15) == pytest.approx(np.linalg.norm([0.5] * 3) * 0.5, rel=0.05)
    assert angle(2.0) == pytest.approx(np.linalg.norm([0.5] * 3), rel=1e-4)
    assert animator.frame(2.0)[2][0] == pytest.approx(0.8)
    assert animator.busy(2.0)
    assert angle(4.5) == 0.0 and not animator.busy(4.5)


def test_barge_in_fades_back_to_idle():
    animator = _animator(0.3)
    animator.play_face(0.0, np.full((300, 61), 1.0, np.float32))
    animator.stop(1.0)
    assert animator.frame(0.5)[2][0] == pytest.approx(1.0)
    assert animator.frame(1.5)[2][0] == 0.0


def test_blend_poses_interpolates_rotations():
    a = np.zeros(165, np.float32)
    b = np.zeros(165, np.float32)
    b[3:6] = [0.0, 1.0, 0.0]
    half = blend_poses(a, b, 0.5)
    assert half[4] == pytest.approx(0.5, abs=1e-6)


def test_unity_characters_map_to_model_characters():
    assert character_for("Vrmgirl") == "Samantha"
    assert character_for("Bnncat") == "Banaya"
    assert character_for("Kvrc") == character_for("Chappie") == "11-45-G"
    with pytest.raises(ValueError, match="unknown char_id 'Zelda'"):
        character_for("Zelda")


def test_sessions_persist_and_expire(redis_url):
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url, db=3)
        store = SessionStore(client, idle_s=3)
        session = await store.create("Batman", "llm+speech")
        session.add(Message("user", "hi"), Message("character", "I am Batman."))
        await store.save(session)
        await store.set_current("main", session)
        again = await SessionStore(client, idle_s=3).current("main")
        assert again is not None and again.character == "Batman"
        assert [m.text for m in again.history] == ["hi", "I am Batman."]
        await asyncio.sleep(3.6)
        assert await store.get(session.session_id) is None
        await client.aclose()

    asyncio.run(scenario())


def test_headset_settings():
    settings = load_settings(
        RelaySettings, "SOLAMI_RELAY_", {"SOLAMI_RELAY_HEADSETS": "a:8099:0,b:8100:2:q2:"}
    )
    configs = settings.headset_configs(0)
    assert [(c.name, c.ws_port, c.redis_db, c.key_prefix) for c in configs] == [
        ("a", 8099, 0, ""),
        ("b", 8100, 2, "q2:"),
    ]
    with pytest.raises(SettingsError, match="name:ws_port:redis_db"):
        load_settings(RelaySettings, "SOLAMI_RELAY_", {"SOLAMI_RELAY_HEADSETS": "a:x:0"})
    with pytest.raises(SettingsError, match="SOLAMI_RELAY_METHOD"):
        load_settings(RelaySettings, "SOLAMI_RELAY_", {"SOLAMI_RELAY_METHOD": "telepathy"})
    # A headset empties its database when it starts: the sessions must live elsewhere.
    with pytest.raises(SettingsError, match=r"SESSION_DB .* headset 'main'"):
        load_relay_settings({"SOLAMI_REDIS_URL": "redis://127.0.0.1:6379/1"})
    with pytest.raises(SettingsError, match="headset 'b'"):
        load_relay_settings({"SOLAMI_RELAY_HEADSETS": "a:8099:0,b:8100:1"})
    with pytest.raises(SettingsError, match="SOLAMI_REDIS_URL must end in a database number"):
        load_relay_settings({"SOLAMI_REDIS_URL": "redis://127.0.0.1:6379/zero"})
    settings, url = load_relay_settings({"SOLAMI_REDIS_URL": "redis://127.0.0.1:6379/3"})
    assert settings.session_db == 1 and url.endswith("/3")
