"""Prompt-side operations on a Hugging Face tokenizer, shared by the backends that load one
(transformers, vLLM), and the SOLAMI checkpoint's slow LlamaTokenizer.

The original SOLAMI trains and serves with transformers' slow, sentencepiece ``LlamaTokenizer``
(vLLM ``tokenizer_mode='slow'``, training ``use_fast=False``); its 2 304 added tokens are plain
``add_tokens`` (not special). The fast tokenizer converted from the same files splits the text
between added tokens differently (transformers 4.x: the legacy fast tokenizer does not even
match most added tokens after the first), so a SOLAMI prompt must be encoded the slow way.
transformers 5 has no slow ``LlamaTokenizer`` any more, so ``SlowLlamaEncoder`` reproduces
its encoding from the checkpoint's files: the text is split at added tokens (leftmost, longest
first), each piece between them goes to sentencepiece on its own, with the checkpoint's
``legacy`` rule for the leading ``▁`` and its ``add_bos_token``. Decoding stays with the
tokenizer the backend loads (same ids either way).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from services.llm.vocabulary import SPEECH_OPEN
from solami.errors import EngineUnavailable

# The sentencepiece model of a LLaMA checkpoint; the slow tokenizer needs it.
SENTENCEPIECE_MODEL = "tokenizer.model"
_UNDERLINE = "\u2581"


class HfTokenizerPrompts:
    """Mixin: token counting, chat template and SOLAMI vocabulary check via ``_tokenizer``;
    prompt ids via ``_slow`` when the checkpoint holds the SOLAMI vocabulary."""

    _tokenizer: object
    _slow: SlowLlamaEncoder | None = None

    def _load_slow_if_solami(self, path: Path) -> None:
        """Loads the slow encoder when the model is a SOLAMI checkpoint (agent models keep their
        fast tokenizer)."""
        self._slow = SlowLlamaEncoder.load(path) if self.supports_solami else None

    @property
    def supports_solami(self) -> bool:
        return SPEECH_OPEN in self._tokenizer.get_vocab()

    def prompt_ids(self, text: str) -> list[int]:
        """The ids the model sees for ``text`` (with BOS), as in training."""
        if self._slow is not None:
            return self._slow.encode(text)
        return list(self._tokenizer(text).input_ids)

    def count_tokens(self, text: str) -> int:
        return len(self.prompt_ids(text))

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        if not self._tokenizer.chat_template:
            raise EngineUnavailable("this model has no chat template for the agent methods")
        return self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )


@dataclasses.dataclass(frozen=True)
class _AddedToken:
    id: int
    # Whitespace on that side of the token is dropped before encoding.
    lstrip: bool = False
    rstrip: bool = False


class SlowLlamaEncoder:
    """Text to ids exactly as transformers' slow ``LlamaTokenizer`` encodes it."""

    def __init__(
        self,
        model_file: Path,
        added: dict[str, _AddedToken],
        legacy: bool = True,
        add_bos: bool = True,
        add_eos: bool = False,
        add_prefix_space: bool = True,
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        unk_token: str = "<unk>",
    ) -> None:
        try:
            import sentencepiece as spm
        except ImportError as exc:  # pragma: no cover - part of the llm extra
            raise EngineUnavailable(
                "the SOLAMI tokenizer needs the sentencepiece package (pip install '.[llm]')"
            ) from exc
        self.legacy = legacy
        self._sp = spm.SentencePieceProcessor()
        proto = Path(model_file).read_bytes()
        if not legacy:
            proto = _without_dummy_prefix(proto)
        self._sp.LoadFromSerializedProto(proto)
        self._added = dict(added)
        for token in (unk_token, bos_token, eos_token):
            index = self._sp.piece_to_id(token)
            if token not in self._added and self._sp.id_to_piece(index) == token:
                self._added[token] = _AddedToken(index)
        self._split = re.compile(
            "|".join(map(re.escape, sorted(self._added, key=len, reverse=True))) or r"(?!)"
        )
        self._add_bos, self._add_eos = add_bos, add_eos
        self._add_prefix_space = add_prefix_space
        self._unk_token = unk_token
        self._special_tokens = (unk_token, bos_token, eos_token)
        self._unk_pieces = len(self._sp.encode(unk_token, out_type=str))
        self.bos_token_id = self._id(bos_token)
        self.eos_token_id = self._id(eos_token)

    @classmethod
    def load(cls, path: Path) -> SlowLlamaEncoder:
        """From a checkpoint directory as ``save_pretrained`` writes it: ``tokenizer.model``,
        ``tokenizer_config.json`` (``added_tokens_decoder``, ``legacy``, ``add_bos_token``) and
        the older ``added_tokens.json``."""
        path = Path(path)
        model_file = path / SENTENCEPIECE_MODEL
        if not model_file.is_file():
            raise EngineUnavailable(
                f"the SOLAMI method needs the slow LlamaTokenizer, but {model_file} is missing "
                "(copy tokenizer.model from the checkpoint the model was trained with)"
            )
        config = _read_json(path / "tokenizer_config.json")
        added: dict[str, _AddedToken] = {
            content: _AddedToken(int(index))
            for content, index in _read_json(path / "added_tokens.json").items()
        }
        for index, token in config.get("added_tokens_decoder", {}).items():
            added[token["content"]] = _AddedToken(
                int(index), bool(token.get("lstrip")), bool(token.get("rstrip"))
            )
        return cls(
            model_file,
            added,
            # The slow LlamaTokenizer's default when a checkpoint does not say.
            legacy=config.get("legacy") is not False,
            add_bos=config.get("add_bos_token", True),
            add_eos=config.get("add_eos_token", False),
            add_prefix_space=config.get("add_prefix_space") is not False,
            bos_token=_content(config.get("bos_token"), "<s>"),
            eos_token=_content(config.get("eos_token"), "</s>"),
            unk_token=_content(config.get("unk_token"), "<unk>"),
        )

    def tokenize(self, text: str) -> list[str]:
        """The pieces of ``text`` (no BOS), as the slow tokenizer's ``tokenize``."""
        if not self.legacy and text:
            text = text.replace(_UNDERLINE, " ")
            if self._add_prefix_space:
                text = _UNDERLINE + text
        parts = self._split_added(text)
        pieces: list[str] = []
        for part in parts:
            if not part:
                continue
            if part in self._added:
                pieces.append(part)
            else:
                pieces.extend(self._encode_piece(part))
        if (
            not self.legacy
            and len(pieces) > 1
            and pieces[0] == _UNDERLINE
            and pieces[1] in self._special_tokens
        ):
            pieces = pieces[1:]
        return pieces

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [self._id(piece) for piece in self.tokenize(text)]
        if add_special_tokens:
            ids = [self.bos_token_id] * self._add_bos + ids + [self.eos_token_id] * self._add_eos
        return ids

    def _id(self, piece: str) -> int:
        token = self._added.get(piece)
        return token.id if token is not None else self._sp.piece_to_id(piece)

    def _split_added(self, text: str) -> list[str]:
        """Added tokens and the text between them, with the tokens' lstrip/rstrip applied."""
        parts: list[str] = []
        start = 0
        for match in self._split.finditer(text):
            parts += [text[start : match.start()], match.group()]
            start = match.end()
        parts.append(text[start:])
        for i in range(1, len(parts), 2):
            token = self._added[parts[i]]
            if token.rstrip and parts[i + 1]:
                parts[i + 1] = parts[i + 1].lstrip()
            if token.lstrip and parts[i - 1]:
                parts[i - 1] = parts[i - 1].rstrip()
        return parts

    def _encode_piece(self, text: str) -> list[str]:
        if self.legacy or not text.startswith((_UNDERLINE, " ")):
            return self._sp.encode(text, out_type=str)
        # Without the dummy prefix sentencepiece drops a leading ▁; the slow tokenizer encodes
        # behind its unk token and cuts that off.
        pieces = self._sp.encode(self._unk_token + text, out_type=str)
        return pieces[self._unk_pieces :] if len(pieces) >= self._unk_pieces else pieces


def _without_dummy_prefix(proto: bytes) -> bytes:
    """The sentencepiece model with ``add_dummy_prefix`` off (the non-legacy slow tokenizer)."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    model.normalizer_spec.add_dummy_prefix = False
    return model.SerializeToString()


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _content(token: object, default: str) -> str:
    if isinstance(token, dict):
        return str(token.get("content", default))
    return str(token) if token else default
