"""Runs a headset's turns: one answer at a time, paced clip by clip as the headset plays them.

A new utterance during an answer interrupts it (barge-in), as does a character change: a reply
still playing on the headset is stopped at once with a short silent WAV (the headset replaces
the playing clip with each WAV it receives), the face and body fade back to idle, and the
session keeps the reply only up to the cut. A failed turn ends with a spoken apology; each
turn's outcome and stage times are counted, logged and written to the headset's
``solami:last_turn`` key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.animation import Animator
from relay.assets import Assets
from relay.clients import ServiceClients
from relay.clients.motion import BodyMotion
from relay.errors import TurnError
from relay.headset.character import CharacterState
from relay.headset.inputs import HeadsetInputs
from relay.metrics import RelayMetrics
from relay.quest import keys
from relay.quest.coords import rest_character_pose
from relay.recording import record_turn
from relay.sessions import Session, SessionStore
from relay.settings import HeadsetConfig, RelaySettings
from relay.turns import Clip, Turn, TurnInput, turn_for
from relay.turns.base import new_turn_id
from solami import audio
from solami.logs import log_event

log = logging.getLogger(__name__)

# The silent WAV that stops a reply playing on the headset: short, so it ends at once.
STOP_WAV = audio.encode_wav(np.zeros(800, np.float32), 16_000)


class TurnRunner:
    """Answers a headset's utterances, one at a time."""

    def __init__(
        self,
        config: HeadsetConfig,
        redis_client: aioredis.Redis,
        store: SessionStore,
        clients: ServiceClients,
        assets: Assets,
        settings: RelaySettings,
        metrics: RelayMetrics,
        character: CharacterState,
        inputs: HeadsetInputs,
        send: Callable[[bytes], Awaitable[bool]],
        now: Callable[[], float],
    ) -> None:
        self._config = config
        self._redis = redis_client
        self._store = store
        self._clients = clients
        self._assets = assets
        self._settings = settings
        self._metrics = metrics
        self._character = character
        self._inputs = inputs
        # Sends a WAV to the headset; False when it did not get there.
        self._send = send
        self._now = now
        self._task: asyncio.Task[None] | None = None
        # When the answer in progress was interrupted (perf_counter), for the cut's timing.
        self._interrupted_at = 0.0

    def begin(self, wav: bytes) -> asyncio.Task[None]:
        """Starts answering ``wav``, interrupting the current answer (barge-in)."""
        previous = self._task
        if previous is not None and not previous.done():
            self._interrupted_at = time.perf_counter()
            previous.cancel()
            self._metrics.barge_ins_total.inc()
        self._task = asyncio.create_task(self._run(wav, previous))
        return self._task

    async def cancel(self) -> None:
        """Stops the answer in progress, if any (a reply playing is silenced), and waits until
        it has stopped."""
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            self._interrupted_at = time.perf_counter()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, wav: bytes, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            # Waits for the interrupted answer to stop without taking on its outcome; this
            # turn's own cancellation (a newer utterance) still ends it here.
            await asyncio.wait({previous})
        if self._character.session is None:
            await self._character.sync(force=True)
        session, animator = self._character.session, self._character.animator
        turn_id = new_turn_id()
        arrived = time.perf_counter()
        turn = turn_for(session, self._clients, self._settings.speech_gesture)
        spoken: list[Clip] = []
        # When the last spoken clip started on the headset (its clock).
        last_start = 0.0
        body: BodyMotion | None = None
        outcome = "ok"
        replies = None
        # When the audio sent so far ends on the headset.
        speech_end = self._now()
        self._metrics.inflight_turns.inc()
        try:
            request = await self._input(turn, session, turn_id, wav)
            _raise_if_cancelled()
            replies = turn.run(request)
            async for item in replies:
                if isinstance(item, Clip):
                    start, sent = await self._play(item, speech_end, animator)
                    if not sent:
                        continue
                    spoken.append(item)
                    last_start = start
                    speech_end = start + item.duration_s + self._settings.send_ahead_s
                    if len(spoken) == 1:
                        first = time.perf_counter() - arrived
                        self._metrics.time_to_first_audio_seconds.observe(first)
                        turn.log.mark("first_reply")
                    if item.index == 0:
                        # Counted as spoken first: an interruption from here silences it.
                        with contextlib.suppress(RedisError):
                            await self._mark_change()
                        _raise_if_cancelled()
                elif isinstance(item, BodyMotion):
                    body = item
                    animator.play_body(self._now(), item.poses, item.trans)
            # The answer lasts until its audio ends: a new utterance before that interrupts it.
            await asyncio.sleep(max(0.0, speech_end - self._now()))
        except asyncio.CancelledError:
            outcome = "cancelled"
            now = self._now()
            animator.stop(now)
            if spoken and now < last_start + spoken[-1].duration_s:
                spoken[-1] = spoken[-1].cut(now - last_start)
                await self._silence(turn)
            raise
        except TurnError as exc:
            outcome = "error"
            self._metrics.errors_total.labels(exc.stage).inc()
            log_event(
                log,
                "turn failed",
                logging.WARNING,
                headset=self._config.name,
                turn_id=turn_id,
                stage=exc.stage,
                reason=exc.reason,
            )
            await self._apologise(exc.stage, speech_end, animator)
        except Exception:  # a bug must cost one answer, not the headset's link
            outcome = "error"
            self._metrics.errors_total.labels("internal").inc()
            log.exception("turn %s failed", turn_id)
            await self._apologise("internal", speech_end, animator)
        finally:
            if replies is not None:
                # Closing the reply stream cancels what it still runs (LLM stream, speech,
                # motion) now, also when the turn was interrupted between two clips.
                with contextlib.suppress(Exception):
                    await replies.aclose()
            await self._finish(turn, session, turn_id, outcome, spoken, body)

    async def _silence(self, turn: Turn) -> None:
        """Stops the reply playing on the headset: a short silent WAV replaces it."""
        await self._send(STOP_WAV)
        seconds = time.perf_counter() - self._interrupted_at
        self._metrics.cut_to_silence_seconds.observe(seconds)
        turn.log.cut_to_silence_ms = round(seconds * 1000, 1)

    async def _apologise(self, stage: str, speech_end: float, animator: Animator) -> None:
        """Sends the apology for a failed ``stage`` once the sentence already playing has
        ended (the headset would cut it off), and returns the character to idle."""
        apology = await self._assets.apology(stage)
        await asyncio.sleep(max(0.0, speech_end - self._settings.send_ahead_s - self._now()))
        animator.stop(self._now())
        await self._send(apology)

    async def _input(self, turn: Turn, session: Session, turn_id: str, wav: bytes) -> TurnInput:
        # The user's motion is consumed every turn (so the next turn starts from new frames).
        user_motion = await self._inputs.user_motion()
        if not turn.reads_body:
            return TurnInput(session, turn_id, wav)
        rig = self._character.rig
        # Without a snapshot the character stands at rest where the headset's scene puts it.
        pose = await self._inputs.character_pose(rig) or rest_character_pose(rig)
        return TurnInput(session, turn_id, wav, user_motion, pose)

    async def _finish(
        self,
        turn: Turn,
        session: Session,
        turn_id: str,
        outcome: str,
        spoken: list[Clip],
        body: BodyMotion | None,
    ) -> None:
        """Counts, records, keeps the history and reports a finished turn."""
        self._metrics.inflight_turns.dec()
        self._metrics.turns_total.labels(session.method, outcome).inc()
        stages_ms = turn.log.stages_ms
        # A reply cut while it played: how long the headset took to fall silent.
        cut_ms = turn.log.cut_to_silence_ms
        cut = {} if cut_ms is None else {"cut_to_silence_ms": cut_ms}
        for stage, ms in stages_ms.items():
            self._metrics.turn_stage_seconds.labels(stage).observe(ms / 1000)
        if self._settings.record_dir is not None and spoken:
            record_turn(self._settings.record_dir / turn_id, spoken, body)
        messages = turn.history(spoken, finished=outcome == "ok")
        if messages:
            session.add(*messages)
            with contextlib.suppress(RedisError):
                await self._store.save(session)
        log_event(
            log,
            "turn",
            headset=self._config.name,
            session_id=session.session_id,
            turn_id=turn_id,
            outcome=outcome,
            sentences=len(spoken),
            **{f"{k}_ms": v for k, v in stages_ms.items()},
            **cut,
        )
        report = {
            "turn_id": turn_id,
            "outcome": outcome,
            "sentences": len(spoken),
            "stages_ms": stages_ms,
            **cut,
        }
        with contextlib.suppress(RedisError):
            await self._redis.set(
                self._config.key(keys.LAST_TURN), json.dumps(report), ex=keys.LAST_TURN_TTL_S
            )

    async def _play(
        self, clip: Clip, previous_end: float, animator: Animator
    ) -> tuple[float, bool]:
        """Sends ``clip`` as the previous one ends; returns when it started playing on the
        headset and whether it reached it.

        The headset replaces the playing WAV with a new one, so each is sent ``send_ahead_s``
        early (delivery and decoding) and carries that much silence at its end: what an early
        arrival cuts off is the pause between sentences, never speech.
        """
        ahead = self._settings.send_ahead_s
        wait = previous_end - ahead - self._now()
        if wait > 0:
            await asyncio.sleep(wait)
        start = self._now()
        if not await self._send(clip.wav(pad_s=ahead)):
            return start, False
        if clip.face is not None:
            animator.play_face(start, clip.face)
        return start, True

    async def _mark_change(self) -> None:
        last = await self._redis.xrevrange(self._config.key(keys.CHARACTER_STREAM), count=1)
        if last:
            await self._redis.set(self._config.key(keys.CHANGE_ID), last[0][0])


def _raise_if_cancelled() -> None:
    """Raises the current task's pending cancellation. redis-py sends each command through
    ``asyncio.wait_for`` (its socket timeout), which on Python 3.11 returns the command's result
    instead of raising when the cancellation and the reply land in the same loop step; without
    this check an interrupted answer would play on after a Redis call."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
