"""SOLAMI and agent prompts against hand-written strings; output parsing."""

from __future__ import annotations

import re

import pytest

from services.llm.characters import CharacterBook
from services.llm.parsing import AgentReplyParser, clean_speech, parse_solami
from services.llm.prompt import (
    Tokens,
    Turn,
    build_agent_messages,
    build_agent_prompt,
    build_solami_prompt,
    check_tokens,
    solami_prompt_budget,
)
from services.llm.settings import LlmSettings
from solami.errors import InvalidInput
from solami.settings import SettingsError, load_settings

BOOK = CharacterBook()
BATMAN = BOOK.get("Batman")
SYSTEM = "You are Batman, a superhero with superhuman strength, agility, and intelligence."
# The paper's limit: a 2048-token context less 600 tokens for the reply.
BUDGET = solami_prompt_budget(2048)


def count(text: str) -> int:
    """A stand-in tokenizer: every <...> tag is one token, every other word one token."""
    return len(re.findall(r"<[^<>]+>|[^\s<>]+", text))


def user(speech, body=(), hand=(), trans=None) -> Turn:
    return Turn("user", tokens=Tokens(tuple(speech), tuple(body), tuple(hand), trans))


def character(speech, body=(), hand=()) -> Turn:
    return Turn("character", tokens=Tokens(tuple(speech), tuple(body), tuple(hand)))


def test_one_turn_prompt():
    prompt, _, dropped = build_solami_prompt(
        BATMAN, (), user([5, 6], [1], [2], trans=7), count, BUDGET
    )
    assert prompt == (
        f"{SYSTEM}\n"
        "[Human]: <🔀7><sobo><🕺1><eobo><soha><🤚2><eoha><sosp><🗣️5><🗣️6><eosp><eoh>\n"
        "[MMGPT]:"
    )
    assert dropped == 0


def test_two_turn_prompt_character_message_has_no_transform():
    history = (user([1], [2], [3], trans=4), character([9, 8], [7], [6]))
    new = user([10], [11], [12], trans=13)
    prompt, _, _ = build_solami_prompt(BATMAN, history, new, count, BUDGET)
    assert prompt == (
        f"{SYSTEM}\n"
        "[Human]: <🔀4><sobo><🕺2><eobo><soha><🤚3><eoha><sosp><🗣️1><eosp><eoh>\n"
        "[MMGPT]: <sobo><🕺7><eobo><soha><🤚6><eoha><sosp><🗣️9><🗣️8><eosp><eos>\n"
        "[Human]: <🔀13><sobo><🕺11><eobo><soha><🤚12><eoha><sosp><🗣️10><eosp><eoh>\n"
        "[MMGPT]:"
    )


def _five_turns() -> tuple[list[Turn], Turn]:
    history = [
        user([1], [1], [1], trans=1),
        character([2], [2], [2]),
        user([3], [3], [3], trans=3),
        character([4], [4], [4]),
    ]
    return history, user([5], [5], [5], trans=5)


def test_five_turn_prompt_without_truncation():
    history, new = _five_turns()
    prompt, length, dropped = build_solami_prompt(BATMAN, history, new, count, BUDGET)
    assert dropped == 0
    assert prompt == (
        f"{SYSTEM}\n"
        "[Human]: <🔀1><sobo><🕺1><eobo><soha><🤚1><eoha><sosp><🗣️1><eosp><eoh>\n"
        "[MMGPT]: <sobo><🕺2><eobo><soha><🤚2><eoha><sosp><🗣️2><eosp><eos>\n"
        "[Human]: <🔀3><sobo><🕺3><eobo><soha><🤚3><eoha><sosp><🗣️3><eosp><eoh>\n"
        "[MMGPT]: <sobo><🕺4><eobo><soha><🤚4><eoha><sosp><🗣️4><eosp><eos>\n"
        "[Human]: <🔀5><sobo><🕺5><eobo><soha><🤚5><eoha><sosp><🗣️5><eosp><eoh>\n"
        "[MMGPT]:"
    )
    assert length == count(prompt)


def test_solami_prompt_budget_is_the_context_less_600_reply_tokens():
    assert BUDGET == 1448
    assert solami_prompt_budget(4096) == 3496


