"""The llm service over real gRPC: the SOLAMI method end to end on a tiny LLaMA with the SOLAMI
vocabulary (forced decoding), the packaged SmolLM2 in character, cancellation, bad input."""

from __future__ import annotations

import dataclasses
import threading
import time

import grpc
import pytest

from services.llm.backends.transformers import TransformersGenerator
from services.llm.engine import LlmEngine
from services.llm.server import DEFINITION
from services.llm.settings import LlmSettings
from solami.client import sync_channel
from solami.v1 import common_pb2, llm_pb2, llm_pb2_grpc
from tests.support.servers import InProcessServer, wait_until
from tests.support.tiny_solami import save_tiny_solami

REPLY = (
    " <sobo><🕺11><🕺12><🕺13><eobo><soha><🤚21><🤚22><eoha><sosp>"
    + "".join(f"<🗣️{u}>" for u in range(100, 160))
    + "<eosp><eos>"
)
JUNK = " [Human]: hello hello <eos>"
TURN = common_pb2.TurnContext(session_id="s", turn_id="t")


class ForcedReplies:
    """A logits hook that makes the model write ``replies[i]`` on its i-th try (the last one
    repeats), optionally slowly; counts decoding steps."""

    def __init__(self, tokenizer, replies: list[str], step_delay_s: float = 0.0) -> None:
        eos = tokenizer.eos_token_id
        self.targets = [
            [*tokenizer(text, add_special_tokens=False).input_ids, eos] for text in replies
        ]
        self.tries = 0
        self.steps = 0
        self.step_delay_s = step_delay_s

    def __call__(self, generated, logits):
        if not generated:
            self.tries += 1
        self.steps += 1
        time.sleep(self.step_delay_s)
        target = self.targets[min(self.tries, len(self.targets)) - 1]
        forced = target[min(len(generated), len(target) - 1)]
        masked = logits.clone().fill_(-float("inf"))
        masked[forced] = 0.0
        return masked


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_solami(tmp_path_factory.mktemp("tiny-solami"))


def _solami_server(model_dir, replies, step_delay_s=0.0, **settings_overrides):
    settings = dataclasses.replace(
        LlmSettings(),
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        backend="transformers",
        model=str(model_dir),
        **settings_overrides,
    )
    backend = TransformersGenerator(settings)
    engine = LlmEngine(settings, backend)
    server = InProcessServer(DEFINITION, settings, engine)
    server.run(server.host.start())
    backend.load()  # the tokenizer is needed to build the hook; load() runs again below
    hook = ForcedReplies(backend._tokenizer, replies, step_delay_s)
    backend._logits_hook = hook
    server.run(server.host.load_engine())
    hook.tries = hook.steps = 0
    return server, hook


def _solami_request(**overrides) -> llm_pb2.GenerateRequest:
    user = llm_pb2.Message(
        role=llm_pb2.ROLE_USER,
        tokens=llm_pb2.SolamiTokens(
            speech_units=[1, 2, 3], body_ids=[4, 5], hand_ids=[6, 7], trans_id=8
        ),
    )
    fields = dict(
        turn=TURN, character="Samantha", method=llm_pb2.CONVERSATION_METHOD_SOLAMI, user=user
    )
    fields.update(overrides)
    return llm_pb2.GenerateRequest(**fields)


