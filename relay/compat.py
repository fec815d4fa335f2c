"""The original SOLAMI model-server HTTP API, so the original relay can drive this backend:
``/create_session/``, ``/delete_session/``, ``/interact/`` (returns ``motion_url`` and
``audio_url``), plus ``/healthz``, ``/livez`` and the reply files.

Reply files stay bounded: each is deleted once fetched (the original relay fetches each file
exactly once, the motion then the audio), a sweep deletes the ones nobody fetched within
``SOLAMI_RELAY_FILES_TTL_S``, and past ``SOLAMI_RELAY_FILES_MAX_MB`` the oldest go first."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Annotated, Protocol

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from relay.clients import ServiceClients
from relay.clients.motion import BodyMotion, SmplxClip
from relay.errors import TurnError
from relay.quest.characters import CHARACTERS
from relay.sessions import SessionStore
from relay.settings import RelaySettings
from relay.turns import Clip, TurnInput, turn_for
from relay.turns.base import new_turn_id
from solami import audio
from solami.avatar.skeleton import POSE_DIMS, TRANS_DIMS, convert_up_axis
from solami.logs import log_event
from solami.methods import LLM_SPEECH, METHODS, unknown_method

MODEL_CHARACTERS = set(CHARACTERS.values())
# Arrays of the original /interact/ motion npz.
MOTION_KEYS = ("poses", "trans", "poses_ai", "trans_ai")
_FILE_NAME = re.compile(r"^[0-9a-f]{32}\.(wav|npz)$")
BYTES_PER_MB = 1024 * 1024

log = logging.getLogger(__name__)


class ReplyFiles:
    """The folder of ``/interact/`` replies, kept bounded in age and total size."""

    def __init__(self, directory: Path, ttl_s: float, max_bytes: int) -> None:
        self.directory = directory
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, data: bytes) -> None:
        """Stores one reply file, first making room for it."""
        self.sweep(room_bytes=len(data))
        path = self.directory / name
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_bytes(data)
        partial.replace(path)

    def path(self, name: str) -> Path | None:
        """The file called ``name`` (a reply's file name), or None."""
        path = self.directory / name
        return path if _FILE_NAME.match(name) and path.is_file() else None

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / name).unlink()

    def sweep(self, room_bytes: int = 0) -> int:
        """Deletes files older than the TTL, then the oldest until ``room_bytes`` more fit in
        the cap. Returns how many were deleted."""
        now = time.time()
        files: list[tuple[float, int, Path]] = []
        deleted = 0
        for path in self.directory.iterdir():
            if not _FILE_NAME.match(path.name):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if now - stat.st_mtime > self.ttl_s:
                deleted += self._unlink(path)
            else:
                files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files) + room_bytes
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            deleted += self._unlink(path)
            total -= size
        return deleted

    async def sweep_every(self, interval_s: float) -> None:
        """Sweeps forever (the relay runs it as a task), so unfetched files go even when no
        new reply arrives."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                if deleted := await asyncio.to_thread(self.sweep):
                    log_event(log, "reply files swept", deleted=deleted)
            except OSError as exc:
                log_event(log, "reply files sweep failed", logging.WARNING, error=str(exc))

    @staticmethod
    def _unlink(path: Path) -> int:
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        return 1


def _character(name: str) -> tuple[str, str]:
    """(char_id, model character) for a char_id or a model character name."""
    if name in CHARACTERS:
        return name, CHARACTERS[name]
    if name in MODEL_CHARACTERS:
        char_id = next(k for k, v in CHARACTERS.items() if v == name)
        return char_id, name
    known = ", ".join(sorted(MODEL_CHARACTERS | set(CHARACTERS)))
    raise HTTPException(422, f"unknown character {name!r}; known: {known}")


class RelayState(Protocol):
    """What the HTTP API needs of the relay process (``relay.server.Relay``)."""

    settings: RelaySettings
    clients: ServiceClients
    store: SessionStore
    # True once every headset endpoint is up.
    ready: bool
    # Last known state of the sessions' Redis (updated in the background).
    redis_up: bool

    @property
    def headsets(self) -> list[str]: ...


def create_app(relay: RelayState) -> FastAPI:
    app = FastAPI(title="SOLAMI relay", docs_url=None, redoc_url=None)
    settings = relay.settings
    reply_files = ReplyFiles(
        settings.files_dir, settings.files_ttl_s, int(settings.files_max_mb * BYTES_PER_MB)
    )
    app.state.reply_files = reply_files

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        # Ready while the headset endpoints are up. Neither Redis (the relay rides out its
        # restarts; solami_relay_session_redis_up and an alert report it) nor a service that is
        # down (its turns get an apology) makes the relay unready: an unready relay pod would
        # be taken out of its headsets' load balancer. Both are shown.
        ok = relay.ready
        body = {
            "status": "ok" if ok else "unavailable",
            "redis": relay.redis_up,
            "headsets": relay.headsets,
            "services": relay.clients.states(),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/livez")
    async def livez() -> dict:
        # Answered by the event loop itself: a relay whose loop is stuck fails it.
        return {"status": "alive"}

    @app.post("/create_session/")
    async def create_session(
        session_name: Annotated[str, Form()] = "",
        method: Annotated[str, Form()] = "dlp+retrieval",
        character: Annotated[str, Form()] = "Samantha",
    ) -> dict:
        if method not in METHODS:
            raise HTTPException(422, unknown_method(method))
        char_id, model_character = _character(character)
        session = await relay.store.create(char_id, method, model_character)
        return {"session_id": session.session_id, "session_name": session_name}

    @app.post("/delete_session/")
    async def delete_session(session_id: Annotated[str, Form()]) -> dict:
        if not await relay.store.delete(session_id):
            raise HTTPException(404, f"no session {session_id!r}")
        return {"deleted": session_id}

    @app.post("/interact/")
    async def interact(
        session_id: Annotated[str, Form()],
        audio_file: Annotated[UploadFile, File(alias="audio")],
        motion: Annotated[UploadFile | None, File()] = None,
    ) -> dict:
        session = await relay.store.get(session_id)
        if session is None:
            raise HTTPException(404, f"no session {session_id!r}")
        user, character = _read_motion(await motion.read()) if motion is not None else (None, None)
        wav = await audio_file.read()
        turn = turn_for(session, relay.clients, relay.settings.speech_gesture)
        replies = turn.run(TurnInput(session, new_turn_id(), wav, user, character))
        clips: list[Clip] = []
        body: BodyMotion | None = None
        try:
            async for item in replies:
                if isinstance(item, Clip):
                    clips.append(item)
                else:
                    body = item
        except TurnError as exc:
            status = 422 if exc.stage == "input" else 503
            raise HTTPException(status, f"{exc.stage} failed: {exc.reason}") from None
        if messages := turn.history(clips, finished=True):
            session.add(*messages)
            await relay.store.save(session)
        name = uuid.uuid4().hex
        rate = clips[0].rate_hz if clips else 16_000
        samples = np.concatenate([c.samples for c in clips]) if clips else np.zeros(rate // 10)
        motion_npz = io.BytesIO()
        np.savez(motion_npz, **_motion_arrays(body, session.method))
        reply_wav = audio.encode_wav(samples, rate)
        await asyncio.to_thread(reply_files.write, f"{name}.wav", reply_wav)
        await asyncio.to_thread(reply_files.write, f"{name}.npz", motion_npz.getvalue())
        return {
            "motion_url": f"/files/{name}.npz",
            "audio_url": f"/files/{name}.wav",
            "text": " ".join(c.text for c in clips),
        }

    @app.get("/files/{name}")
    async def files(name: str) -> FileResponse:
        path = reply_files.path(name)
        if path is None:
            raise HTTPException(404, "no such file")
        # Served once: the file is deleted when the response has been sent.
        return FileResponse(path, background=BackgroundTask(reply_files.delete, name))

    return app


def _motion_arrays(body: BodyMotion | None, method: str) -> dict[str, np.ndarray]:
    """The reply's ``poses``/``trans`` arrays. Without a body motion: none for llm+speech (the
    original server's empty npz; the original relay does not play it), else one rest frame
    (the original relay plays the file of every other method)."""
    if body is not None:
        return {"poses": body.poses, "trans": body.trans}
    if method == LLM_SPEECH:
        return {}
    rest = np.zeros((1, POSE_DIMS), np.float32)
    return {"poses": rest, "trans": np.zeros((1, TRANS_DIMS), np.float32)}


def _read_motion(data: bytes) -> tuple[SmplxClip, SmplxClip]:
    """The original request's npz, Z-up like the original relay wrote it: the user's ``poses``
    (T,165) and ``trans`` (T,3), the character's ``poses_ai`` (1,165) and ``trans_ai`` (1,3).
    Returns both as Y-up SMPL-X (user, character)."""
    try:
        with np.load(io.BytesIO(data)) as npz:
            arrays = {k: np.asarray(npz[k], np.float64) for k in MOTION_KEYS}
    except (OSError, ValueError, KeyError) as exc:
        raise HTTPException(
            422, f"motion must be an npz with {', '.join(MOTION_KEYS)}: {exc}"
        ) from None
    shapes = {k: v.shape for k, v in arrays.items()}
    for poses, trans in (("poses", "trans"), ("poses_ai", "trans_ai")):
        if (
            arrays[poses].ndim != 2
            or arrays[poses].shape[1:] != (POSE_DIMS,)
            or arrays[trans].shape != (len(arrays[poses]), TRANS_DIMS)
            or not len(arrays[poses])
        ):
            raise HTTPException(
                422, f"motion {poses} must be (T,165) and {trans} (T,3), got {shapes}"
            )
        if not (np.isfinite(arrays[poses]).all() and np.isfinite(arrays[trans]).all()):
            raise HTTPException(422, f"motion {poses}/{trans} hold NaN or infinite values")
    user = convert_up_axis(arrays["poses"], arrays["trans"])
    ai_poses, ai_trans = convert_up_axis(arrays["poses_ai"], arrays["trans_ai"])
    return user, (ai_poses[-1:], ai_trans[-1:])
