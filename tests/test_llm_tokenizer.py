"""The SOLAMI LLM tokenizer: prompts are encoded as the original's slow LlamaTokenizer encodes
them (training ``use_fast=False``, serving vLLM ``tokenizer_mode='slow'``), not by the fast
tokenizer converted from the same files.

Golden ids in ``tests/fixtures/solami_tokenizer`` come from transformers 4.x's slow
LlamaTokenizer on a tiny sentencepiece model (see its README); the other tests train their own
tiny sentencepiece model."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("sentencepiece")

from services.llm.backends.hf_tokenizer import (
    SENTENCEPIECE_MODEL,
    HfTokenizerPrompts,
    SlowLlamaEncoder,
)
from services.llm.backends.transformers import TransformersGenerator
from services.llm.characters import CharacterBook
from services.llm.prompt import Tokens, Turn, build_solami_prompt, solami_prompt_budget
from services.llm.settings import LlmSettings
from solami.errors import EngineUnavailable
from tests.support.tiny_solami import save_solami_tokenizer, save_tiny_solami

FIXTURE = Path(__file__).parent / "fixtures" / "solami_tokenizer"
GOLDEN = json.loads((FIXTURE / "ids.json").read_text(encoding="utf-8"))
MODES = ("legacy", "non_legacy")
BOOK = CharacterBook()


def _with_legacy(source: Path, target: Path, legacy: bool) -> Path:
    """A copy of a tokenizer directory with its ``legacy`` flag set."""
    shutil.copytree(source, target)
    config_file = target / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["legacy"] = legacy
    config_file.write_text(json.dumps(config), encoding="utf-8")
    return target


@pytest.fixture(scope="module", params=MODES)
def fixture_dir(request, tmp_path_factory) -> tuple[str, Path]:
    """The golden checkpoint tokenizer, with the checkpoint's ``legacy`` flag on or off."""
    target = tmp_path_factory.mktemp("fixture") / "tokenizer"
    return request.param, _with_legacy(FIXTURE, target, request.param == "legacy")


def _turn(message: dict) -> Turn:
    role = message["role"]
    tokens = Tokens(
        tuple(message["speech"]),
        tuple(message["body"]),
        tuple(message["hand"]),
        message.get("trans"),
    )
    return Turn(role, tokens=tokens)


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[c["name"] for c in GOLDEN["cases"]])
def test_prompt_ids_and_truncation_reproduce_the_original(case, fixture_dir):
    mode, directory = fixture_dir
    slow = SlowLlamaEncoder.load(directory)
    *history, user = map(_turn, case["messages"])
    budget = solami_prompt_budget(GOLDEN["limit_tokens"])
    assert budget == GOLDEN["limit_tokens"] - GOLDEN["reply_tokens"] == 1448

    prompt, length, dropped = build_solami_prompt(
        BOOK.get(case["character"]), history, user, lambda t: len(slow.encode(t)), budget
    )

    assert prompt == case["prompt"]
    assert dropped == case["dropped"][mode]
    assert slow.encode(prompt) == case["ids"][mode]
    assert length == len(case["ids"][mode])


def test_the_truncated_case_drops_history(fixture_dir):
    mode, _ = fixture_dir
    truncated = next(c for c in GOLDEN["cases"] if c["name"] == "truncated")
    assert truncated["dropped"][mode] == 8
    assert len(truncated["messages"]) == 17


def test_spaces_next_to_added_tokens_encode_as_the_slow_tokenizer(fixture_dir):
    mode, directory = fixture_dir
    slow = SlowLlamaEncoder.load(directory)
    for text, ids in zip(GOLDEN["strings"]["strings"], GOLDEN["strings"]["ids"][mode], strict=True):
        assert slow.encode(text) == ids, text


def test_the_fast_tokenizer_of_transformers_4_splits_solami_prompts_differently():
    """Recorded with transformers 4.x: the legacy fast tokenizer converted from the checkpoint
    matches few of the added tokens, so a prompt is several times longer and the original's
    truncation can never fit the user's turn; with ``legacy: false`` they agree here."""
    short = next(c for c in GOLDEN["cases"] if c["name"] == "short")
    assert len(short["ids"]["legacy"]) == 115
    assert short["fast_tokens"]["legacy"] == len(short["fast_ids"]["legacy"]) == 342
    typical = next(c for c in GOLDEN["cases"] if c["name"] == "typical")
    assert len(typical["ids"]["legacy"]) == 740 and typical["dropped"]["legacy"] == 0
    assert typical["fast_tokens"]["legacy"] == 7432
    assert typical["fast_dropped"]["legacy"] is None  # too long even alone
    for case in GOLDEN["cases"]:
        assert case["fast_tokens"]["non_legacy"] == len(case["ids"]["non_legacy"])
    # The slow tokenizer (legacy) gives each text between added tokens its own leading "▁".
    assert short["ids"]["legacy"] != short["ids"]["non_legacy"]


