"""One headset: its WebSocket, its Redis keys, its session, its turns and its aiStream.

The Quest client connects its WebSocket once and never reconnects, so nothing here closes it:
bad messages are logged, counted and skipped; failed turns end with a spoken apology; a new
utterance during an answer interrupts it (barge-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from relay.animation import FACE_CHANNELS, Animator
from relay.assets import Assets
from relay.clients import ServiceClients
from relay.metrics import RelayMetrics
from relay.quest.coords import pose_snapshot_to_smplx, trim_user_motion, user_frames_to_smplx
from relay.quest.face import face_fields
from relay.quest.rig import Rig
from relay.recording import record_turn
from relay.sessions import DEFAULT_CHAR_ID, Session, SessionStore, character_for
from relay.settings import HeadsetConfig, RelaySettings
from relay.turn import AgentTurn, BodyMotion, Clip, TurnError
from relay.turn_solami import SolamiTurn
from solami.logs import log_event

log = logging.getLogger(__name__)

FPS = 30
# Seconds between checks of the headset's char_id key.
CHAR_POLL_S = 0.5
# Longest pause of the publisher after a Redis error.
MAX_BACKOFF_S = 5.0
# Key (in the headset's Redis keys) holding the last turn's outcome and per-stage times in
# milliseconds from the WAV's arrival, for the headset simulator and operators.
LAST_TURN_KEY = "solami:last_turn"
LAST_TURN_TTL_S = 3600


class HeadsetLink:
    """Everything the relay does for one headset."""

    def __init__(
        self,
        config: HeadsetConfig,
        redis_client: aioredis.Redis,
        store: SessionStore,
        clients: ServiceClients,
        assets: Assets,
        settings: RelaySettings,
        metrics: RelayMetrics,
    ) -> None:
        self.config = config
        self._redis = redis_client
        self._store = store
        self._clients = clients
        self._assets = assets
        self._settings = settings
        self._metrics = metrics
        self._ws: ServerConnection | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._char_id = ""
        self.session: Session | None = None
        self.rig: Rig | None = None
        self.animator: Animator | None = None
        self._last_user_id = "0-0"
        self._clock0 = time.monotonic()

    def key(self, name: str) -> str:
        return f"{self.config.key_prefix}{name}"

    def now(self) -> float:
        return time.monotonic() - self._clock0

    async def start(self) -> None:
        await self._sync_character(force=True)
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name=f"{self.config.name}-publish"),
            asyncio.create_task(self._watch_character(), name=f"{self.config.name}-char"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, self._turn_task]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- character and session -------------------------------------------------------------

    async def _read_char_id(self) -> str:
        raw = await self._redis.get(self.key("char_id"))
        return raw.decode() if isinstance(raw, bytes) else (raw or DEFAULT_CHAR_ID)

    async def _sync_character(self, force: bool = False) -> None:
        try:
            char_id = await self._read_char_id()
        except RedisError:
            if self.session is not None:
                return
            char_id = DEFAULT_CHAR_ID  # Redis is down at start: the headset's default
        if char_id == self._char_id and not force:
            return
        try:
            character = character_for(char_id)
        except ValueError as exc:
            self._metrics.errors_total.labels("char_id").inc()
            log_event(log, "bad char_id", logging.WARNING, headset=self.config.name, error=str(exc))
            if self.rig is not None:
                self._char_id = char_id  # keep the current character; do not retry each poll
                return
            char_id, character = "Smplx", "User"
        rig = self._load_rig(char_id)
        self._char_id = char_id
        self.rig = rig
        await self._cancel_turn()
        self.session = await self._resume_or_create(char_id, character)
        idle = await self._assets.idle()
        if self.animator is None:
            self.animator = Animator(idle.poses, idle.trans, idle.face, self._settings.blend_s)
        else:
            self.animator.set_idle(idle.poses, idle.trans, idle.face)
        log_event(
            log,
            "character",
            headset=self.config.name,
            char_id=char_id,
            session_id=self.session.session_id,
            rig=rig.char_id,
        )

    def _load_rig(self, char_id: str) -> Rig:
        """``char_id``'s rig; without usable rig data the body is sent on the SMPL-X rig (the
        character keeps its persona and voice)."""
        try:
            return Rig.load(self._settings.rig_data, char_id)
        except ValueError as exc:
            self._metrics.errors_total.labels("rig").inc()
            log_event(
                log,
                "rig unavailable; sending the SMPL-X rig",
                logging.WARNING,
                headset=self.config.name,
                char_id=char_id,
                error=str(exc),
            )
            return Rig.load(None, "Smplx")

    async def _resume_or_create(self, char_id: str, character: str) -> Session:
        try:
            session = await self._store.current(self.config.name)
            if session is not None and session.char_id == char_id:
                return session
            session = await self._store.create(char_id, self._settings.method, character)
            await self._store.set_current(self.config.name, session)
            return session
        except RedisError:
            self._metrics.errors_total.labels("redis").inc()
            return Session(uuid.uuid4().hex, char_id, character, self._settings.method)

    async def _watch_character(self) -> None:
        while True:
            await asyncio.sleep(CHAR_POLL_S)
            try:
                await self._sync_character()
                await self._trim_inputs()
                if self._assets.idle_is_fallback and self.animator is not None:
                    idle = await self._assets.idle()
                    self.animator.set_idle(idle.poses, idle.trans, idle.face)
            except Exception:  # the watcher must outlive any one failure
                self._metrics.errors_total.labels("internal").inc()
                log.exception("character check failed")

    async def _trim_inputs(self) -> None:
        """Keeps the headset's input streams bounded whatever the method: the newest
        ``aifbStream`` snapshot and the newest ``stream_maxlen`` ``userStream`` frames."""
        try:
            await self._redis.xtrim(self.key("aifbStream"), maxlen=1, approximate=False)
            await self._redis.xtrim(
                self.key("userStream"), maxlen=self._settings.stream_maxlen, approximate=True
            )
        except RedisError:
            self._metrics.errors_total.labels("redis").inc()

    # -- WebSocket -----------------------------------------------------------------------------

    async def serve(self, ws: ServerConnection) -> None:
        """Handles one WebSocket connection until the headset goes away."""
        self._ws = ws  # the newest connection of this headset receives the replies
        log_event(log, "headset connected", headset=self.config.name)
        try:
            async for message in ws:
                if isinstance(message, str) or not message.startswith(b"RIFF"):
                    self._metrics.errors_total.labels("not_wav").inc()
                    log_event(
                        log,
                        "ignored a message that is not a WAV",
                        logging.WARNING,
                        headset=self.config.name,
                        size=len(message),
                    )
                    continue
                self.begin_turn(message)
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
            log_event(log, "headset disconnected", headset=self.config.name)

    def begin_turn(self, wav: bytes) -> asyncio.Task[None]:
        """Starts answering ``wav``, interrupting the current answer (barge-in)."""
        previous = self._turn_task
        if previous is not None and not previous.done():
            previous.cancel()
            self._metrics.barge_ins_total.inc()
        self._turn_task = asyncio.create_task(self._run_turn(wav, previous))
        return self._turn_task

    async def _cancel_turn(self) -> None:
        task = self._turn_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _send(self, data: bytes) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(data)
            return True
        except ConnectionClosed:
            return False

    # -- the turn ------------------------------------------------------------------------------

    async def _run_turn(self, wav: bytes, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await previous
        if self.session is None:
            await self._sync_character(force=True)
        session, animator = self.session, self.animator
        turn_id = uuid.uuid4().hex[:12]
        arrived = time.perf_counter()
        turn_class = SolamiTurn if session.method == "solami" else AgentTurn
        turn = turn_class(self._clients, self._settings, session, turn_id)
        spoken: list[Clip] = []
        body: BodyMotion | None = None
        outcome = "ok"
        replies = None
        self._metrics.inflight_turns.inc()
        try:
            user_motion = await self._consume_user_motion()
            if isinstance(turn, SolamiTurn):
                replies = turn.run(wav, user_motion, await self._character_pose())
            else:
                replies = turn.run(wav)
            speech_end = self.now()
            async for item in replies:
                if isinstance(item, Clip):
                    speech_end, sent = await self._play_clip(item, speech_end, animator)
                    if not sent:
                        continue
                    spoken.append(item)
                    if len(spoken) == 1:
                        first = time.perf_counter() - arrived
                        self._metrics.time_to_first_audio_seconds.observe(first)
                        turn.log.mark("first_reply")
                elif isinstance(item, BodyMotion):
                    body = item
                    animator.play_body(self.now(), item.poses, item.trans)
            # The answer lasts until its audio ends: a new utterance before that interrupts it.
            await asyncio.sleep(max(0.0, speech_end - self.now()))
        except asyncio.CancelledError:
            outcome = "cancelled"
            animator.stop(self.now())
            raise
        except TurnError as exc:
            outcome = "error"
            self._metrics.errors_total.labels(exc.stage).inc()
            log_event(
                log,
                "turn failed",
                logging.WARNING,
                headset=self.config.name,
                turn_id=turn_id,
                stage=exc.stage,
                reason=exc.reason,
            )
            animator.stop(self.now())
            await self._send(await self._assets.apology(exc.stage))
        except Exception:  # a bug must cost one answer, not the headset's link
            outcome = "error"
            self._metrics.errors_total.labels("internal").inc()
            log.exception("turn %s failed", turn_id)
            animator.stop(self.now())
            await self._send(await self._assets.apology("internal"))
        finally:
            if replies is not None:
                # Closing the reply stream cancels what it still runs (LLM stream, speech,
                # motion) now, also when the turn was interrupted between two clips.
                with contextlib.suppress(Exception):
                    await replies.aclose()
            self._metrics.inflight_turns.dec()
            self._metrics.turns_total.labels(session.method, outcome).inc()
            for stage, ms in turn.log.stages_ms.items():
                self._metrics.turn_stage_seconds.labels(stage).observe(ms / 1000)
            if self._settings.record_dir is not None and spoken:
                record_turn(self._settings.record_dir / turn_id, spoken, body)
            if spoken or (turn.log.user_text and outcome == "ok"):
                session.add(*turn.history(spoken))
                with contextlib.suppress(RedisError):
                    await self._store.save(session)
            log_event(
                log,
                "turn",
                headset=self.config.name,
                session_id=session.session_id,
                turn_id=turn_id,
                outcome=outcome,
                sentences=len(spoken),
                **{f"{k}_ms": v for k, v in turn.log.stages_ms.items()},
            )
            report = {
                "turn_id": turn_id,
                "outcome": outcome,
                "sentences": len(spoken),
                "stages_ms": turn.log.stages_ms,
            }
            with contextlib.suppress(RedisError):
                await self._redis.set(
                    self.key(LAST_TURN_KEY), json.dumps(report), ex=LAST_TURN_TTL_S
                )

    async def _play_clip(
        self, clip: Clip, previous_end: float, animator: Animator
    ) -> tuple[float, bool]:
        """Sends ``clip`` as the previous one ends; returns when this one will end and whether
        it reached the headset.

        The headset replaces the playing WAV with a new one, so each is sent ``send_ahead_s``
        early (delivery and decoding) and carries that much silence at its end: what an early
        arrival cuts off is the pause between sentences, never speech.
        """
        ahead = self._settings.send_ahead_s
        wait = previous_end - ahead - self.now()
        if wait > 0:
            await asyncio.sleep(wait)
        start = self.now()
        if not await self._send(clip.wav(pad_s=ahead)):
            return previous_end, False
        if clip.face is not None:
            animator.play_face(start, clip.face)
        if clip.index == 0:
            with contextlib.suppress(RedisError):
                await self._mark_change()
        return start + clip.duration_s + ahead, True

    async def _mark_change(self) -> None:
        last = await self._redis.xrevrange(self.key("aiStream"), count=1)
        if last:
            await self._redis.set(self.key("change_id"), last[0][0])

    async def _consume_user_motion(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The user's motion since the last turn (trimmed like the original), or None."""
        try:
            entries = await self._redis.xrange(self.key("userStream"), f"({self._last_user_id}")
            if not entries:
                return None
            self._last_user_id = entries[-1][0].decode()
            await self._redis.xtrim(self.key("userStream"), minid=self._last_user_id)
        except RedisError:
            self._metrics.errors_total.labels("redis").inc()
            return None
        try:
            poses, trans = user_frames_to_smplx([fields for _, fields in entries])
        except ValueError as exc:
            self._metrics.errors_total.labels("user_stream").inc()
            log_event(
                log,
                "bad userStream entry",
                logging.WARNING,
                headset=self.config.name,
                error=str(exc),
            )
            return None
        return trim_user_motion(poses, trans)

    async def _character_pose(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The character's current pose from the headset's aifbStream snapshot."""
        try:
            # Only the newest snapshot counts (_trim_inputs drops the older ones).
            entries = await self._redis.xrevrange(self.key("aifbStream"), count=1)
        except RedisError:
            return None
        if not entries:
            return None
        try:
            return pose_snapshot_to_smplx(entries[0][1], self.rig)
        except ValueError as exc:
            self._metrics.errors_total.labels("aifb_stream").inc()
            log_event(log, "bad aifbStream entry", logging.WARNING, error=str(exc))
            return None

    # -- aiStream --------------------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        """Publishes one aiStream entry per frame at 30 fps, idle or answering."""
        backoff = 0.1
        next_tick = time.monotonic()
        while True:
            next_tick += 1.0 / FPS
            try:
                await self._publish_frame()
                self._metrics.redis_up.set(1)
                backoff = 0.1
            except RedisError:
                self._metrics.redis_up.set(0)
                self._metrics.errors_total.labels("redis").inc()
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                next_tick = time.monotonic()
                continue
            except Exception:  # the character must keep moving
                self._metrics.errors_total.labels("internal").inc()
                log.exception("publishing a frame failed")
                await asyncio.sleep(1.0)
                next_tick = time.monotonic()
                continue
            delay = next_tick - time.monotonic()
            if delay < -1.0:
                next_tick = time.monotonic()  # fell behind (machine busy): do not burst
            await asyncio.sleep(max(0.0, delay))

    def current_fields(self) -> dict[str, str]:
        pose, trans, face = self.animator.frame(self.now())
        fields = self.rig.frames(pose[None], trans[None])[0]
        fields.update(face_fields(np.clip(face, 0.0, 1.0).reshape(1, FACE_CHANNELS))[0])
        return fields

    async def _publish_frame(self) -> None:
        if self.animator is None or self.rig is None:
            return
        await self._redis.xadd(
            self.key("aiStream"),
            self.current_fields(),
            maxlen=self._settings.stream_maxlen,
            approximate=True,
        )
        self._metrics.frames_total.inc()
