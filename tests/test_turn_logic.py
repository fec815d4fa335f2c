"""The relay's turn logic over in-process fake clients: what a turn yields and in which order,
what it keeps, how it fails; and the headset's turn runner (pacing, barge-in, apologies,
history, the turn report) over a real Redis. No models, no gRPC: every service is a fake from
``tests.support.fake_clients`` whose latency, failures and pauses the test controls.

Nothing here sleeps to synchronise: tests await the fakes' journal. Times are only checked as
lower bounds that follow from the runner's own waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import time
from collections.abc import Callable

import numpy as np
import pytest
import redis.asyncio as aioredis

from relay.assets import Assets
from relay.clients import ServiceClients
from relay.clients.asr import AsrClient
from relay.clients.face import FaceClient
from relay.clients.llm import LlmClient, MotionTokens, SpeechUnits
from relay.clients.motion import BodyMotion, MotionClient
from relay.clients.tts import Speech, TtsClient
from relay.errors import TurnError
from relay.headset.character import CharacterState
from relay.headset.inputs import HeadsetInputs
from relay.headset.runner import STOP_WAV, TurnRunner
from relay.metrics import RelayMetrics
from relay.quest import keys
from relay.quest.characters import ECHO_CHAR_ID, character_for
from relay.quest.rig import SMPLX_CHAR_ID
from relay.server import redis_client
from relay.sessions import Message, Session, SessionStore
from relay.settings import HeadsetConfig, RelaySettings
from relay.turns import Clip, TurnEvent, TurnInput, turn_for
from relay.turns.agent import DEFAULT_MOTION as AGENT_DEFAULT_MOTION
from relay.turns.agent import (
    MIN_MOTION_S,
    REQUEST_SCORE_FLOOR,
    SECONDS_PER_WORD,
    AgentTurn,
    pick_motion,
    reads_as_request,
)
from relay.turns.echo import EchoTurn
from relay.turns.solami import CLIP_S, MIN_CLIP_S, UNITS_PER_CHUNK, ClipCutter, SolamiTurn
from solami import audio
from solami.avatar.face import CHANNEL_COUNT
from solami.avatar.rates import FRAMES_PER_TOKEN
from solami.avatar.skeleton import POSE_DIMS, TRANS_DIMS
from solami.methods import (
    DLP_MOTIONGPT,
    DLP_MOTIONGPT_RETRIEVAL,
    DLP_RETRIEVAL,
    LLM_SPEECH,
    METHOD_INFO,
    METHODS,
    SOLAMI,
)
from tests.support.fake_clients import (
    DEFAULT_CAPTION,
    DEFAULT_MOTION,
    DEFAULT_TRANSCRIPT,
    DEFAULT_USER_TOKENS,
    DEFAULT_USER_UNITS,
    SAMPLE_RATE_HZ,
    FakeAsr,
    FakeFace,
    FakeLlm,
    FakeMotion,
    FakeTts,
    Fault,
    Hold,
    Journal,
    fake_clients,
    journal_of,
    tone,
)

AGENT_METHOD = DLP_RETRIEVAL
# Sentences of different lengths (0.2 s, 0.1 s, 0.15 s of fake speech), so order shows.
SENTENCES = ("One two three four.", "Five six.", "Seven eight nine.")
# A reply as the solami LLM streams it: units in uneven chunks, motion tokens in between.
SOLAMI_REPLY = (
    SpeechUnits(list(range(0, 30))),
    SpeechUnits(list(range(30, 80))),
    MotionTokens([1, 2], [3, 4]),
    SpeechUnits(list(range(80, 120))),
    MotionTokens([5], [6]),
)
# The runner's Redis database (no other test uses it) and its headset.
RUNNER_DB = 9
HEADSET = HeadsetConfig("turn-logic", 0, RUNNER_DB)
SEND_AHEAD_S = 0.05
# Allowance on the runner's timed waits: the event loop may run a timer a clock tick early.
CLOCK_SLACK_S = 1e-3
# Longest a runner test waits for a turn before failing instead of hanging.
TURN_LIMIT_S = 10.0


def _session(method: str = AGENT_METHOD, char_id: str = SMPLX_CHAR_ID) -> Session:
    return Session("session-1", char_id, character_for(char_id), method)


def _agent(
    clients: ServiceClients, method: str = AGENT_METHOD, speech_gesture: bool = True
) -> AgentTurn:
    return AgentTurn(clients, METHOD_INFO[method], speech_gesture)


def _still_clip(frames: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((frames, POSE_DIMS), np.float32), np.zeros((frames, TRANS_DIMS), np.float32)


def _utterance(number: int = 1) -> bytes:
    """A headset WAV, different for each ``number``."""
    return audio.encode_wav(tone(0.05 * number), SAMPLE_RATE_HZ)


def _request(
    method: str = AGENT_METHOD, user_frames: int = 0, char_id: str = SMPLX_CHAR_ID
) -> TurnInput:
    user = _still_clip(user_frames) if user_frames else None
    return TurnInput(_session(method, char_id), "turn-1", _utterance(), user_motion=user)


async def _events(turn, request: TurnInput) -> list[TurnEvent]:
    return [event async for event in turn.run(request)]


def _clips(events: list[TurnEvent]) -> list[Clip]:
    return [e for e in events if isinstance(e, Clip)]


def _bodies(events: list[TurnEvent]) -> list[BodyMotion]:
    return [e for e in events if isinstance(e, BodyMotion)]


def _all_ended(journal: Journal) -> bool:
    return all(call.outcome != "running" for call in journal.calls)


def _failing_llm(fault: Fault) -> FakeLlm:
    # A little latency per event, so what the LLM streamed before failing is spoken first.
    return FakeLlm([SENTENCES], delays={"generate": 0.01}, faults={"generate": fault})


# Failures of the stages an answer cannot do without: the fakes (built per test), the stage
# the turn fails with, and how many sentences are spoken before.
FAILURES = {
    "asr": (lambda: {"asr": FakeAsr(faults={"transcribe": Fault()})}, "asr", 0),
    # The asr client maps INVALID_ARGUMENT to the "input" stage; the turn passes it on.
    "asr-input": (
        lambda: {"asr": FakeAsr(faults={"transcribe": Fault(stage="input")})},
        "input",
        0,
    ),
    "llm-at-once": (lambda: {"llm": _failing_llm(Fault(after=0))}, "llm", 0),
    "llm-after-a-sentence": (lambda: {"llm": _failing_llm(Fault(after=1))}, "llm", 1),
    "tts-second-sentence": (
        lambda: {
            "llm": FakeLlm([SENTENCES]),
            "tts": FakeTts(faults={"synthesize": Fault(calls={2})}),
        },
        "tts",
        1,
    ),
    # A bug in a stage (not a TurnError) still costs only the answer.
    "internal": (
        lambda: {"llm": _failing_llm(Fault(after=1, error=RuntimeError("a bug")))},
        "internal",
        1,
    ),
}


def _failures(*names: str) -> list:
    return [pytest.param(*FAILURES[name], id=name) for name in names]


# ---------------------------------------------------------------- the fakes themselves


@pytest.mark.parametrize(
    ("fake", "real"),
    [
        (FakeAsr, AsrClient),
        (FakeLlm, LlmClient),
        (FakeTts, TtsClient),
        (FakeMotion, MotionClient),
        (FakeFace, FaceClient),
    ],
)
def test_fakes_have_the_client_interface(fake, real):
    public = [
        name for name in vars(real) if not name.startswith("_") and callable(vars(real)[name])
    ]
    assert public
    for name in public:
        real_method, fake_method = getattr(real, name), getattr(fake, name)
        assert list(inspect.signature(fake_method).parameters) == list(
            inspect.signature(real_method).parameters
        ), name
        assert inspect.isasyncgenfunction(fake_method) == inspect.isasyncgenfunction(real_method)
        assert inspect.iscoroutinefunction(fake_method) == inspect.iscoroutinefunction(real_method)
    assert fake.service == real.service


@pytest.mark.parametrize("method", METHODS)
def test_each_method_gets_its_turn_and_the_test_character_the_echo(method):
    clients = fake_clients()
    expected = SolamiTurn if method == SOLAMI else AgentTurn
    assert isinstance(turn_for(_session(method), clients), expected)
    assert isinstance(turn_for(_session(method, ECHO_CHAR_ID), clients), EchoTurn)


# ---------------------------------------------------------------- AgentTurn


async def test_agent_clips_follow_the_sentences_with_their_faces():
    tts = FakeTts()
    clients = fake_clients(llm=FakeLlm([SENTENCES]), tts=tts)
    request = _request()
    events = await _events(_agent(clients), request)

    clips = _clips(events)
    assert [c.text for c in clips] == list(SENTENCES)
    assert [c.index for c in clips] == [0, 1, 2]
    faces = clients.face.calls("animate")
    assert len(faces) == len(clips)
    for clip, face in zip(clips, faces, strict=True):
        expected = tts.speech_for(clip.text)
        np.testing.assert_array_equal(clip.samples, expected.samples)
        assert clip.rate_hz == SAMPLE_RATE_HZ
        # Its face was made from its own audio and the timings tts gave with it.
        assert face.args["samples"] is clip.samples
        assert list(face.args["timings"]) == list(expected.timings)
        assert clip.face is face.result
    (generate,) = clients.llm.calls("generate")
    assert generate.args["user"] == Message("user", text=DEFAULT_TRANSCRIPT)
    assert generate.args["method"] == AGENT_METHOD
    assert generate.args["character"] == request.session.character
    assert _all_ended(journal_of(clients))


@pytest.mark.parametrize(
    ("llm_delay_s", "tts_delay_s"),
    [(0.0, 0.01), (0.01, 0.0)],
    ids=["llm-ahead-of-speech", "speech-ahead-of-llm"],
)
async def test_agent_body_motion_comes_once_after_the_llm_finished(llm_delay_s, tts_delay_s):
    llm = FakeLlm([SENTENCES], delays={"generate": llm_delay_s})
    clients = fake_clients(llm=llm, tts=FakeTts(delays={"synthesize": tts_delay_s}))
    events = await _events(_agent(clients), _request())

    assert len(_clips(events)) == len(SENTENCES)
    (body,) = _bodies(events)
    assert isinstance(events[0], Clip)
    journal = journal_of(clients)
    (generate,) = journal.of("llm", "generate")
    (motion,) = journal.of("motion", "text_to_motion")
    assert motion.started > generate.ended
    assert body is motion.result
    words = len(" ".join(SENTENCES).split())
    assert motion.args["text"] == DEFAULT_MOTION
    assert motion.args["seconds"] == pytest.approx(max(MIN_MOTION_S, words * SECONDS_PER_WORD))


async def test_agent_reply_without_a_motion_gets_the_default_one():
    clients = fake_clients(llm=FakeLlm([SENTENCES], motion=""))
    events = await _events(_agent(clients), _request())
    assert len(_bodies(events)) == 1
    (motion,) = clients.motion.calls("text_to_motion")
    assert motion.args["text"] == AGENT_DEFAULT_MOTION


@pytest.mark.parametrize("method", [DLP_MOTIONGPT, DLP_MOTIONGPT_RETRIEVAL])
async def test_motiongpt_methods_caption_the_users_motion_into_the_prompt_and_history(method):
    clients = fake_clients(llm=FakeLlm([SENTENCES]))
    turn = _agent(clients, method)
    request = _request(method, user_frames=30)
    events = await _events(turn, request)

    (caption,) = clients.motion.calls("caption")
    assert caption.args["user"] is request.user_motion
    (generate,) = clients.llm.calls("generate")
    user = Message("user", text=DEFAULT_TRANSCRIPT, motion=DEFAULT_CAPTION)
    assert generate.args["user"] == user
    assert turn.history(_clips(events), finished=True)[0] == user
    # dlp+motiongpt asks for a generated motion, the +retrieval variant for a library clip.
    (motion,) = clients.motion.calls("text_to_motion")
    assert motion.args["generate"] is (method == DLP_MOTIONGPT)
    assert motion.args["text"] == DEFAULT_MOTION


@pytest.mark.parametrize("method", [DLP_RETRIEVAL, LLM_SPEECH])
async def test_methods_without_captions_never_read_the_users_motion(method):
    clients = fake_clients(llm=FakeLlm([SENTENCES]))
    turn = _agent(clients, method)
    await _events(turn, _request(method, user_frames=30))
    assert not turn.reads_body
    assert clients.motion.calls("caption") == []
    (generate,) = clients.llm.calls("generate")
    assert generate.args["user"] == Message("user", text=DEFAULT_TRANSCRIPT)


@pytest.mark.parametrize(
    "motion", [FakeMotion(faults={"caption": Fault()}), FakeMotion(caption_text="")]
)
async def test_a_failed_or_empty_caption_leaves_the_prompt_without_one(motion):
    clients = fake_clients(llm=FakeLlm([SENTENCES]), motion=motion)
    events = await _events(_agent(clients, DLP_MOTIONGPT), _request(DLP_MOTIONGPT, 30))
    assert [c.text for c in _clips(events)] == list(SENTENCES)
    (generate,) = clients.llm.calls("generate")
    assert generate.args["user"] == Message("user", text=DEFAULT_TRANSCRIPT)


async def test_a_turn_without_words_cancels_its_caption():
    hold = Hold()
    motion = FakeMotion(holds={"caption": hold})
    # The caption is asked for beside asr, and still running when asr hears nothing.
    clients = fake_clients(asr=FakeAsr([""], delays={"transcribe": 0.02}), motion=motion)
    events = await _events(_agent(clients, DLP_MOTIONGPT), _request(DLP_MOTIONGPT, 30))
    assert events == []
    assert clients.llm.calls() == []
    await journal_of(clients).wait_for(lambda: _all_ended(journal_of(clients)))
    (caption,) = clients.motion.calls("caption")
    assert caption.outcome == "stopped"


@pytest.mark.parametrize("gesture", [True, False])
async def test_llm_speech_gestures_only_when_asked(gesture):
    clients = fake_clients(llm=FakeLlm([SENTENCES], motion=""))
    events = await _events(_agent(clients, LLM_SPEECH, gesture), _request(LLM_SPEECH))
    assert len(_clips(events)) == len(SENTENCES)
    assert len(_bodies(events)) == int(gesture)
    assert len(clients.motion.calls("text_to_motion")) == int(gesture)


async def test_the_echo_plays_the_users_wav_and_motion_without_any_service():
    clients = fake_clients()
    user = _still_clip(12)
    user[1][:] = [2.0, 0.9, -1.0]
    request = dataclasses.replace(_request(char_id=ECHO_CHAR_ID), user_motion=user)
    turn = turn_for(request.session, clients)
    events = await _events(turn, request)

    body, clip = events
    assert isinstance(body, BodyMotion) and isinstance(clip, Clip)
    samples, rate = audio.decode_wav(request.wav, 60)
    assert clip.rate_hz == rate and np.array_equal(clip.samples, samples)
    assert np.array_equal(body.poses, user[0])
    # The user's steps, where the character stands: the floor position starts at zero.
    assert np.allclose(body.trans, [[0.0, 0.9, 0.0]] * 12)
    assert journal_of(clients).calls == []
    assert turn.history([clip], finished=True) == []


async def test_the_echo_refuses_what_is_not_a_wav():
    request = dataclasses.replace(_request(char_id=ECHO_CHAR_ID), wav=b"junk")
    with pytest.raises(TurnError) as failed:
        await _events(turn_for(request.session, fake_clients()), request)
    assert failed.value.stage == "input"


async def test_agent_face_failure_leaves_the_clip_without_a_face():
    face = FakeFace(faults={"animate": Fault(calls={2})})
    clients = fake_clients(llm=FakeLlm([SENTENCES]), face=face)
    events = await _events(_agent(clients), _request())

    clips = _clips(events)
    assert [c.text for c in clips] == list(SENTENCES)
    assert [c.face is None for c in clips] == [False, True, False]
    assert len(_bodies(events)) == 1


async def test_agent_motion_failure_only_loses_the_body():
    motion = FakeMotion(faults={"text_to_motion": Fault()})
    clients = fake_clients(llm=FakeLlm([SENTENCES]), motion=motion)
    events = await _events(_agent(clients), _request())

    assert [c.text for c in _clips(events)] == list(SENTENCES)
    assert all(c.face is not None for c in _clips(events))
    assert _bodies(events) == []
    assert [c.outcome for c in motion.calls()] == ["failed"]


@pytest.mark.parametrize(
    ("fakes", "stage", "spoken"),
    _failures("asr", "asr-input", "llm-at-once", "llm-after-a-sentence", "tts-second-sentence"),
)
async def test_agent_failure_of_a_needed_stage_ends_the_turn(fakes, stage, spoken):
    clients = fake_clients(**fakes())
    events: list[TurnEvent] = []
    with pytest.raises(TurnError) as failure:
        async for event in _agent(clients).run(_request()):
            events.append(event)

    assert failure.value.stage == stage
    assert [c.text for c in _clips(events)] == list(SENTENCES[:spoken])
    # Nothing the turn started is left running.
    assert _all_ended(journal_of(clients))
    if stage in ("asr", "input"):
        assert clients.llm.calls() == []


async def test_agent_empty_transcript_gives_no_events_and_no_history():
    clients = fake_clients(asr=FakeAsr([""]))
    turn = _agent(clients)
    assert await _events(turn, _request()) == []
    assert clients.llm.calls() == [] and clients.tts.calls() == []
    assert turn.history([], finished=True) == []


async def test_agent_history_keeps_only_the_spoken_clips():
    clients = fake_clients(llm=FakeLlm([SENTENCES]))
    turn = _agent(clients)
    clips = _clips(await _events(turn, _request()))
    user = Message("user", text=DEFAULT_TRANSCRIPT)

    assert turn.history(clips[:2], finished=False) == [
        user,
        Message("character", text=f"{SENTENCES[0]} {SENTENCES[1]}", motion=DEFAULT_MOTION),
    ]
    assert turn.history(clips, finished=True)[1].text == " ".join(SENTENCES)
    # Finished with nothing played: the user was heard, so their message stays.
    nothing = turn.history([], finished=True)
    assert nothing[0] == user and nothing[1].text == ""
    # Interrupted before anything played: the turn leaves no trace.
    assert turn.history([], finished=False) == []


# ---------------------------------------------------------------- SolamiTurn


async def test_solami_reply_is_voiced_in_one_stream_cut_into_clips():
    tts = FakeTts()
    clients = fake_clients(llm=FakeLlm([SOLAMI_REPLY]), tts=tts)
    request = _request("solami")
    events = await _events(SolamiTurn(clients), request)

    # One Vocode stream for the whole reply, fed in chunks of 50 units as they are generated.
    (vocode,) = tts.calls("vocode")
    units = list(range(120))
    chunks = [units[i : i + UNITS_PER_CHUNK] for i in range(0, len(units), UNITS_PER_CHUNK)]
    assert vocode.received == chunks and vocode.outcome == "done"
    assert vocode.args["deadline_s"] == clients.llm.deadline_s + clients.tts.deadline_s
    clips = _clips(events)
    assert [c.index for c in clips] == [0, 1, 2]
    assert [c.duration_s for c in clips] == pytest.approx([1.0, 1.0, 0.4])
    # The clips are the stream's audio cut, nothing dropped or repeated.
    streamed = np.concatenate([item.samples for item in vocode.items])
    np.testing.assert_array_equal(np.concatenate([c.samples for c in clips]), streamed)
    for clip in clips:
        assert clip.face is not None and len(clip.face) == round(clip.duration_s * 30)
    (generate,) = clients.llm.calls("generate")
    assert generate.args["user"].speech_units == list(DEFAULT_USER_UNITS)
    assert generate.args["method"] == "solami"
    (tokenize,) = clients.asr.calls("tokenize")
    assert tokenize.args["wav"] == request.wav


async def test_solami_clips_take_the_audio_the_service_holds_back():
    # Like the real service, the fake holds back the audio of each chunk's last 2 units until
    # the next chunk or the end: the first clip goes without waiting for the second chunk, and
    # the held tail goes with the last clip rather than alone.
    tts = FakeTts(held_units=2)
    reply = [SpeechUnits(list(range(0, 70))), SpeechUnits(list(range(70, 100)))]
    clients = fake_clients(llm=FakeLlm([reply]), tts=tts)
    turn = SolamiTurn(clients)
    clips = _clips(await _events(turn, _request("solami")))

    (vocode,) = tts.calls("vocode")
    assert vocode.received == [list(range(50)), list(range(50, 100))]
    assert [c.duration_s for c in clips] == pytest.approx([0.96, 1.04])
    whole = np.concatenate([tts.speech_for_units(c).samples for c in vocode.received])
    np.testing.assert_array_equal(np.concatenate([c.samples for c in clips]), whole)
    # The first clip holds the audio of 48 units: the history keeps those.
    assert turn.history(clips[:1], finished=False)[1].speech_units == list(range(48))


@pytest.mark.parametrize("seed", range(5))
def test_clip_cutter_keeps_every_sample_in_clips_of_about_a_second(seed):
    rng = np.random.default_rng(seed)
    rate = SAMPLE_RATE_HZ
    per_unit = rate // 50
    total_units = int(rng.integers(1, 400))
    samples = rng.standard_normal(total_units * per_unit).astype(np.float32)
    cutter = ClipCutter()
    clips = cutter.add(Speech(np.zeros(0, np.float32), rate))
    cuts = np.sort(rng.choice(np.arange(1, len(samples)), size=min(20, len(samples) - 1)))
    pieces = np.split(samples, cuts)
    for number, piece in enumerate(pieces):
        if number == len(pieces) // 2:
            cutter.total_units = total_units
        clips += cutter.add(Speech(piece, rate))
    clips += cutter.finish()

    np.testing.assert_array_equal(np.concatenate([c.samples for c in clips]), samples)
    for clip in clips[:-1]:
        assert MIN_CLIP_S - 1e-9 <= clip.duration_s <= CLIP_S + 1e-9
        assert len(clip.samples) % per_unit == 0
    assert clips[-1].duration_s <= CLIP_S + MIN_CLIP_S + 1e-9
    if len(clips) > 1:
        assert clips[-1].duration_s >= MIN_CLIP_S - 1e-9


async def test_solami_motion_tokens_reach_the_decoder_as_streamed():
    # The LLM pauses after the first units and motion tokens: the decoder must have them by then.
    hold = Hold(after=3)
    clients = fake_clients(llm=FakeLlm([SOLAMI_REPLY], holds={"generate": hold}))
    journal = journal_of(clients)
    running = asyncio.create_task(_events(SolamiTurn(clients), _request("solami")))

    def decoder_has_first_chunk() -> bool:
        decode = journal.of("motion", "decode_motion")
        return bool(decode) and len(decode[0].received) == 1

    await journal.wait_for(decoder_has_first_chunk)
    (generate,) = journal.of("llm", "generate")
    assert generate.held and generate.outcome == "running"
    hold.release.set()
    events = await running

    (decode,) = journal.of("motion", "decode_motion")
    assert decode.received == [([1, 2], [3, 4]), ([5], [6])]
    assert decode.args["deadline_s"] == clients.llm.deadline_s
    (body,) = _bodies(events)
    assert body is decode.result and len(body.poses) == 3 * FRAMES_PER_TOKEN
    assert len(_clips(events)) == 3


@pytest.mark.parametrize("encode_fails", [False, True], ids=["encoded", "encode-failed"])
async def test_solami_motion_encode_failure_only_drops_the_motion_tokens(encode_fails):
    faults = {"encode_user_motion": Fault()} if encode_fails else {}
    clients = fake_clients(llm=FakeLlm([SOLAMI_REPLY]), motion=FakeMotion(faults=faults))
    events = await _events(SolamiTurn(clients), _request("solami", user_frames=6))

    (encode,) = clients.motion.calls("encode_user_motion")
    assert len(encode.args["user"][0]) == 6
    (generate,) = clients.llm.calls("generate")
    user = generate.args["user"]
    assert user.speech_units == list(DEFAULT_USER_UNITS)
    if encode_fails:
        assert (user.body_ids, user.hand_ids, user.trans_id) == ([], [], None)
    else:
        tokens = DEFAULT_USER_TOKENS
        assert (user.body_ids, user.hand_ids, user.trans_id) == (
            tokens.body_ids,
            tokens.hand_ids,
            tokens.trans_id,
        )
    assert len(_clips(events)) == 3 and len(_bodies(events)) == 1


async def test_solami_history_cuts_the_units_to_what_was_played():
    clients = fake_clients(llm=FakeLlm([SOLAMI_REPLY]))
    turn = SolamiTurn(clients)
    clips = _clips(await _events(turn, _request("solami")))

    user, reply = turn.history(clips[:2], finished=False)
    assert user.role == "user" and user.speech_units == list(DEFAULT_USER_UNITS)
    # Two clips of 50 units: 2 s played at 50 units per second.
    assert reply.speech_units == list(range(100))
    assert (reply.body_ids, reply.hand_ids) == ([1, 2, 5], [3, 4, 6])
    assert turn.history(clips, finished=True)[1].speech_units == list(range(120))
    # Nothing played: the user was still heard when the turn finished, as for the agent methods.
    heard = turn.history([], finished=True)
    assert [m.role for m in heard] == ["user", "character"] and heard[1].speech_units == []
    assert turn.history([], finished=False) == []


async def test_solami_interruption_closes_the_stream_and_keeps_the_units_played():
    # The LLM pauses before its last event: two chunks were sent and voiced, the stream is
    # waiting for more units when the turn is closed (barge-in).
    reply = [SpeechUnits(list(range(start, start + 50))) for start in (0, 50, 100)]
    clients = fake_clients(llm=FakeLlm([reply], holds={"generate": Hold(after=3)}))
    turn = SolamiTurn(clients)
    answer = turn.run(_request("solami"))
    clips = [await anext(answer), await anext(answer)]
    (vocode,) = clients.tts.calls("vocode")
    assert vocode.outcome == "running"
    await answer.aclose()

    (generate,) = clients.llm.calls("generate")
    assert generate.outcome == "stopped"
    # Closed with the turn, not left to the garbage collector.
    assert vocode.outcome == "stopped"
    assert vocode.received == [list(range(50)), list(range(50, 100))]
    assert turn.history(clips, finished=False)[1].speech_units == list(range(100))


async def test_solami_vocode_failure_ends_the_turn_after_the_clips_voiced():
    tts = FakeTts(faults={"vocode": Fault(after=3)})
    clients = fake_clients(llm=FakeLlm([SOLAMI_REPLY]), tts=tts)
    turn = SolamiTurn(clients)
    answer = turn.run(_request("solami"))
    events = []
    with pytest.raises(TurnError) as failed:
        async for event in answer:
            events.append(event)
    assert failed.value.stage == "tts"
    assert [c.duration_s for c in _clips(events)] == pytest.approx([1.0])
    assert clients.llm.calls("generate")[0].outcome in ("done", "stopped")


# ---------------------------------------------------------------- TurnRunner


class Clock:
    """The headset's animation clock (monotonic seconds from its creation); ``last`` is its
    latest reading."""

    def __init__(self) -> None:
        self._zero = time.monotonic()
        self.last = 0.0

    def __call__(self) -> float:
        self.last = time.monotonic() - self._zero
        return self.last


class Headset:
    """The headset's end of the link: records every WAV the runner sends, with the runner's
    clock reading taken just before it (the clip's start); refuses the attempts in ``drop``."""

    def __init__(self, clock: Clock, journal: Journal) -> None:
        self._clock = clock
        self._journal = journal
        self.drop: set[int] = set()
        self.attempts = 0
        self.wavs: list[bytes] = []
        self.starts: list[float] = []

    async def send(self, wav: bytes) -> bool:
        self.attempts += 1
        if self.attempts - 1 in self.drop:
            return False
        self.starts.append(self._clock.last)
        self.wavs.append(wav)
        self._journal.changed()
        return True


@dataclasses.dataclass
class Relay:
    """One headset's turn runner and what it is built from."""

    runner: TurnRunner
    character: CharacterState
    headset: Headset
    clients: ServiceClients
    journal: Journal
    metrics: RelayMetrics
    store: SessionStore
    redis: aioredis.Redis
    assets: Assets
    settings: RelaySettings
    clock: Clock

    def wav(self, text: str) -> bytes:
        """What the runner sends for the reply sentence ``text``."""
        speech = self.clients.tts.speech_for(text)
        return Clip(0, text, speech, None).wav(pad_s=self.settings.send_ahead_s)

    async def report(self) -> dict:
        return json.loads(await self.redis.get(HEADSET.key(keys.LAST_TURN)))

    async def history(self, session_id: str | None = None) -> list[Message]:
        session = await self.store.get(session_id or self.character.session.session_id)
        return session.history

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        await self.journal.wait_for(condition)


@pytest.fixture
async def make_relay(redis_url):
    # A client configured as the relay configures its own.
    client = redis_client(redis_url, RUNNER_DB)
    await client.flushdb()
    # The SMPL-X character needs no rig data.
    await client.set(HEADSET.key(keys.CHAR_ID), SMPLX_CHAR_ID)
    made: list[Relay] = []

    async def make(method: str = AGENT_METHOD, **fakes) -> Relay:
        clients = fake_clients(**fakes)
        journal = journal_of(clients)
        settings = RelaySettings(send_ahead_s=SEND_AHEAD_S, method=method)
        metrics = RelayMetrics()
        store = SessionStore(client, settings.session_idle_s)
        assets = Assets(clients)
        clock = Clock()
        headset = Headset(clock, journal)
        runner: TurnRunner | None = None

        async def cancel_turn() -> None:
            if runner is not None:
                await runner.cancel()

        character = CharacterState(
            HEADSET, client, store, assets, settings, metrics, on_change=cancel_turn
        )
        inputs = HeadsetInputs(HEADSET, client, settings.stream_maxlen, metrics)
        runner = TurnRunner(
            HEADSET,
            client,
            store,
            clients,
            assets,
            settings,
            metrics,
            character,
            inputs,
            headset.send,
            clock,
        )
        await character.sync(force=True)
        relay = Relay(
            runner,
            character,
            headset,
            clients,
            journal,
            metrics,
            store,
            client,
            assets,
            settings,
            clock,
        )
        made.append(relay)
        return relay

    yield make
    for relay in made:
        # Let anything a test left held go on, then stop what still runs.
        clients = relay.clients
        for fake in (clients.asr, clients.llm, clients.tts, clients.motion, clients.face):
            for hold in fake.holds.values():
                hold.release.set()
        async with asyncio.timeout(TURN_LIMIT_S):
            await relay.runner.cancel()
    await client.aclose()


def _assert_cut(text: str, full: str) -> None:
    """``text`` is what was heard of ``full`` before a cut: its first words."""
    words = text.split()
    assert full.split()[: len(words)] == words, (text, full)


def _without_stops(wavs: list[bytes]) -> list[bytes]:
    """The WAVs sent, without the silences that stopped a reply playing."""
    return [wav for wav in wavs if wav != STOP_WAV]


async def _finished(task: asyncio.Task) -> None:
    """Waits for ``task`` (its cancellation included) without letting a hang stall the run."""
    async with asyncio.timeout(TURN_LIMIT_S):
        await asyncio.wait([task])


async def test_a_headset_resumes_its_session_unless_the_relays_method_changed(make_relay):
    first = await make_relay()
    again = await make_relay()
    assert again.character.session.session_id == first.character.session.session_id
    other = await make_relay(DLP_MOTIONGPT)
    assert other.character.session.method == DLP_MOTIONGPT
    assert other.character.session.session_id != first.character.session.session_id


async def test_runner_sends_the_clips_in_order_paced_to_the_headset(make_relay):
    relay = await make_relay(llm=FakeLlm([SENTENCES]))
    task = relay.runner.begin(_utterance())
    await _finished(task)
    finished_at = relay.clock()

    headset = relay.headset
    assert headset.wavs == [relay.wav(s) for s in SENTENCES]
    # Each clip is sent send_ahead_s before the previous one ends (and carries as much
    # silence): never before the previous clip's start plus its own duration.
    durations = [relay.clients.tts.speech_for(s).duration_s for s in SENTENCES]
    for k in range(len(SENTENCES) - 1):
        assert headset.starts[k + 1] >= headset.starts[k] + durations[k] - CLOCK_SLACK_S
    # The answer lasts until its last clip (and its padding) has played.
    assert finished_at >= headset.starts[-1] + durations[-1] + SEND_AHEAD_S - CLOCK_SLACK_S

    report = await relay.report()
    assert (report["outcome"], report["sentences"]) == ("ok", len(SENTENCES))
    assert {"asr", "llm_first_sentence", "first_reply"} <= set(report["stages_ms"])
    assert await relay.history() == [
        Message("user", text=DEFAULT_TRANSCRIPT),
        Message("character", text=" ".join(SENTENCES), motion=DEFAULT_MOTION),
    ]
    assert relay.count("solami_relay_turns_total", method=AGENT_METHOD, outcome="ok") == 1
    assert relay.count("solami_relay_inflight_turns") == 0


@pytest.mark.parametrize("interrupted", ["while-speech-is-made", "while-a-clip-waits"])
async def test_barge_in_cancels_the_answer_in_progress(make_relay, interrupted):
    second_reply = ("Sure.",)
    # The first answer's LLM stops after two sentences; in the first case its second sentence's
    # speech is still being made when the user speaks again, in the other it waits its turn.
    llm_hold = Hold(calls={1}, after=2)
    tts_holds = (
        {"synthesize": Hold(calls={2}, after=1)} if interrupted.startswith("while-s") else {}
    )
    relay = await make_relay(
        asr=FakeAsr(["first question", "second question"]),
        llm=FakeLlm([SENTENCES, second_reply], holds={"generate": llm_hold}),
        tts=FakeTts(holds=tts_holds),
    )
    journal, headset = relay.journal, relay.headset
    first = relay.runner.begin(_utterance(1))

    def second_sentence_in_progress() -> bool:
        synth = journal.of("tts", "synthesize")
        if tts_holds:
            return len(synth) == 2 and synth[1].held
        # Its speech and face are made: the clip is only waiting to be sent.
        return len(synth) == 2 and synth[1].outcome == "done" and len(journal.of("face")) == 3

    await relay.wait_until(
        lambda: (
            len(headset.wavs) == 1 and llm_hold.reached.is_set() and second_sentence_in_progress()
        )
    )
    second = relay.runner.begin(_utterance(2))
    await _finished(second)

    assert first.cancelled()
    # The first sentence was still playing: a silence stopped it.
    assert headset.wavs == [relay.wav(SENTENCES[0]), STOP_WAV, relay.wav(second_reply[0])]
    generate = journal.of("llm", "generate")
    assert generate[0].outcome == "stopped" and generate[1].outcome == "done"
    if tts_holds:
        assert journal.of("tts", "synthesize")[1].outcome == "stopped"
    assert _all_ended(journal)
    assert relay.count("solami_relay_barge_ins_total") == 1
    for outcome in ("cancelled", "ok"):
        assert relay.count("solami_relay_turns_total", method=AGENT_METHOD, outcome=outcome) == 1
    # The session kept what was heard of the first answer, before the second turn began.
    played = generate[1].args["history"]
    assert played[0] == Message("user", text="first question")
    _assert_cut(played[1].text, SENTENCES[0])
    assert await relay.history() == [
        *played,
        Message("user", text="second question"),
        Message("character", text=second_reply[0], motion=DEFAULT_MOTION),
    ]
    assert (await relay.report())["outcome"] == "ok"


def test_a_cut_clip_keeps_the_audio_and_the_words_heard():
    speech = Speech(tone(2.0), SAMPLE_RATE_HZ)
    face = np.ones((60, CHANNEL_COUNT), np.float32)
    clip = Clip(0, "one two three four five six seven eight", speech, face)
    heard = clip.cut(1.0)
    assert heard.duration_s == pytest.approx(1.0)
    assert np.array_equal(heard.samples, clip.samples[:SAMPLE_RATE_HZ])
    assert heard.text == "one two three four" and len(heard.face) == 30
    assert clip.cut(0.01).text == "" and clip.cut(5.0).text == clip.text


# A sentence of 2 s of fake speech (40 words at 0.05 s).
LONG_SENTENCE = " ".join(["word"] * 39 + ["end."])


async def test_barge_in_silences_the_reply_playing_and_keeps_it_to_the_cut(make_relay):
    relay = await make_relay(
        asr=FakeAsr(["tell me a story", "stop"]), llm=FakeLlm([(LONG_SENTENCE,), ("Sure.",)])
    )
    headset = relay.headset
    relay.runner.begin(_utterance(1))
    await relay.wait_until(lambda: len(headset.wavs) == 1)
    await asyncio.sleep(1.0)
    cut_at = relay.clock()
    await _finished(relay.runner.begin(_utterance(2)))

    assert headset.wavs == [relay.wav(LONG_SENTENCE), STOP_WAV, relay.wav("Sure.")]
    stopped_after = headset.starts[1] - headset.starts[0]
    heard = (await relay.history())[1].text
    _assert_cut(heard, LONG_SENTENCE)
    # About the words of the audio played until the silence (one word is 0.05 s).
    assert abs(len(heard.split()) - round(stopped_after / 0.05)) <= 1
    assert headset.starts[1] >= cut_at
    assert relay.count("solami_relay_cut_to_silence_seconds_count") == 1


async def test_rapid_barge_ins_silence_each_cut_once_and_answer_the_last(make_relay):
    transcripts = [f"question {n}" for n in range(10)]
    relay = await make_relay(
        asr=FakeAsr(transcripts), llm=FakeLlm([(LONG_SENTENCE,)] * 9 + [("Last answer.",)])
    )
    headset = relay.headset
    for number in range(1, 11):
        task = relay.runner.begin(_utterance(number))
        await asyncio.sleep(0.3)
    await _finished(task)

    wavs = headset.wavs
    assert wavs[-1] == relay.wav("Last answer.")
    # Every silence follows a reply it stopped: never two in a row, never one first.
    stops = [i for i, wav in enumerate(wavs) if wav == STOP_WAV]
    assert all(i > 0 and wavs[i - 1] != STOP_WAV for i in stops)
    assert len(stops) == len(_without_stops(wavs)) - 1
    assert relay.count("solami_relay_barge_ins_total") == 9


async def test_barge_in_while_the_previous_answer_stops_cancels_the_waiting_turn(make_relay):
    # The first answer's second sentence is being spoken by a stream slow to stop.
    hold = Hold(calls={2}, after=1, stops_late=True)
    relay = await make_relay(
        llm=FakeLlm([SENTENCES, ("Second.",), ("Third.",)]),
        tts=FakeTts(holds={"synthesize": hold}),
    )
    journal, headset = relay.journal, relay.headset
    first = relay.runner.begin(_utterance(1))
    await relay.wait_until(lambda: len(headset.wavs) == 1 and hold.reached.is_set())

    second = relay.runner.begin(_utterance(2))
    await relay.wait_until(lambda: journal.of("tts", "synthesize")[1].stopping)
    # The second utterance's turn now waits for the first to stop; a third one interrupts it.
    third = relay.runner.begin(_utterance(3))
    hold.release.set()
    await _finished(third)

    assert first.cancelled() and second.cancelled()
    asked = [c.args["wav"] for c in journal.of("asr", "transcribe")]
    assert asked == [_utterance(1), _utterance(3)]
    # One silence for the one cut of a reply playing (the second turn never played).
    assert len(_without_stops(headset.wavs)) == 2
    assert headset.wavs.count(STOP_WAV) <= 1


async def test_barge_in_as_the_first_clip_is_sent_cancels_the_answer(make_relay):
    relay = await make_relay(
        asr=FakeAsr(["first question", "second question"]),
        llm=FakeLlm([SENTENCES, ("Sure.",)]),
    )
    headset = relay.headset
    first = relay.runner.begin(_utterance(1))
    # Wakes as the first WAV is handed over, while the runner goes on to mark it in Redis.
    await relay.wait_until(lambda: len(headset.wavs) == 1)
    second = relay.runner.begin(_utterance(2))
    await _finished(second)

    assert first.cancelled()
    assert headset.wavs == [relay.wav(SENTENCES[0]), STOP_WAV, relay.wav("Sure.")]
    _assert_cut((await relay.history())[1].text, SENTENCES[0])


@pytest.mark.parametrize(
    ("fakes", "stage", "spoken"),
    _failures("asr", "asr-input", "llm-after-a-sentence", "tts-second-sentence", "internal"),
)
async def test_failed_turn_ends_with_one_apology(make_relay, fakes, stage, spoken):
    relay = await make_relay(**fakes())
    await _finished(relay.runner.begin(_utterance()))

    apology = await relay.assets.apology(stage)
    headset = relay.headset
    assert headset.wavs == [*(relay.wav(s) for s in SENTENCES[:spoken]), apology]
    report = await relay.report()
    assert (report["outcome"], report["sentences"]) == ("error", spoken)
    assert relay.count("solami_relay_errors_total", kind=stage) == 1
    assert relay.count("solami_relay_turns_total", method=AGENT_METHOD, outcome="error") == 1
    kept = [(m.role, m.text) for m in await relay.history()]
    assert kept == ([("user", DEFAULT_TRANSCRIPT), ("character", SENTENCES[0])] if spoken else [])
    assert _all_ended(relay.journal)


async def test_apology_waits_for_the_sentence_already_playing(make_relay):
    llm = FakeLlm([SENTENCES], faults={"generate": Fault(after=1)}, delays={"generate": 0.01})
    relay = await make_relay(llm=llm)
    await _finished(relay.runner.begin(_utterance()))

    headset = relay.headset
    assert len(headset.wavs) == 2
    spoken_s = relay.clients.tts.speech_for(SENTENCES[0]).duration_s
    assert headset.starts[1] >= headset.starts[0] + spoken_s - CLOCK_SLACK_S


async def test_history_keeps_only_the_clips_that_reached_the_headset(make_relay):
    relay = await make_relay(llm=FakeLlm([SENTENCES]))
    relay.headset.drop = {1}
    await _finished(relay.runner.begin(_utterance()))

    assert relay.headset.wavs == [relay.wav(SENTENCES[0]), relay.wav(SENTENCES[2])]
    assert (await relay.history())[1].text == f"{SENTENCES[0]} {SENTENCES[2]}"
    assert (await relay.report())["sentences"] == 2


async def test_character_change_cancels_the_running_turn(make_relay):
    hold = Hold(calls={2}, after=1)
    relay = await make_relay(llm=FakeLlm([SENTENCES]), tts=FakeTts(holds={"synthesize": hold}))
    first_session = relay.character.session
    task = relay.runner.begin(_utterance())
    await relay.wait_until(lambda: len(relay.headset.wavs) == 1 and hold.reached.is_set())

    await relay.redis.set(HEADSET.key(keys.CHAR_ID), "Vrmgirl")
    await relay.character.sync()

    assert task.cancelled()
    assert relay.character.char_id == "Vrmgirl"
    assert relay.character.session.session_id != first_session.session_id
    # The reply playing is silenced, as for a barge-in.
    assert relay.headset.wavs == [relay.wav(SENTENCES[0]), STOP_WAV]
    assert relay.journal.of("tts", "synthesize")[1].outcome == "stopped"
    assert _all_ended(relay.journal)
    report = await relay.report()
    assert report["outcome"] == "cancelled" and report["cut_to_silence_ms"] >= 0
    assert relay.count("solami_relay_barge_ins_total") == 0
    user, character = await relay.history(first_session.session_id)
    assert (user.role, user.text) == ("user", DEFAULT_TRANSCRIPT)
    _assert_cut(character.text, SENTENCES[0])
    assert await relay.history() == []


# ------------------------------------------------ AgentTurn: a motion the user asks for plays

REQUEST = "Could you take a bow for me?"


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("Could you take a bow for me?", True),
        ("Take a bow, hero.", True),
        ("Let's dance!", True),
        ("Show me your thinking pose.", True),
        ("Wave goodbye to me, Link.", True),
        ("how are you today", False),
        ("I love dancing.", False),
        ("Do you like to dance?", False),
        ("ok", False),
        ("", False),
        ("Please dance. " * 20, False),  # over REQUEST_MAX_CHARS: talk, not a request
    ],
)
def test_what_reads_as_a_request_for_a_motion(text, asks):
    assert reads_as_request(text) is asks


