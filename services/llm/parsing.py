"""Parsing model output: SOLAMI token replies and the agent methods' tagged text, streaming.

Agent replies are cleaned like the original server (non-ASCII such as emoji and
``*stage directions*`` removed, and markup such as tags or a tag cut off at the end of the
reply) and capped like its ``shorten_text_response`` (at most ``MAX_WORDS`` words in at most
``MAX_SENTENCES`` sentences, but a longer first sentence is kept whole);
sentences are released as soon as they are complete so speech-out can start on the first one.
Text with nothing to say (no letter or digit) is not a sentence.
"""

from __future__ import annotations

import dataclasses
import re

from services.llm import vocabulary as v
from services.llm.prompt import Tokens

MAX_WORDS = 20
MAX_SENTENCES = 3
# Characters seen without a tag before untagged output is taken as plain speech.
UNTAGGED_AFTER_CHARS = 12

# Sentences end at . ! or ? followed by space, as in the original server's
# ``shorten_text_response`` (``re.split(r'(?<=[.!?]) +', ...)``); a quote after the mark does not
# end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STAGE_DIRECTION = re.compile(r"\*[^*]*\*|\*[^*]*$")
_NON_ASCII = re.compile(r"[^\x00-\x7F]+")
# Whole tags (<speech>, </s>, <|im_end|>) and a tag cut off at the end (</spe).
_MARKUP = re.compile(r"<[^<>\s]*>|<[^<>\s]*$")
_SPEAKABLE = re.compile(r"[A-Za-z0-9]")


def _between(text: str, open_tag: str, close_tag: str) -> str | None:
    start = text.find(open_tag)
    if start < 0:
        return None
    start += len(open_tag)
    end = text.find(close_tag, start)
    return text[start:] if end < 0 else text[start:end]


def parse_solami(text: str) -> Tokens:
    """Speech, body and hand ids of a SOLAMI reply; body and hand cut to equal length.

    A missing end tag (a reply cut by the token limit) keeps the ids up to the end."""
    speech = _between(text, v.SPEECH_OPEN, v.SPEECH_CLOSE) or ""
    body = _between(text, v.BODY_OPEN, v.BODY_CLOSE) or ""
    hand = _between(text, v.HAND_OPEN, v.HAND_CLOSE) or ""
    speech_ids = [int(i) for i in v.SPEECH_ID.findall(speech) if int(i) < v.SPEECH_VOCAB]
    body_ids = [int(i) for i in v.BODY_ID.findall(body) if int(i) < v.BODY_VOCAB]
    hand_ids = [int(i) for i in v.HAND_ID.findall(hand) if int(i) < v.HAND_VOCAB]
    length = min(len(body_ids), len(hand_ids))
    return Tokens(tuple(speech_ids), tuple(body_ids[:length]), tuple(hand_ids[:length]))


def clean_speech(text: str) -> str:
    """Speakable text: no emoji/non-ASCII, no stage directions, no markup, tidy spaces."""
    text = _NON_ASCII.sub("", text)
    text = _STAGE_DIRECTION.sub("", text)
    text = _MARKUP.sub(" ", text).replace("<", " ").replace(">", " ")
    return re.sub(r"\s+", " ", text).strip()


@dataclasses.dataclass
class AgentReply:
    """What the agent reply parser has found so far."""

    sentences: list[str] = dataclasses.field(default_factory=list)
    motion: str = ""

    @property
    def speech(self) -> str:
        return " ".join(self.sentences)


class AgentReplyParser:
    """Feeds on raw text deltas; yields complete, cleaned, capped speech sentences."""

    def __init__(self, with_motion: bool) -> None:
        self._with_motion = with_motion
        self._raw = ""
        self._consumed = 0  # speech characters already split into sentences
        self._words = 0
        self._full = False
        # Set once untagged text has been released as speech: the reply stays untagged then,
        # so a <speech> tag coming later does not restart the speech text.
        self._untagged = False
        self.reply = AgentReply()

    @property
    def full(self) -> bool:
        """True once the reply has reached its sentence or word cap."""
        return self._full

    def feed(self, delta: str) -> list[str]:
        """New complete sentences after ``delta``."""
        self._raw += delta
        return self._take(final=False)

    def finish(self) -> list[str]:
        """The last sentences once generation has ended; fills in the motion."""
        sentences = self._take(final=True)
        if self._with_motion:
            # Only a closed <motion>…</motion>, as the original's
            # ``clean_speech_motion_text_response``: a motion cut off is no motion.
            found = re.search(r"<motion>(.*?)</motion>", self._raw, re.DOTALL)
            self.reply.motion = clean_speech(found.group(1)) if found else ""
        return sentences

    def _speech_text(self, final: bool) -> tuple[str, bool]:
        """(speech text so far, whether it is complete)."""
        raw = self._raw
        start = -1 if self._untagged else raw.find("<speech>")
        if start >= 0:
            body = raw[start + len("<speech>") :]
            end = body.find("</speech>")
            if end >= 0:
                return body[:end], True
            partial_tag = body.rfind("<")
            if not final and partial_tag >= 0 and "</speech>".startswith(body[partial_tag:]):
                body = body[:partial_tag]
            return body, final
        stripped = raw.lstrip()
        if stripped.startswith("<") and not final and len(stripped) < len("<speech>"):
            return "", False
        if final or self._untagged or len(stripped) >= UNTAGGED_AFTER_CHARS:
            motion_at = raw.find("<motion>")
            text = raw if motion_at < 0 else raw[:motion_at]
            return text, final or motion_at >= 0
        return "", False

    def _take(self, final: bool) -> list[str]:
        if self._full:
            return []
        tagged = not self._untagged and "<speech>" in self._raw
        text, complete = self._speech_text(final)
        pending = text[self._consumed :]
        pieces: list[str] = []
        position = 0
        for match in _SENTENCE_END.finditer(pending):
            pieces.append(pending[position : match.start()])
            position = match.end()
        if complete:
            pieces.append(pending[position:])
            position = len(pending)
        self._consumed += position
        if position and not tagged:
            self._untagged = True
        released = []
        for piece in pieces:
            sentence = clean_speech(piece)
            if not _SPEAKABLE.search(sentence):
                continue
            words = len(sentence.split())
            if self.reply.sentences and self._words + words > MAX_WORDS:
                self._full = True
                break
            self.reply.sentences.append(sentence)
            released.append(sentence)
            self._words += words
            if len(self.reply.sentences) >= MAX_SENTENCES or self._words >= MAX_WORDS:
                self._full = True
                break
        return released