def test_truncation_drops_the_oldest_two_messages_and_keeps_the_system_prompt():
    history, new = _five_turns()
    full = count(build_solami_prompt(BATMAN, history, new, count, BUDGET)[0])
    prompt, length, dropped = build_solami_prompt(BATMAN, history, new, count, full)
    assert dropped == 2
    assert prompt == (
        f"{SYSTEM}\n"
        "[Human]: <🔀3><sobo><🕺3><eobo><soha><🤚3><eoha><sosp><🗣️3><eosp><eoh>\n"
        "[MMGPT]: <sobo><🕺4><eobo><soha><🤚4><eoha><sosp><🗣️4><eosp><eos>\n"
        "[Human]: <🔀5><sobo><🕺5><eobo><soha><🤚5><eoha><sosp><🗣️5><eosp><eoh>\n"
        "[MMGPT]:"
    )
    assert length < full


def test_user_message_alone_over_budget_is_invalid():
    with pytest.raises(InvalidInput, match="limit is 30 tokens"):
        build_solami_prompt(BATMAN, (), user(range(100), [1], [1], trans=1), count, 30)


def test_token_ranges_are_checked():
    check_tokens(Tokens((1023,), (511,), (511,), 255))
    for bad, message in (
        (Tokens((1024,)), "speech unit id 1024"),
        (Tokens((), (512,)), "body id 512"),
        (Tokens((), (), (600,)), "hand id 600"),
        (Tokens(trans=256), "trans id 256"),
    ):
        with pytest.raises(InvalidInput, match=message):
            check_tokens(bad)


def test_agent_messages_keep_the_last_five_and_the_role_play_prompt():
    history = [Turn("user" if i % 2 == 0 else "character", text=f"m{i}") for i in range(8)]
    messages, dropped = build_agent_messages(BATMAN, history, Turn("user", text="new"), False)
    assert dropped == 4
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("Let's do a role play! You are Batman")
    assert "<speech>XXXX</speech>" in messages[0]["content"]
    assert [m["content"] for m in messages[1:]] == [
        "<speech>m4</speech>",
        "<speech>m5</speech>",
        "<speech>m6</speech>",
        "<speech>m7</speech>",
        "<speech>new</speech>",
    ]
    with_motion, _ = build_agent_messages(BATMAN, [], Turn("user", text="hi", motion="waves"), True)
    assert with_motion[-1]["content"] == "<speech>hi</speech> <motion>waves</motion>"
    assert "<motion>YYYY</motion>" in with_motion[0]["content"]


def _render(messages: list[dict[str, str]]) -> str:
    """A stand-in chat template."""
    return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)


def test_agent_prompt_is_counted_against_the_context_window():
    history = [Turn("user", text="hello " * 40), Turn("character", text="hi")]
    new = Turn("user", text="how are you?")
    prompt, length, dropped = build_agent_prompt(
        BATMAN, history, new, False, _render, count, context_tokens=200, reply_tokens=20
    )
    messages, _ = build_agent_messages(BATMAN, history, new, False)
    assert prompt == _render(messages) and length == count(prompt) and dropped == 0
    # The same prompt in a window one token too small for it and a 20-token reply.
    with pytest.raises(InvalidInput) as error:
        build_agent_prompt(
            BATMAN,
            history,
            new,
            False,
            _render,
            count,
            context_tokens=length + 19,
            reply_tokens=20,
        )
    assert str(error.value) == (
        f"the prompt (system prompt and the last 3 messages) is {length} tokens; with 20 "
        f"tokens kept for the reply it does not fit the {length + 19}-token context window "
        "(shorten the history texts or the user message, or ask for fewer new tokens)"
    )


def test_parse_well_formed_solami_reply():
    text = " <sobo><🕺1><🕺2><🕺3><eobo><soha><🤚4><🤚5><eoha><sosp><🗣️7><🗣️8><eosp><eos>"
    tokens = parse_solami(text)
    assert tokens.body == (1, 2) and tokens.hand == (4, 5)  # cut to equal length
    assert tokens.speech == (7, 8)


def test_parse_truncated_solami_reply_keeps_what_was_generated():
    tokens = parse_solami("<sobo><🕺1><eobo><soha><🤚2><eoha><sosp><🗣️3><🗣️4")
    assert tokens.speech == (3,)
    assert tokens.body == (1,) and tokens.hand == (2,)