def test_solami_method_end_to_end_on_tiny_llama(model_dir):
    server, _hook = _solami_server(model_dir, [REPLY])
    try:
        with sync_channel(server.address) as channel:
            stub = llm_pb2_grpc.LlmServiceStub(channel)
            listing = stub.ListCharacters(llm_pb2.ListCharactersRequest(), timeout=10)
            assert llm_pb2.CONVERSATION_METHOD_SOLAMI in listing.methods
            events = list(stub.Generate(_solami_request(), timeout=60))
    finally:
        server.stop()
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "end" and "motion_tokens" in kinds and "speech_units" in kinds
    assert all(e.turn.turn_id == "t" for e in events)
    units = [u for e in events if e.HasField("speech_units") for u in e.speech_units.ids]
    body = [b for e in events if e.HasField("motion_tokens") for b in e.motion_tokens.body_ids]
    hand = [h for e in events if e.HasField("motion_tokens") for h in e.motion_tokens.hand_ids]
    assert units == list(range(100, 160))
    assert body == [11, 12] and hand == [21, 22]  # cut to equal length
    end = events[-1].end
    assert list(end.reply.tokens.speech_units) == units
    assert list(end.reply.tokens.body_ids) == [11, 12]
    assert end.attempts == 1 and end.finish_reason == llm_pb2.FINISH_REASON_STOP
    assert end.prompt_tokens > 0 and end.completion_tokens > 0


def test_a_failed_try_is_retried_and_never_streamed(model_dir):
    server, hook = _solami_server(model_dir, [JUNK, REPLY])
    try:
        with sync_channel(server.address) as channel:
            events = list(
                llm_pb2_grpc.LlmServiceStub(channel).Generate(_solami_request(), timeout=60)
            )
    finally:
        server.stop()
    assert hook.tries == 2
    text = "".join(e.text.text for e in events if e.HasField("text"))
    assert "[Human]" not in text and "hello" not in text
    assert events[-1].end.attempts == 2
    assert list(events[-1].end.reply.tokens.hand_ids) == [21, 22]


def test_sampling_params_keep_the_methods_stop_strings(model_dir):
    # The model goes on past its reply into a made-up user turn; a request that sets only a
    # seed must still stop at "<eos>" like one with the default sampling.
    server, _ = _solami_server(model_dir, [REPLY + "\n[Human]: <sobo><🕺1><eobo>"])
    request = _solami_request(sampling=llm_pb2.SamplingParams(seed=5))
    try:
        with sync_channel(server.address) as channel:
            events = list(llm_pb2_grpc.LlmServiceStub(channel).Generate(request, timeout=60))
    finally:
        server.stop()
    text = "".join(e.text.text for e in events if e.HasField("text"))
    assert "<eos>" not in text and "[Human]" not in text
    assert text.rstrip().endswith("<eosp>")
    assert events[-1].end.finish_reason == llm_pb2.FINISH_REASON_STOP


def test_cancelling_stops_generation_within_a_step(model_dir):
    endless = " <sobo>" + "".join(f"<🕺{i % 500}>" for i in range(590))
    server, hook = _solami_server(model_dir, [endless], step_delay_s=0.02)
    try:
        with sync_channel(server.address) as channel:
            call = llm_pb2_grpc.LlmServiceStub(channel).Generate(_solami_request(), timeout=60)
            wait_until(lambda: hook.steps >= 3, "generation starting", 60, 0.01)
            call.cancel()
            steps_at_cancel = hook.steps
            with pytest.raises(grpc.RpcError) as cancelled:
                list(call)
            assert cancelled.value.code() == grpc.StatusCode.CANCELLED
            # Decoding stops at once (the reply would run 590 steps): the steps taken after the
            # cancel are the ones while it crossed the channel, 20 ms each, plus at most one.
            assert _settled(lambda: hook.steps) - steps_at_cancel < 15
            # the model is free again: the next turn runs
            hook.targets = ForcedReplies(server.host.engine.backend._tokenizer, [REPLY]).targets
            hook.tries, hook.step_delay_s = 0, 0.0
            events = list(
                llm_pb2_grpc.LlmServiceStub(channel).Generate(_solami_request(), timeout=60)
            )
            assert list(events[-1].end.reply.tokens.body_ids) == [11, 12]
    finally:
        server.stop()


