"""dialogue: what the character answers, on the embedded default (SmolLM2 on llama.cpp), per
prompt/decoding variant, side by side in one run.

The conversations of ``bench/data/dialogue.jsonl`` (written for this benchmark: motion requests
with the library clip they ask for, questions about the character, small talk, feelings,
follow-ups that need the previous turn, and bad input: one-word and punctuation-only
utterances, other languages, a 1,800-character rant, prompt injection) go through the llm
service and the motion service over gRPC, through the relay's typed clients, as the agent turn
(``dlp+retrieval``, the relay's default method) uses them: the session's history grows with each
reply, the reply's motion text (or the turn's default) is retrieved from the library, and the
turn's rule between it and the transcript's own request (``relay.turns.agent.pick_motion``)
picks the clip. Each variant has its own llm server (its own KV cache, as a replica would);
the variants take turns on every utterance, in a rotating order, so drift in the machine's
speed falls on all alike.

Measured per variant:
- format: the reply has both a speech and a motion after parsing;
- motion-request accuracy: on motion requests, the clip of the reply's motion text is the one
  asked for, and the clip the turn plays after the rule is; on the other turns, how often the
  rule played the transcript's clip;
- relevance: MiniLM (all-MiniLM-L6-v2) cosine of the reply to its utterance less its mean cosine
  to the other utterances (a margin: 0 = no more related to what was said than to anything
  else); replies that are empty or copy the utterance (word-set Jaccard >= 0.6) count 0;
  bad input left out;
- follow-up coherence: the same margin of a follow-up's reply against the previous utterance of
  its conversation (vs the previous utterances of the other follow-ups);
- words per reply, copies of the utterance;
- time from the request to the first sentence, p50 (what speech-out waits for), and to the
  whole reply (what the body motion waits for);
- on bad input: broken format (no speech or no motion) and system-prompt echo (a run of
  ``ECHO_WORDS`` words of the system prompt in the reply, or its placeholders).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from bench.common import report
from relay.clients.llm import LlmClient, Reply, Sentence
from relay.clients.motion import MotionClient
from relay.metrics import RelayMetrics
from relay.sessions import Message
from relay.turns.agent import (
    DEFAULT_MOTION,
    MIN_MOTION_S,
    SECONDS_PER_WORD,
    pick_motion,
    reads_as_request,
)
from services.llm.characters import CharacterBook
from services.llm.engine import LlmEngine
from services.llm.motions import LIBRARY_PHRASES
from services.llm.prompt import AgentPromptStyle, agent_system_prompt
from services.llm.server import DEFINITION as LLM
from services.llm.settings import LlmSettings
from services.motion.backends.retrieval import TextEmbedder
from services.motion.engine import MotionEngine
from services.motion.server import DEFINITION as MOTION
from services.motion.settings import MotionSettings
from solami.methods import DLP_RETRIEVAL
from solami.v1 import common_pb2, llm_pb2_grpc, motion_pb2_grpc
from tests.support.servers import InProcessServer

DATA = Path(__file__).parent / "data"
CONVERSATIONS = DATA / "dialogue.jsonl"
METHOD = DLP_RETRIEVAL
# The settings of each variant, spelled out (not relying on the defaults); the original prompt
# without a grammar (the default before this benchmark) first: every ratio is against it.
VARIANTS: dict[str, dict] = {
    "original": {"agent_prompt": "original", "agent_grammar": False},
    "grammar": {"agent_prompt": "original", "agent_grammar": True},
    "examples": {"agent_prompt": "examples", "agent_grammar": False},
    "examples+grammar": {"agent_prompt": "examples", "agent_grammar": True},
    # The same without the characters' own examples (built-in characters redefined, from a
    # characters file, with none): what the character-specific examples add.
    "shared examples+grammar": {
        "agent_prompt": "examples",
        "agent_grammar": True,
        "characters_file": "without-examples",
    },
}
BAD_KINDS = ("bad_short", "bad_language", "bad_rant", "bad_injection")
DEADLINE_S = 120.0
# A reply that shares this many consecutive words with the system prompt echoes it.
ECHO_WORDS = 5
# Placeholders of the format prompt that no reply should say.
PROMPT_MARKERS = ("xxxx", "yyyy", "role play", "in format", "system prompt:")
# Word-set Jaccard at or above which a reply copies the utterance.
COPY_JACCARD = 0.6


@dataclasses.dataclass(frozen=True)
class Utterance:
    conversation: int
    character: str
    kind: str
    text: str
    # The library clip a motion request asks for ("" for other kinds).
    motion: str
    # The previous utterance of the same conversation ("" for the first).
    previous: str


@dataclasses.dataclass
class Answer:
    speech: str = ""
    motion: str = ""
    first_sentence_s: float = 0.0
    total_s: float = 0.0
    prompt_tokens: int = 0
    said_clip: str = ""
    turn_clip: str = ""
    # The transcript's own clip played (the rule chose it over the reply's motion).
    asked_won: bool = False


def _characters_without_examples(directory: Path) -> Path:
    """A characters file that redefines every built-in character without its examples."""
    path = directory / "characters-without-examples.json"
    entries = [
        {
            "name": c.name,
            "prompt": c.agent_prompt,
            "solami_prompt": c.solami_prompt,
            "description": c.description,
        }
        for c in CharacterBook().characters
    ]
    path.write_text(json.dumps(entries))
    return path


def load_conversations(path: Path = CONVERSATIONS) -> list[list[Utterance]]:
    """The benchmark's conversations; a turn's ``text_file`` names a file beside ``path``."""
    conversations = []
    for number, line in enumerate(path.read_text("utf-8").splitlines()):
        entry = json.loads(line)
        turns, previous = [], ""
        for turn in entry["turns"]:
            text = turn.get("text") or (path.parent / turn["text_file"]).read_text("utf-8")
            text = " ".join(text.split())
            turns.append(
                Utterance(
                    number, entry["character"], turn["kind"], text, turn.get("motion", ""), previous
                )
            )
            previous = text
        conversations.append(turns)
    return conversations


async def _generate(client: LlmClient, turn, utterance: Utterance, history: list[Message]):
    answer = Answer()
    started = time.perf_counter()
    user = Message("user", text=utterance.text)
    async for event in client.generate(turn, utterance.character, METHOD, history, user):
        if isinstance(event, Sentence) and not answer.first_sentence_s:
            answer.first_sentence_s = time.perf_counter() - started
        elif isinstance(event, Reply):
            answer.speech, answer.motion = event.message.text, event.message.motion
            answer.prompt_tokens = event.prompt_tokens
    answer.total_s = time.perf_counter() - started
    return answer


async def _motion(motion: MotionClient, turn, utterance: Utterance, answer: Answer) -> None:
    """The clip of the reply's motion text and the clip the turn plays (as ``_start_motion``)."""
    seconds = max(MIN_MOTION_S, len(answer.speech.split()) * SECONDS_PER_WORD)
    said = await motion.text_to_motion(turn, answer.motion or DEFAULT_MOTION, seconds)
    asked = None
    if reads_as_request(utterance.text):
        asked = await motion.text_to_motion(turn, utterance.text, seconds)
    played = pick_motion(asked, said)
    answer.said_clip = said.source if said is not None else ""
    answer.turn_clip = played.source if played is not None else ""
    answer.asked_won = played is not None and played is asked