def test_parse_junk_gives_nothing():
    assert parse_solami("I am Batman. <🕺1> <sosp>hello") == Tokens()
    assert parse_solami("<sobo><🕺99999><eobo>") == Tokens()


def test_agent_parser_streams_sentences_and_caps_the_reply():
    parser = AgentReplyParser(with_motion=True)
    reply = (
        "<speech>I am Batman! *growls* I protect Gotham 🦇 every night. Fear the dark. "
        "This fourth sentence is never spoken.</speech> <motion>cross arms</motion>"
    )
    released = []
    for char in reply:
        released += parser.feed(char)
    released += parser.finish()
    assert released == ["I am Batman!", "I protect Gotham every night.", "Fear the dark."]
    assert parser.reply.motion == "cross arms"
    assert parser.reply.speech == "I am Batman! I protect Gotham every night. Fear the dark."


def test_agent_parser_releases_the_first_sentence_before_the_reply_ends():
    parser = AgentReplyParser(with_motion=False)
    assert parser.feed("<speech>Hello there. How") == ["Hello there."]
    assert parser.feed(" are you?</speech>") == ["How are you?"]


def test_agent_parser_takes_untagged_text_as_speech():
    parser = AgentReplyParser(with_motion=True)
    released = parser.feed("Sure, let me show you a dance. It is fun!")
    released += parser.finish()
    assert released == ["Sure, let me show you a dance.", "It is fun!"]
    assert parser.reply.motion == ""


def test_agent_parser_releases_a_reply_cut_before_its_end_tag():
    parser = AgentReplyParser(with_motion=True)
    released = []
    for char in "<speech>I am the night. I watch over Gotham and its peop":
        released += parser.feed(char)
    assert released == ["I am the night."]
    assert parser.finish() == ["I watch over Gotham and its peop"]
    assert parser.reply.speech == "I am the night. I watch over Gotham and its peop"
    assert parser.reply.motion == ""


@pytest.mark.parametrize("cut", ["<", "</", "</spe", "</speech"])
def test_agent_parser_drops_a_closing_tag_cut_off(cut):
    parser = AgentReplyParser(with_motion=False)
    released = parser.feed(f"<speech>Hello there. Nice to meet you{cut}")
    released += parser.finish()
    assert released == ["Hello there.", "Nice to meet you"]


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "  \n ",
        "*coughs* 🦇🦇🦇",
        "... !!! ###",
        "<speech>*sighs* 😀</speech> <motion></motion>",
        "<speech></speech>",
        "</s><|im_end|>",
        "<spe",
    ],
    ids=["empty", "spaces", "directions-emoji", "punctuation", "empty-tags", "no-speech",
         "markup", "cut-tag"],
)  # fmt: skip
def test_agent_parser_finds_no_speech_in_junk(junk):
    parser = AgentReplyParser(with_motion=True)
    released = []
    for char in junk:
        released += parser.feed(char)
    released += parser.finish()
    assert released == [] and parser.reply.sentences == []
    assert parser.reply.speech == "" and parser.reply.motion == ""


def test_clean_speech():
    assert clean_speech("*smiles* Hi 😀 there <speech>") == "Hi there"


def test_more_characters_come_from_a_file(tmp_path):
    extra = tmp_path / "characters.json"
    extra.write_text(
        '[{"name": "Pirate", "prompt": "You are a friendly pirate captain.",'
        ' "description": "a pirate"}]'
    )
    book = CharacterBook.load(extra)
    assert book.get("pirate").agent_prompt == "You are a friendly pirate captain."
    assert book.get("Batman").name == "Batman"
    bad = tmp_path / "bad.json"
    bad.write_text('[{"prompt": "no name"}]')
    with pytest.raises(ValueError, match="needs a 'name' and a 'prompt'"):
        CharacterBook.load(bad)


@pytest.mark.parametrize("tokens", ["600", "512"])
def test_a_context_window_without_room_for_a_reply_is_a_bad_setting(tokens):
    message = rf"SOLAMI_LLM_CONTEXT_TOKENS must be more than 600 \(.*\), got {tokens}"
    with pytest.raises(SettingsError, match=message):
        load_settings(LlmSettings, "SOLAMI_LLM_", {"SOLAMI_LLM_CONTEXT_TOKENS": tokens})