def _settled(read, quiet_s: float = 0.5, timeout_s: float = 20.0) -> int:
    """The value of ``read()`` once it has not changed for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the value never settled"
        time.sleep(0.05)
        if read() != value:
            value, since = read(), time.monotonic()
    return value


@pytest.mark.parametrize(
    ("context_tokens", "units", "limit"),
    [(2048, 1500, 1448), (1024, 500, 424)],  # the limit is the context less 600 for the reply
    ids=["default", "smaller-context"],
)
def test_prompt_over_the_context_limit_is_invalid(model_dir, context_tokens, units, limit):
    server, _ = _solami_server(model_dir, [REPLY], context_tokens=context_tokens)
    long_user = llm_pb2.Message(
        role=llm_pb2.ROLE_USER,
        tokens=llm_pb2.SolamiTokens(speech_units=[1] * units, body_ids=[1], hand_ids=[1]),
    )
    try:
        with sync_channel(server.address) as channel, pytest.raises(grpc.RpcError) as error:
            list(
                llm_pb2_grpc.LlmServiceStub(channel).Generate(
                    _solami_request(user=long_user), timeout=60
                )
            )
    finally:
        server.stop()
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"limit is {limit} tokens" in error.value.details()


@pytest.fixture(scope="module")
def smollm():
    settings = dataclasses.replace(LlmSettings(), host="127.0.0.1", port=0, metrics_port=-1)
    server = InProcessServer(DEFINITION, settings, LlmEngine(settings)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smollm_stub(smollm):
    with sync_channel(smollm.address) as channel:
        yield llm_pb2_grpc.LlmServiceStub(channel)


def _agent_request(text="Hi! Who are you?", **overrides) -> llm_pb2.GenerateRequest:
    fields = dict(
        turn=TURN,
        character="Batman",
        method=llm_pb2.CONVERSATION_METHOD_LLM_SPEECH,
        user=llm_pb2.Message(role=llm_pb2.ROLE_USER, text=text),
        sampling=llm_pb2.SamplingParams(seed=7),
    )
    fields.update(overrides)
    return llm_pb2.GenerateRequest(**fields)


def test_smollm_answers_a_greeting_in_character(smollm_stub):
    events = list(smollm_stub.Generate(_agent_request(), timeout=60))
    sentences = [e.sentence.text for e in events if e.HasField("sentence")]
    end = events[-1].end
    assert sentences and end.reply.speech == " ".join(sentences)
    assert len(end.reply.speech.split()) <= 40
    assert end.first_token_ms < end.total_ms
    first_sentence_at = next(i for i, e in enumerate(events) if e.HasField("sentence"))
    assert first_sentence_at < len(events) - 1
    # header -> data -> end, the header naming what serves the turn
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "header" and kinds.count("header") == 1 and kinds[-1] == "end"
    header = events[0].header
    assert header.engine == "llama-cpp" and header.character == "Batman"
    assert header.method == llm_pb2.CONVERSATION_METHOD_LLM_SPEECH
    assert header.prompt_tokens == end.prompt_tokens > 0


def test_history_prefix_is_reused_on_the_next_turn(smollm_stub):
    first = list(smollm_stub.Generate(_agent_request("Hello Batman."), timeout=60))[-1].end
    history = [
        llm_pb2.Message(role=llm_pb2.ROLE_USER, text="Hello Batman."),
        llm_pb2.Message(role=llm_pb2.ROLE_CHARACTER, text=first.reply.speech),
    ]
    second = list(
        smollm_stub.Generate(_agent_request("Where is Gotham?", history=history), timeout=60)
    )[-1].end
    assert second.cached_prompt_tokens > 50
    assert second.prompt_tokens > first.prompt_tokens


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"character": "Gandalf"}, "unknown character 'Gandalf'"),
        ({"method": llm_pb2.CONVERSATION_METHOD_UNSPECIFIED}, "method must be set"),
        ({"method": llm_pb2.CONVERSATION_METHOD_SOLAMI}, "needs a SOLAMI model"),
        ({"user": llm_pb2.Message(role=llm_pb2.ROLE_USER)}, "user message is empty"),
        ({"user": llm_pb2.Message(text="hi")}, "has no role"),
        (
            {
                "history": [
                    llm_pb2.Message(
                        role=llm_pb2.ROLE_USER,
                        tokens=llm_pb2.SolamiTokens(speech_units=[5000]),
                    )
                ]
            },
            "speech unit id 5000 is out of range",
        ),
    ],
    ids=["character", "method", "solami-on-chat-model", "empty", "role", "ids"],
)
def test_bad_requests_are_invalid_argument(smollm_stub, overrides, message):
    with pytest.raises(grpc.RpcError) as error:
        list(smollm_stub.Generate(_agent_request(**overrides), timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


@pytest.mark.parametrize(
    "method",
    [llm_pb2.CONVERSATION_METHOD_LLM_SPEECH, llm_pb2.CONVERSATION_METHOD_DLP_RETRIEVAL],
    ids=["llm+speech", "dlp+retrieval"],
)
def test_agent_prompt_over_the_context_window_is_invalid(smollm_stub, method):
    # Four long history messages (the agent methods keep the last five messages) make a prompt
    # of about 3,600 tokens, more than the 2048-token context window holds.
    speech = "I remember every street of Gotham and every night I spent on its roofs. " * 50
    history = [
        llm_pb2.Message(role=role, text=speech, motion_text="stands still")
        for role in (llm_pb2.ROLE_USER, llm_pb2.ROLE_CHARACTER) * 2
    ]
    with pytest.raises(grpc.RpcError) as error:
        list(smollm_stub.Generate(_agent_request(method=method, history=history), timeout=60))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "2048-token context window" in error.value.details()
    assert "shorten the history" in error.value.details()
    # The service is fine afterwards.
    assert list(smollm_stub.Generate(_agent_request(), timeout=60))[-1].end.reply.speech


def test_request_without_user_message(smollm_stub):
    request = _agent_request()
    request.ClearField("user")
    with pytest.raises(grpc.RpcError) as error:
        list(smollm_stub.Generate(request, timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_generations_are_served_one_after_another(smollm_stub):
    results = []

    def run() -> None:
        # Each waits behind the others: the deadline covers all three.
        results.append(list(smollm_stub.Generate(_agent_request(), timeout=180))[-1].end)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert len(results) == 3 and all(r.reply.speech for r in results)


def test_cli_chat_streams_the_reply_and_prints_its_summary(smollm):
    import json

    from tests.support.servers import finish, spawn

    env = {"SOLAMI_LLM_ADDR": smollm.address}
    process = spawn(
        ["-m", "solami_cli", "call", "llm", "chat", "--character", "Batman", "Who are you?"], env
    )
    out, err = finish(process, 120)
    assert process.returncode == 0, err
    result = json.loads(out)
    assert result["speech"] and result["speech"] in " ".join(err.split())
    assert result["prompt_tokens"] > 0 and 1 <= result["attempts"] <= 4
    process = spawn(
        ["-m", "solami_cli", "call", "llm", "chat", "--character", "Gandalf", "Hi"], env
    )
    _, err = finish(process, 120)
    assert process.returncode == 1 and "INVALID_ARGUMENT" in err and "Gandalf" in err


def test_the_renamed_backend_setting_is_a_clear_start_error():
    from services.llm.settings import INFO
    from solami.settings import SettingsError, load_settings

    env = {"SOLAMI_LLM_ENGINE": "vllm"}
    with pytest.raises(SettingsError, match="SOLAMI_LLM_ENGINE was renamed SOLAMI_LLM_BACKEND"):
        load_settings(LlmSettings, INFO.env_prefix, env)
    # The new name is the one read.
    with pytest.raises(SettingsError, match="SOLAMI_LLM_MODEL must name a model directory"):
        load_settings(LlmSettings, INFO.env_prefix, {"SOLAMI_LLM_BACKEND": "vllm"})