async def _converse(
    addresses: dict[str, str], motion_address: str, conversations: list[list[Utterance]]
) -> dict[str, list[Answer]]:
    metrics = RelayMetrics()
    channels = {name: grpc.aio.insecure_channel(address) for name, address in addresses.items()}
    motion_channel = grpc.aio.insecure_channel(motion_address)
    clients = {
        name: LlmClient(llm_pb2_grpc.LlmServiceStub(channel), DEADLINE_S, metrics)
        for name, channel in channels.items()
    }
    motion = MotionClient(motion_pb2_grpc.MotionServiceStub(motion_channel), DEADLINE_S, metrics)
    names = list(addresses)
    answers: dict[str, list[Answer]] = {name: [] for name in names}
    step = 0
    try:
        for number, conversation in enumerate(conversations):
            history: dict[str, list[Message]] = {name: [] for name in names}
            for index, utterance in enumerate(conversation):
                turn = common_pb2.TurnContext(session_id=f"c{number}", turn_id=f"t{index}")
                step += 1
                for name in names[step % len(names) :] + names[: step % len(names)]:
                    answer = await _generate(clients[name], turn, utterance, history[name])
                    await _motion(motion, turn, utterance, answer)
                    answers[name].append(answer)
                    history[name] += [
                        Message("user", text=utterance.text),
                        Message("character", text=answer.speech, motion=answer.motion),
                    ]
    finally:
        for channel in (*channels.values(), motion_channel):
            await channel.close()
    return answers


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def copies(reply: str, utterance: str) -> bool:
    """Whether ``reply`` repeats the utterance rather than answering it."""
    a, b = _words(reply), _words(utterance)
    return bool(a) and len(a & b) / len(a | b) >= COPY_JACCARD


