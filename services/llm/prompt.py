"""Prompts: the SOLAMI conversation format and the agent methods' chat messages.

SOLAMI: ``"{system}\\n[Human]: {msg}<eoh>\\n[MMGPT]: {msg}<eos>\\n..."`` ending in
``"[Human]: {msg}<eoh>\\n[MMGPT]:"``, with user messages
``<🔀t><sobo>...<eobo><soha>...<eoha><sosp>...<eosp>`` and character messages without the
transform token. The oldest two messages are dropped while the prompt is at least the context
window less ``SOLAMI_REPLY_TOKENS`` (2048 - 600 = 1448 tokens in the paper); the system prompt
always stays.

Agent methods: the system prompt and the last ``AGENT_HISTORY_MESSAGES`` messages in the model's
chat template; a prompt that leaves no room in the context window for the reply is refused.
Two styles of agent prompt: ``original`` (the original agent server's, word for word) and
``examples`` (the default: it won ``python -m bench dialogue``), which adds to the system
prompt the motions the reply may name and an instruction to answer the user, and puts example
exchanges (``EXAMPLES`` and the character's own) before the conversation as earlier messages;
they never change, so the KV cache keeps them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from services.llm import vocabulary as v
from services.llm.characters import Character, Example
from solami.errors import InvalidInput

# Tokens the SOLAMI method keeps free for the reply (its longest reply, as in the paper).
SOLAMI_REPLY_TOKENS = 600
# The agent methods keep this many most recent messages (the new user message included).
AGENT_HISTORY_MESSAGES = 5

AGENT_START = "Let's do a role play! "
SPEECH_FORMAT = (
    "Let's talk in format:   <speech>XXXX</speech> \n <speech>XXXX</speech> is just the words of "
    "the character, no motion or expression, at most 15 words. For example, my message is: "
    "<speech>Hello, how are you recently?</speech>  \n Remember you must response in this format. "
    "Let's start."
)
SPEECH_MOTION_FORMAT = (
    "Let's behave in format:   <speech>XXXX</speech> <motion>YYYY</motion> \n "
    "<speech>XXXX</speech> means the words of the character, at most 15 words. "
    "<motion>YYYY</motion> means the text description of the character, no emojis. "
    "For example, my message is: <speech>Hello, how are you recently?</speech> "
    "<motion>Wave hands</motion>  \n Remember you must response in this format. Let's start."
)

# Agent prompt styles (``SOLAMI_LLM_AGENT_PROMPT``).
ORIGINAL_PROMPT = "original"
EXAMPLES_PROMPT = "examples"
AGENT_PROMPTS = (ORIGINAL_PROMPT, EXAMPLES_PROMPT)
# ``examples``: what follows the format prompt (with the motion phrases for methods with motion).
ANSWER_RULE = " Answer what the user just said, in character, in one or two short sentences."
MOTION_CHOICES = " The motion is one of: {motions}."
# ``examples``: exchanges shown before the character's own (a motion request, a feeling).
EXAMPLES = (
    Example("Can you show me a bow?", "Of course! Here is my best bow.", "take a bow"),
    Example("I had a long day at work.", "I am sorry. Sit down and tell me about it.", "nod yes"),
    Example("Do you like music?", "I love music! It makes me want to dance.", "dance"),
)


@dataclasses.dataclass(frozen=True)
class AgentPromptStyle:
    """How agent prompts are written: ``name`` (one of ``AGENT_PROMPTS``) and, for
    ``examples``, the motion phrases a reply may name."""

    name: str = ORIGINAL_PROMPT
    motions: tuple[str, ...] = ()


ORIGINAL_STYLE = AgentPromptStyle()


@dataclasses.dataclass(frozen=True)
class Tokens:
    """SOLAMI ids of one message."""

    speech: tuple[int, ...] = ()
    body: tuple[int, ...] = ()
    hand: tuple[int, ...] = ()
    trans: int | None = None


@dataclasses.dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    # "user" or "character".
    role: str
    text: str = ""
    motion: str = ""
    tokens: Tokens = Tokens()


def check_tokens(tokens: Tokens) -> None:
    """Raises InvalidInput for ids outside their vocabularies."""
    for name, ids, size in (
        ("speech unit", tokens.speech, v.SPEECH_VOCAB),
        ("body", tokens.body, v.BODY_VOCAB),
        ("hand", tokens.hand, v.HAND_VOCAB),
    ):
        bad = [i for i in ids if not 0 <= i < size]
        if bad:
            raise InvalidInput(f"{name} id {bad[0]} is out of range [0, {size})")
    if tokens.trans is not None and not 0 <= tokens.trans < v.TRANS_VOCAB:
        raise InvalidInput(f"trans id {tokens.trans} is out of range [0, {v.TRANS_VOCAB})")


def solami_message(turn: Turn) -> str:
    """The token string of one SOLAMI message."""
    t = turn.tokens
    parts = []
    if turn.role == "user" and t.trans is not None:
        parts.append(v.trans_token(t.trans))
    parts += [v.BODY_OPEN, *map(v.body_token, t.body), v.BODY_CLOSE]
    parts += [v.HAND_OPEN, *map(v.hand_token, t.hand), v.HAND_CLOSE]
    parts += [v.SPEECH_OPEN, *map(v.speech_token, t.speech), v.SPEECH_CLOSE]
    return "".join(parts)


def render_solami(system: str, turns: Sequence[Turn]) -> str:
    """The SOLAMI prompt for ``turns`` (the last one is the user's), ending with ``[MMGPT]:``."""
    lines = [system]
    for turn in turns:
        if turn.role == "user":
            lines.append(f"{v.USER_ROLE}: {solami_message(turn)}{v.USER_END}")
        else:
            lines.append(f"{v.CHARACTER_ROLE}: {solami_message(turn)}{v.CHARACTER_END}")
    lines.append(f"{v.CHARACTER_ROLE}:")
    return "\n".join(lines)


def solami_prompt_budget(context_tokens: int) -> int:
    """SOLAMI prompts stay under this many tokens (1448 for the paper's 2048-token context)."""
    return context_tokens - SOLAMI_REPLY_TOKENS


def build_solami_prompt(
    character: Character,
    history: Sequence[Turn],
    user: Turn,
    count_tokens: Callable[[str], int],
    budget_tokens: int,
) -> tuple[str, int, int]:
    """(prompt, its token count, history messages dropped): the oldest messages are dropped, two
    at a time, until the prompt is under ``budget_tokens``."""
    dropped = 0
    while True:
        prompt = render_solami(character.solami_prompt, [*history[dropped:], user])
        length = count_tokens(prompt)
        if length < budget_tokens:
            return prompt, length, dropped
        if dropped >= len(history):
            raise InvalidInput(
                f"the user message alone makes a {length}-token prompt; the limit is "
                f"{budget_tokens} tokens (shorten the utterance or its motion)"
            )
        dropped = min(len(history), dropped + 2)


def agent_system_prompt(
    character: Character, with_motion: bool, style: AgentPromptStyle = ORIGINAL_STYLE
) -> str:
    prompt = (
        AGENT_START
        + character.agent_prompt
        + (SPEECH_MOTION_FORMAT if with_motion else SPEECH_FORMAT)
    )
    if style.name == EXAMPLES_PROMPT:
        if with_motion and style.motions:
            prompt += MOTION_CHOICES.format(motions=", ".join(style.motions))
        prompt += ANSWER_RULE
    return prompt


def example_messages(character: Character, with_motion: bool) -> list[dict[str, str]]:
    """The ``examples`` style's example exchanges as chat messages: ``EXAMPLES``, then the
    character's own."""
    messages = []
    for example in (*EXAMPLES, *character.examples):
        user = Turn("user", text=example.user)
        reply = Turn("character", text=example.speech, motion=example.motion)
        messages.append({"role": "user", "content": agent_message(user, with_motion)})
        messages.append({"role": "assistant", "content": agent_message(reply, with_motion)})
    return messages


def agent_message(turn: Turn, with_motion: bool) -> str:
    """``<speech>…</speech>`` (+ `` <motion>…</motion>``) for one agent-method message."""
    text = f"<speech>{turn.text}</speech>"
    return f"{text} <motion>{turn.motion}</motion>" if with_motion else text


def build_agent_messages(
    character: Character,
    history: Sequence[Turn],
    user: Turn,
    with_motion: bool,
    motion_caption: str = "",
    style: AgentPromptStyle = ORIGINAL_STYLE,
) -> tuple[list[dict[str, str]], int]:
    """Chat messages (system, the ``examples`` style's examples, the last messages) and the
    number of history messages dropped.

    ``motion_caption`` (a caption of the user's motion) goes in the new user message's
    ``<motion>`` slot, where the original server puts its MotionGPT caption
    (``llama2_server_model.py``, ``conv_inference_server``: ``'<speech>' + speech_str +
    '</speech> <motion>' + motion_str + '</motion>'``); "" keeps the user's own motion text.
    Methods without motion leave it out, as the original does."""
    if with_motion and motion_caption:
        user = dataclasses.replace(user, motion=motion_caption)
    turns = [*history, user][-AGENT_HISTORY_MESSAGES:]
    dropped = len(history) + 1 - len(turns)
    messages = [{"role": "system", "content": agent_system_prompt(character, with_motion, style)}]
    if style.name == EXAMPLES_PROMPT:
        messages += example_messages(character, with_motion)
    for turn in turns:
        role = "user" if turn.role == "user" else "assistant"
        messages.append({"role": role, "content": agent_message(turn, with_motion)})
    return messages, dropped


def build_agent_prompt(
    character: Character,
    history: Sequence[Turn],
    user: Turn,
    with_motion: bool,
    chat_prompt: Callable[[list[dict[str, str]]], str],
    count_tokens: Callable[[str], int],
    context_tokens: int,
    reply_tokens: int,
    motion_caption: str = "",
    style: AgentPromptStyle = ORIGINAL_STYLE,
) -> tuple[str, int, int]:
    """(prompt, its token count, history messages dropped) for an agent method, with
    ``motion_caption`` placed as in ``build_agent_messages``.

    Raises InvalidInput when the prompt and ``reply_tokens`` new tokens do not fit in
    ``context_tokens``."""
    messages, dropped = build_agent_messages(
        character, history, user, with_motion, motion_caption, style
    )
    prompt = chat_prompt(messages)
    length = count_tokens(prompt)
    if length + reply_tokens > context_tokens:
        raise InvalidInput(
            f"the prompt (system prompt and the last {len(history) + 1 - dropped} messages) is "
            f"{length} tokens; with {reply_tokens} tokens kept for the reply it does not fit the "
            f"{context_tokens}-token context window (shorten the history texts or the user "
            "message, or ask for fewer new tokens)"
        )
    return prompt, length, dropped
