"""A tiny LLaMA with the full SOLAMI vocabulary and random weights, saved in the Hugging Face
layout (config.json, model.safetensors, tokenizer files) like a real SOLAMI checkpoint."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

from services.llm.backends.hf_tokenizer import SENTENCEPIECE_MODEL, SlowLlamaEncoder
from services.llm.characters import CharacterBook
from services.llm.vocabulary import (
    BODY_CLOSE,
    BODY_OPEN,
    BODY_VOCAB,
    CHARACTER_END,
    CHARACTER_ROLE,
    HAND_CLOSE,
    HAND_OPEN,
    HAND_VOCAB,
    SPEECH_CLOSE,
    SPEECH_OPEN,
    SPEECH_VOCAB,
    TRANS_VOCAB,
    USER_END,
    USER_ROLE,
    added_tokens,
    body_token,
    hand_token,
    speech_token,
    trans_token,
)

# LM head scale of a scripted model: the next reply token's logit leads the others by tens.
SCRIPT_LOGIT_SCALE = 8.0

_CORPUS = [c.solami_prompt for c in CharacterBook().characters] + [
    "Hello, how are you? I am fine. Let us dance together and wave hello.",
    "[Human]: [MMGPT]: <eoh> <eos>",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and marks : ; , . ! ? ' ( ) [ ] < > - _",
]
# Pieces of the sentencepiece model, its 256 byte pieces included (the real LLaMA has 32 000).
_BASE_VOCAB = 600
_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<unk>",
}


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_solami_tokenizer(model_dir: Path, legacy: bool = True) -> Path:
    """Writes a SOLAMI checkpoint's tokenizer as the original's training left it: a LLaMA-style
    sentencepiece model (BPE, byte fallback, split digits, dummy prefix) trained here on a tiny
    corpus, the SOLAMI tokens added with plain ``add_tokens`` (roles first, then each modality's
    codes and brackets) and the slow LlamaTokenizer's files (``tokenizer.model``,
    ``added_tokens.json``, ``tokenizer_config.json``). ``legacy`` is the checkpoint's flag."""
    import sentencepiece as spm

    model_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS * 10),
        model_writer=model,
        model_type="bpe",
        vocab_size=_BASE_VOCAB,
        hard_vocab_limit=False,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    (model_dir / SENTENCEPIECE_MODEL).write_bytes(model.getvalue())
    base = spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size()
    added = [USER_ROLE, CHARACTER_ROLE, USER_END, CHARACTER_END]
    for codes, brackets in (
        ([speech_token(i) for i in range(SPEECH_VOCAB)], [SPEECH_OPEN, SPEECH_CLOSE]),
        ([body_token(i) for i in range(BODY_VOCAB)], [BODY_OPEN, BODY_CLOSE]),
        ([hand_token(i) for i in range(HAND_VOCAB)], [HAND_OPEN, HAND_CLOSE]),
        ([trans_token(i) for i in range(TRANS_VOCAB)], []),
    ):
        added += codes + brackets
    assert sorted(added) == sorted(added_tokens())
    _write_json(model_dir / "added_tokens.json", {t: base + i for i, t in enumerate(added)})
    _write_json(model_dir / "special_tokens_map.json", _SPECIAL_TOKENS)
    _write_json(
        model_dir / "tokenizer_config.json",
        {
            "tokenizer_class": "LlamaTokenizer",
            "add_bos_token": True,
            "add_eos_token": False,
            "legacy": legacy,
            "model_max_length": 2048,
            "clean_up_tokenization_spaces": False,
            **_SPECIAL_TOKENS,
        },
    )
    return model_dir


def save_tiny_solami(model_dir: Path, seed: int = 0, hidden_size: int = 32) -> Path:
    """Writes the model; ``hidden_size`` / 2 heads sets the head size (vLLM's CPU attention
    needs 64 or more)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    save_solami_tokenizer(model_dir)
    fast = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(model_dir)
    return model_dir


def save_scripted_solami(model_dir: Path, reply: str, hidden_size: int = 64) -> Path:
    """A tiny SOLAMI LLaMA whose weights make it answer every prompt with ``reply``.

    Attention and MLP outputs are zero, so each position's hidden state is its token's
    embedding and the model is a bigram table: the LM head row of each reply token points
    along the embedding of the token before it, starting from the prompt's last token
    (the ``:`` after ``[MMGPT]``). ``reply`` must not repeat a token. The model is loaded and
    sampled like any other SOLAMI checkpoint; only its weights are written by hand.
    """
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    save_tiny_solami(model_dir, hidden_size=hidden_size)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = LlamaForCausalLM.from_pretrained(model_dir)
    assert not model.config.tie_word_embeddings  # the head is written apart from the input
    # The prompt's last token as the served prompt is encoded (the slow LlamaTokenizer).
    slow = SlowLlamaEncoder.load(model_dir)
    prompt_end = slow.encode(f"{CHARACTER_ROLE}:", add_special_tokens=False)[-1]
    chain = [
        prompt_end,
        *tokenizer(reply, add_special_tokens=False).input_ids,
        tokenizer.eos_token_id,
    ]
    if len(set(chain)) != len(chain):
        raise ValueError("a scripted reply must not repeat a token")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = model.model.embed_tokens.weight
        head = model.lm_head.weight
        head.normal_(0.0, 0.01)
        for current, following in itertools.pairwise(chain):
            head[following] = SCRIPT_LOGIT_SCALE * embeddings[current] / embeddings[current].norm()
    model.save_pretrained(model_dir)
    return model_dir
