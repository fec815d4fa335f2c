"""The original SOLAMI model-server HTTP API, so the original relay can drive this backend:
``/create_session/``, ``/delete_session/``, ``/interact/`` (returns ``motion_url`` and
``audio_url``), plus ``/healthz`` and the reply files."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path
from typing import Annotated, Protocol

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse

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
from solami.methods import LLM_SPEECH, METHODS, unknown_method

MODEL_CHARACTERS = set(CHARACTERS.values())
# Arrays of the original /interact/ motion npz.
MOTION_KEYS = ("poses", "trans", "poses_ai", "trans_ai")
_FILE_NAME = re.compile(r"^[0-9a-f]{32}\.(wav|npz)$")


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

    @property
    def headsets(self) -> list[str]: ...

    async def redis_ok(self) -> bool: ...


def create_app(relay: RelayState) -> FastAPI:
    app = FastAPI(title="SOLAMI relay", docs_url=None, redoc_url=None)
    files_dir: Path = relay.settings.files_dir
    files_dir.mkdir(parents=True, exist_ok=True)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        redis_ok = await relay.redis_ok()
        ok = relay.ready and redis_ok
        # A service that is down does not make the relay unhealthy (its turns get an apology),
        # but its channel state is shown.
        body = {
            "status": "ok" if ok else "unavailable",
            "redis": redis_ok,
            "headsets": relay.headsets,
            "services": relay.clients.states(),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

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
        (files_dir / f"{name}.wav").write_bytes(audio.encode_wav(samples, rate))
        np.savez(files_dir / f"{name}.npz", **_motion_arrays(body, session.method))
        return {
            "motion_url": f"/files/{name}.npz",
            "audio_url": f"/files/{name}.wav",
            "text": " ".join(c.text for c in clips),
        }

    @app.get("/files/{name}")
    async def files(name: str) -> FileResponse:
        if not _FILE_NAME.match(name) or not (files_dir / name).is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(files_dir / name)

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
