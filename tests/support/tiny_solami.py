"""A tiny LLaMA with the full SOLAMI vocabulary and random weights, saved in the Hugging Face
layout (config.json, model.safetensors, tokenizer files) like a real SOLAMI checkpoint."""

from __future__ import annotations

from pathlib import Path

from services.llm.characters import CharacterBook
from services.llm.vocabulary import added_tokens

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
