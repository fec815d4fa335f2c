"""The agent methods' LLM side against the original public server,
``models/vla/anygpt/infer/llama2_server_model.py`` of AlanJiang98/SOLAMI (class ``DLP``): its
retry count, its reply parsing of speech and motion text, its word/sentence cap and where it
puts the caption of the user's motion. The original's outputs for the parsing cases were
generated with its code and kept as data (``tests/fixtures/agent_parsing``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.llm.backends.base import GenerationStats, Sampling
from services.llm.characters import CharacterBook
from services.llm.engine import Finished, LlmEngine, Request
from services.llm.parsing import MAX_SENTENCES, MAX_WORDS, AgentReplyParser
from services.llm.prompt import (
    AGENT_START,
    SPEECH_MOTION_FORMAT,
    Turn,
    build_agent_messages,
    build_agent_prompt,
)
from services.llm.settings import LlmSettings
from solami.methods import (
    AGENT_METHODS,
    DLP_MOTIONGPT,
    DLP_MOTIONGPT_RETRIEVAL,
    DLP_RETRIEVAL,
    LLM_SPEECH,
)

BATMAN = CharacterBook().get("Batman")


# What the original server made of the replies below: ``tests/fixtures/agent_parsing/README.md``.
ORIGINAL = json.loads(
    (Path(__file__).parent / "fixtures" / "agent_parsing" / "cases.json").read_text()
)


def _ours(raw: str, with_motion: bool) -> AgentReplyParser:
    parser = AgentReplyParser(with_motion)
    for char in raw:  # streamed one character at a time
        parser.feed(char)
    parser.finish()
    return parser


def _tidy(text: str) -> str:
    return " ".join(text.split())


def test_the_cap_is_the_originals():
    # shorten_text_response(text, max_words=20, max_sentences=3)
    assert (MAX_WORDS, MAX_SENTENCES) == (20, 3)


@pytest.mark.parametrize("case", ORIGINAL["speech"], ids=range(len(ORIGINAL["speech"])))
def test_speech_is_cleaned_and_capped_like_the_original(case):
    # The cases: sentence and word caps (a first sentence over 20 words kept whole), a quote
    # after the mark, ellipses, *actions* and emoji dropped, a fourth sentence never spoken.
    assert _tidy(_ours(case["reply"], with_motion=False).reply.speech) == _tidy(case["speech"])


@pytest.mark.parametrize(
    "case", ORIGINAL["speech_and_motion"], ids=range(len(ORIGINAL["speech_and_motion"]))
)
def test_motion_text_is_parsed_like_the_original(case):
    # Closed, *action*-and-emoji, cut-off, missing and empty motion tags.
    parser = _ours(case["reply"], with_motion=True)
    assert _tidy(parser.reply.motion) == _tidy(case["motion"])
    assert _tidy(parser.reply.speech) == _tidy(case["speech"])


class FakeBackend:
    """Stands in for an LLM (none can be loaded in this test): replies ``replies[i]`` on the
    i-th try, the last one repeating; counts the tries."""

    name = "fake"
    supports_solami = False

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.tries = 0

    def load(self) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    async def stream(
        self, prompt: str, sampling: Sampling, stats: GenerationStats
    ) -> AsyncIterator[str]:
        self.prompt = prompt
        reply = self.replies[min(self.tries, len(self.replies) - 1)]
        self.tries += 1
        for word in reply.split(" "):
            yield word + " "


# The original server's prompt is the ``original`` option (the default is ``examples``).
ORIGINAL_SETTINGS = LlmSettings(agent_prompt="original", agent_grammar=False)


def _finish(backend: FakeBackend, method: str, motion_caption: str = "") -> Finished:
    engine = LlmEngine(ORIGINAL_SETTINGS, backend)
    user = Turn("user", text="Who are you?")
    request = Request("Batman", method, (), user, motion_caption=motion_caption)

    async def run() -> Finished:
        events = [event async for event in engine.generate(request)]
        return events[-1]

    return asyncio.run(run())


@pytest.mark.parametrize("method", AGENT_METHODS)
def test_agent_methods_try_four_times_like_the_original(method):
    # DLP.__init__(..., REPEAT_TIMES=4) and `for repeat in range(self.REPEAT_TIMES)` in
    # conv_inference_server: a try without speech is generated again, four tries in all.
    assert LlmSettings().agent_max_attempts == 4
    junk = "*nods* \U0001f987"
    backend = FakeBackend([junk, junk, junk, "<speech>I am Batman.</speech>"])
    end = _finish(backend, method)
    assert backend.tries == 4 and end.attempts == 4 and end.speech == "I am Batman."
    # After four tries without speech the original gives up (returns None): no reply.
    backend = FakeBackend([junk])
    end = _finish(backend, method)
    assert backend.tries == 4 and end.attempts == 4 and end.speech == ""


def test_the_solami_method_keeps_the_original_solami_servers_three_tries():
    # solami_server_model.py, SOLAMI.__init__(..., REPEAT_TIMES = 3)
    assert LlmSettings().max_attempts == 3


def test_a_motion_caption_fills_the_new_user_messages_motion_slot():
    # conv_inference_server: message_str = '<speech>' + speech_str + '</speech> <motion>' +
    # motion_str + '</motion>' with motion_str = self.motion_caption_infer(input_motion_path).
    history = [Turn("user", text="hello", motion="stands"), Turn("character", text="hi")]
    user = Turn("user", text="Look at this!")
    captioned, _ = build_agent_messages(BATMAN, history, user, True, "a person does a cartwheel")
    today, _ = build_agent_messages(BATMAN, history, user, True)
    assert captioned[-1] == {
        "role": "user",
        "content": "<speech>Look at this!</speech> <motion>a person does a cartwheel</motion>",
    }
    assert captioned[:-1] == today[:-1]  # the system prompt and the history are untouched
    # An empty caption is exactly today's prompt.
    assert build_agent_messages(BATMAN, history, user, True, "") == (today, 0)
    # llm+speech has no <motion> in its messages, caption or not (message_str = '<speech>' +
    # speech_str + '</speech>').
    assert build_agent_messages(BATMAN, history, user, False, "a cartwheel") == (
        build_agent_messages(BATMAN, history, user, False)
    )
    prompt, _, _ = build_agent_prompt(
        BATMAN, history, user, True, FakeBackend([]).chat_prompt, len, 100_000, 150, "a bow"
    )
    assert prompt.endswith("user: <speech>Look at this!</speech> <motion>a bow</motion>")


def test_text_before_the_speech_tag_is_spoken_unlike_the_original():
    # On purpose (README, llm): untagged text is streamed as speech once it makes a sentence, so
    # a lead-in before <speech> is spoken, where the original keeps only the tagged part; the
    # speech is never restarted half way.
    raw = "Sure thing. <speech>Hello, how are you recently?</speech> <motion>Wave hands</motion>"
    parser = _ours(raw, with_motion=True)
    assert parser.reply.sentences == ["Sure thing.", "Hello, how are you recently?"]
    assert parser.reply.motion == "Wave hands"


def test_the_engine_passes_a_motion_caption_to_the_agent_prompt():
    backend = FakeBackend(["<speech>I am Batman.</speech> <motion>bow</motion>"])
    _finish(backend, DLP_RETRIEVAL, motion_caption="a person waves")
    assert backend.prompt.endswith(
        "user: <speech>Who are you?</speech> <motion>a person waves</motion>"
    )
    _finish(backend, LLM_SPEECH, motion_caption="a person waves")
    assert backend.prompt.endswith("user: <speech>Who are you?</speech>")


@pytest.mark.parametrize("method", [DLP_MOTIONGPT, DLP_MOTIONGPT_RETRIEVAL])
def test_the_motiongpt_methods_prompt_as_dlp_retrieval(method):
    # create_session: the same format prompt for 'dlp+retrieval', 'dlp+motiongpt' and
    # 'dlp+motiongpt+retrieval'; the user's caption rides in the user message's motion text.
    reply = "<speech>I am Batman.</speech> <motion>bow</motion>"
    theirs, ours = FakeBackend([reply]), FakeBackend([reply])
    _finish(theirs, DLP_RETRIEVAL, motion_caption="a person waves")
    end = _finish(ours, method, motion_caption="a person waves")
    assert ours.prompt == theirs.prompt
    assert (end.speech, end.motion) == ("I am Batman.", "bow")


def test_the_original_option_prompts_word_for_word_as_the_original_server():
    # create_session: system prompt "Let's do a role play! " + character prompt + format prompt,
    # then the user's '<speech>…</speech> <motion>…</motion>'; nothing else in between.
    backend = FakeBackend(["<speech>I am Batman.</speech> <motion>bow</motion>"])
    _finish(backend, DLP_RETRIEVAL)
    assert backend.prompt == (
        f"system: {AGENT_START}{BATMAN.agent_prompt}{SPEECH_MOTION_FORMAT}\n"
        "user: <speech>Who are you?</speech> <motion></motion>"
    )
