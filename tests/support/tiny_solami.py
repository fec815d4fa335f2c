"""A tiny LLaMA with the full SOLAMI vocabulary and random weights, saved in the Hugging Face
layout (config.json, model.safetensors, tokenizer files) like a real SOLAMI checkpoint."""

from __future__ import annotations

import itertools
from pathlib import Path

from services.llm.characters import CharacterBook
from services.llm.vocabulary import CHARACTER_ROLE, added_tokens

# LM head scale of a scripted model: the next reply token's logit leads the others by tens.
SCRIPT_LOGIT_SCALE = 8.0

_CORPUS = [c.solami_prompt for c in CharacterBook().characters] + [
    "Hello, how are you? I am fine. Let us dance together and wave hello.",
    "[Human]: [MMGPT]: <eoh> <eos>",
]


def save_tiny_solami(model_dir: Path, seed: int = 0, hidden_size: int = 32) -> Path:
    """Writes the model; ``hidden_size`` / 2 heads sets the head size (vLLM's CPU attention
    needs 64 or more)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"])
    tokenizer.train_from_iterator(_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.add_tokens(added_tokens())
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
    model_dir.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(config).save_pretrained(model_dir)
    fast.save_pretrained(model_dir)
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
    prompt_end = tokenizer(f"{CHARACTER_ROLE}:", add_special_tokens=False).input_ids[-1]
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