def echoes_prompt(reply: str, system_prompt: str) -> bool:
    """Whether ``reply`` repeats a run of ``ECHO_WORDS`` words of the system prompt, or one of
    the format prompt's placeholders."""
    low = reply.lower()
    if any(marker in low for marker in PROMPT_MARKERS):
        return True
    said = " " + " ".join(re.findall(r"[a-z0-9']+", low)) + " "
    words = re.findall(r"[a-z0-9']+", system_prompt.lower())
    runs = (" " + " ".join(words[i : i + ECHO_WORDS]) + " " for i in range(len(words)))
    return any(run in said for run in runs if run.count(" ") > ECHO_WORDS)


def margins(replies: np.ndarray, targets: np.ndarray, valid: list[bool]) -> list[float]:
    """Per row: cosine to its own target less the mean cosine to the others' (0 where not
    ``valid``)."""
    similarity = replies @ targets.T
    n = len(similarity)
    out = []
    for i in range(n):
        others = (similarity[i].sum() - similarity[i, i]) / max(1, n - 1)
        out.append(float(similarity[i, i] - others) if valid[i] else 0.0)
    return out


def _quality(
    utterances: list[Utterance], answers: list[Answer], embedder: TextEmbedder, variant: dict
) -> dict:
    book = CharacterBook()
    style = AgentPromptStyle(variant.get("agent_prompt", "original"), LIBRARY_PHRASES)
    good = [i for i, u in enumerate(utterances) if u.kind not in BAD_KINDS]
    follow = [i for i, u in enumerate(utterances) if u.kind == "followup"]
    asks = [i for i, u in enumerate(utterances) if u.motion]
    bad = [i for i, u in enumerate(utterances) if u.kind in BAD_KINDS]

    def embed(texts: list[str]) -> np.ndarray:
        return embedder.embed([t or "." for t in texts])

    def answered(i: int) -> bool:
        return bool(answers[i].speech) and not copies(answers[i].speech, utterances[i].text)

    relevance = margins(
        embed([answers[i].speech for i in good]),
        embed([utterances[i].text for i in good]),
        [answered(i) for i in good],
    )
    coherence = margins(
        embed([answers[i].speech for i in follow]),
        embed([utterances[i].previous for i in follow]),
        [answered(i) for i in follow],
    )
    by_character: dict[str, list[float]] = {}
    for i, value in zip(good, relevance, strict=True):
        by_character.setdefault(utterances[i].character, []).append(value)

    def broken(i: int) -> bool:
        return not (answers[i].speech and answers[i].motion)

    def echo(i: int) -> bool:
        character = book.get(utterances[i].character)
        return echoes_prompt(answers[i].speech, agent_system_prompt(character, True, style))

    return {
        "format_valid": 1 - sum(map(broken, range(len(answers)))) / len(answers),
        "motion_llm": sum(answers[i].said_clip == utterances[i].motion for i in asks)
        / max(1, len(asks)),
        "motion_turn": sum(answers[i].turn_clip == utterances[i].motion for i in asks)
        / max(1, len(asks)),
        "relevance": statistics.mean(relevance),
        "followup_coherence": statistics.mean(coherence),
        "words_per_reply": statistics.mean(len(a.speech.split()) for a in answers),
        "copies": sum(copies(a.speech, u.text) for a, u in zip(answers, utterances, strict=True)),
        "asked_clip_unasked": sum(
            a.asked_won for a, u in zip(answers, utterances, strict=True) if not u.motion
        ),
        "first_sentence_p50_s": statistics.median(
            a.first_sentence_s for a in answers if a.first_sentence_s
        ),
        "whole_reply_p50_s": statistics.median(a.total_s for a in answers),
        "no_sentence": sum(not a.first_sentence_s for a in answers),
        "bad_input_broken": sum(map(broken, bad)),
        "bad_input_echo": sum(map(echo, bad)),
        "echo_all": sum(map(echo, range(len(answers)))),
        "relevance_by_character": {c: statistics.mean(v) for c, v in by_character.items()},
        "counts": {"turns": len(answers), "asks": len(asks), "bad": len(bad)},
    }