async def test_a_requested_motion_plays_even_when_the_reply_names_another():
    motion = FakeMotion(
        scores={REQUEST: REQUEST_SCORE_FLOOR + 0.1, DEFAULT_MOTION: 1.0},
        delays={"text_to_motion": 0.01},
    )
    clients = fake_clients(asr=FakeAsr([REQUEST]), llm=FakeLlm([SENTENCES]), motion=motion)
    events = await _events(_agent(clients), _request())

    (body,) = _bodies(events)
    asked, said = clients.motion.calls("text_to_motion")
    assert asked.args["text"] == REQUEST and said.args["text"] == DEFAULT_MOTION
    # Both are asked for at once, after the reply is known, for the same length.
    assert asked.started < said.ended and said.started < asked.ended
    assert asked.args["seconds"] == said.args["seconds"] and not asked.args["generate"]
    assert body is asked.result and body.score == pytest.approx(REQUEST_SCORE_FLOOR + 0.1)


async def test_a_request_the_library_does_not_match_plays_the_replys_motion():
    motion = FakeMotion(scores={REQUEST: REQUEST_SCORE_FLOOR - 0.1})
    clients = fake_clients(asr=FakeAsr([REQUEST]), llm=FakeLlm([SENTENCES]), motion=motion)
    events = await _events(_agent(clients), _request())

    (body,) = _bodies(events)
    asked, said = clients.motion.calls("text_to_motion")
    assert asked.args["text"] == REQUEST
    assert body is said.result and said.args["text"] == DEFAULT_MOTION