def test_the_installed_fast_tokenizer_differs_on_spaces_next_to_added_tokens(fixture_dir):
    """transformers 5's (fast-only) LlamaTokenizer agrees with the slow one on the rendered
    prompts above, but not on a space between two added tokens (legacy: slow ``▁▁``, fast
    ``▁``) or a prompt that starts with one (non-legacy: slow keeps a leading ``▁``)."""
    from transformers import AutoTokenizer

    mode, directory = fixture_dir
    fast = AutoTokenizer.from_pretrained(directory)
    strings = GOLDEN["strings"]
    differs = [
        text
        for text, ids in zip(strings["strings"], strings["ids"][mode], strict=True)
        if fast(text).input_ids != ids
    ]
    expected = {
        "legacy": "Hi.\n[Human]: <sobo> <eobo><eoh>\n[MMGPT]:",
        "non_legacy": "<sobo><eobo><eoh>\n[MMGPT]:",
    }[mode]
    assert expected in differs


# --- a tiny SOLAMI checkpoint tokenizer trained here ------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_solami(tmp_path_factory.mktemp("tiny-solami"))


def _transformers_backend(model_dir: Path) -> TransformersGenerator:
    settings = dataclasses.replace(LlmSettings(), backend="transformers", model=str(model_dir))
    backend = TransformersGenerator(settings)
    backend.load()
    return backend


def _conversation(turns: int, units: int) -> tuple[list[Turn], Turn]:
    def turn(role: str, i: int) -> Turn:
        speech = tuple((7 * i + k) % 1024 for k in range(units))
        body = tuple((3 * i + k) % 512 for k in range(units // 4))
        return Turn(role, tokens=Tokens(speech, body, body, i % 256 if role == "user" else None))

    messages = [turn("user" if i % 2 == 0 else "character", i) for i in range(2 * turns - 1)]
    return messages[:-1], messages[-1]


def test_a_trained_solami_tokenizer_is_written_as_the_original_left_it(tmp_path):
    directory = save_solami_tokenizer(tmp_path / "tok")
    assert (directory / SENTENCEPIECE_MODEL).is_file()
    added = json.loads((directory / "added_tokens.json").read_text(encoding="utf-8"))
    assert len(added) == 4 + 1024 + 2 + 512 + 2 + 512 + 2 + 256
    first = min(added.values())
    assert added["[Human]"] == first and added["<🗣️0>"] == first + 4
    slow = SlowLlamaEncoder.load(directory)
    assert slow.legacy
    assert slow.encode("[Human]: <sosp><🗣️7><eosp><eoh>", add_special_tokens=False)[-4:] == [
        added["<sosp>"],
        added["<🗣️7>"],
        added["<eosp>"],
        added["<eoh>"],
    ]


def test_the_transformers_backend_encodes_solami_prompts_slow(tiny_model):
    backend = _transformers_backend(tiny_model)
    slow = SlowLlamaEncoder.load(tiny_model)
    history, user = _conversation(12, 60)
    character = BOOK.get("Samantha")

    prompt, length, dropped = build_solami_prompt(
        character, history, user, backend.count_tokens, 1448
    )

    assert dropped > 0  # the history is long enough to be truncated
    expected = build_solami_prompt(character, history, user, lambda t: len(slow.encode(t)), 1448)
    assert (prompt, length, dropped) == expected
    assert backend.prompt_ids(prompt) == slow.encode(prompt)
    assert backend.prompt_ids(prompt)[0] == slow.bos_token_id
    # Where the fast tokenizer parts from the slow one, the backend follows the slow one.
    spaced = prompt.replace("<eobo><soha>", "<eobo> <soha>")
    assert backend.prompt_ids(spaced) == slow.encode(spaced)
    assert backend.prompt_ids(spaced) != backend._tokenizer(spaced).input_ids


def test_a_solami_checkpoint_without_the_sentencepiece_model_does_not_start(tmp_path):
    from transformers import AutoTokenizer

    model_dir = save_tiny_solami(tmp_path / "model")
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(model_dir)  # tokenizer.json
    (model_dir / SENTENCEPIECE_MODEL).unlink(missing_ok=True)
    assert not (model_dir / SENTENCEPIECE_MODEL).exists()

    with pytest.raises(EngineUnavailable, match=r"tokenizer\.model"):
        _transformers_backend(model_dir)


def test_agent_models_keep_their_fast_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.train_from_iterator(
        ["hello there, how are you?"] * 5,
        trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>", "<s>", "</s>"]),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(tmp_path)  # no tokenizer.model

    class Prompts(HfTokenizerPrompts):
        def __init__(self) -> None:
            self._tokenizer = fast
            self._load_slow_if_solami(tmp_path)

    prompts = Prompts()
    assert not prompts.supports_solami
    assert prompts.prompt_ids("hello there") == fast("hello there").input_ids