def _rows(names: list[str], quality: dict[str, dict]) -> list[tuple[str, str]]:
    base = quality[names[0]]

    def cell(name: str, key: str, fmt: str) -> str:
        """The value and its ratio to the default's (the difference where the default's is
        not above 0: a ratio to nothing or to a negative margin says nothing)."""
        value, ref = quality[name][key], base[key]
        if name == names[0]:
            return f"{value:{fmt}}"
        if ref > 0:
            return f"{value:{fmt}} ({value / ref:.2f}x)"
        return f"{value:{fmt}} ({value - ref:+{fmt}})"

    counts = base["counts"]
    rows = [("variant", " | ".join(names))]
    for label, key, fmt in (
        ("format valid (speech and motion)", "format_valid", ".2f"),
        (f"motion requests ({counts['asks']}): reply's clip right", "motion_llm", ".2f"),
        ("motion requests: turn's clip right (with the rule)", "motion_turn", ".2f"),
        ("relevance margin (MiniLM)", "relevance", ".3f"),
        ("follow-up coherence margin", "followup_coherence", ".3f"),
        ("words per reply", "words_per_reply", ".1f"),
        ("first sentence p50, s", "first_sentence_p50_s", ".3f"),
        ("whole reply p50, s (the body motion waits for it)", "whole_reply_p50_s", ".3f"),
    ):
        rows.append((label, " | ".join(cell(name, key, fmt) for name in names)))
    for label, key in (
        ("replies copying the utterance", "copies"),
        ("replies without a sentence", "no_sentence"),
        (
            f"other turns ({counts['turns'] - counts['asks']}): transcript's clip played",
            "asked_clip_unasked",
        ),
        (f"bad input ({counts['bad']}): broken format", "bad_input_broken"),
        ("bad input: system prompt echoed", "bad_input_echo"),
        (f"all {counts['turns']} turns: system prompt echoed", "echo_all"),
    ):
        rows.append((label, " | ".join(str(quality[name][key]) for name in names)))
    return rows


def main(conversations_limit: int | None = None) -> None:
    conversations = load_conversations()[:conversations_limit]
    utterances = [u for conversation in conversations for u in conversation]
    variants = VARIANTS
    embedder = TextEmbedder()
    embedder.load()
    motion_settings = dataclasses.replace(
        MotionSettings(), host="127.0.0.1", port=0, metrics_port=-1
    )
    motion_server = InProcessServer(
        MOTION, motion_settings, MotionEngine(motion_settings, embedder)
    ).start()
    servers: dict[str, InProcessServer] = {}
    tmp = Path(tempfile.mkdtemp(prefix="solami-bench-dialogue-"))
    try:
        for name, overrides in variants.items():
            if overrides.get("characters_file") == "without-examples":
                overrides = {**overrides, "characters_file": _characters_without_examples(tmp)}
            settings = dataclasses.replace(
                LlmSettings(), host="127.0.0.1", port=0, metrics_port=-1, **overrides
            )
            servers[name] = InProcessServer(LLM, settings, LlmEngine(settings)).start()
        addresses = {name: server.address for name, server in servers.items()}
        load_before = os.getloadavg()
        started = time.perf_counter()
        answers = asyncio.run(_converse(addresses, motion_server.address, conversations))
        elapsed = time.perf_counter() - started
    finally:
        for server in servers.values():
            server.stop()
        motion_server.stop()
    quality = {
        name: _quality(utterances, answers[name], embedder, variants[name]) for name in variants
    }
    names = list(variants)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_after = os.getloadavg()
    load = " / ".join(f"{a:.1f}-{b:.1f}" for a, b in zip(load_before, load_after, strict=True))
    rows = [
        ("date; load average 1/5/15 min (start-end)", f"{date}; {load}"),
        ("turns per variant; minutes", f"{len(utterances)}; {elapsed / 60:.1f}"),
        *_rows(names, quality),
    ]
    report(
        "dialogue",
        rows,
        {
            "date": date,
            "load_average_start": load_before,
            "load_average_end": load_after,
            "seconds": elapsed,
            "variants": {name: {k: str(v) for k, v in variants[name].items()} for name in names},
            "quality": quality,
            "replies": {
                name: [
                    {"kind": u.kind, "user": u.text[:200], **dataclasses.asdict(a)}
                    for u, a in zip(utterances, answers[name], strict=True)
                ]
                for name in names
            },
        },
    )


if __name__ == "__main__":
    main()