@pytest.mark.parametrize("method", [DLP_MOTIONGPT, LLM_SPEECH])
async def test_a_requested_motion_wins_over_a_generated_one_or_the_talking_gesture(method):
    motion = FakeMotion(scores={REQUEST: 0.8})
    clients = fake_clients(
        asr=FakeAsr([REQUEST]),
        llm=FakeLlm([SENTENCES], motion="" if method == LLM_SPEECH else DEFAULT_MOTION),
        motion=motion,
    )
    events = await _events(_agent(clients, method), _request(method))

    (body,) = _bodies(events)
    asked, said = clients.motion.calls("text_to_motion")
    assert body is asked.result and not asked.args["generate"]
    assert said.args["generate"] is (method == DLP_MOTIONGPT)


async def test_a_turn_that_asks_for_nothing_asks_the_library_once():
    clients = fake_clients(asr=FakeAsr(["I love dancing."]), llm=FakeLlm([SENTENCES]))
    events = await _events(_agent(clients), _request())
    (body,) = _bodies(events)
    (said,) = clients.motion.calls("text_to_motion")
    assert said.args["text"] == DEFAULT_MOTION and body is said.result


@pytest.mark.parametrize("failing", [1, 2], ids=["transcript-fails", "reply-motion-fails"])
async def test_when_one_candidate_fails_the_other_plays(failing):
    motion = FakeMotion(
        scores={REQUEST: REQUEST_SCORE_FLOOR - 0.2},
        faults={"text_to_motion": Fault(calls={failing})},
    )
    clients = fake_clients(asr=FakeAsr([REQUEST]), llm=FakeLlm([SENTENCES]), motion=motion)
    events = await _events(_agent(clients), _request())

    (body,) = _bodies(events)
    asked, said = clients.motion.calls("text_to_motion")
    assert (asked.outcome, said.outcome) == (
        ("failed", "done") if failing == 1 else ("done", "failed")
    )
    # The transcript's clip plays below the floor too when the reply's motion failed.
    assert body is (said.result if failing == 1 else asked.result)


def test_the_rule_between_the_two_candidates():
    def clip(score: float) -> BodyMotion:
        poses, trans = _still_clip(2)
        return BodyMotion(poses, trans, "clip", score)

    asked_high, asked_low, said = clip(REQUEST_SCORE_FLOOR), clip(0.1), clip(1.0)
    assert pick_motion(asked_high, said) is asked_high
    assert pick_motion(asked_low, said) is said
    assert pick_motion(None, said) is said
    assert pick_motion(asked_low, None) is asked_low
    assert pick_motion(None, None) is None
