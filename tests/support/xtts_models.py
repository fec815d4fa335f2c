"""A tiny Coqui XTTS-v2 with random weights, saved in the released model directory layout
(``config.json``, ``model.pth``, ``vocab.json``, ``speakers_xtts.pth``) so that the tts
service's XTTS backend loads it through coqui-tts's own checkpoint loader."""

from __future__ import annotations

from pathlib import Path

# The released model's audio token layout (1024 DVAE codes + start + stop).
NUM_AUDIO_TOKENS = 1026
START_AUDIO_TOKEN = 1024
STOP_AUDIO_TOKEN = 1025
# Tiny GPT: hidden size (also the HiFi-GAN decoder's input), layers, heads.
MODEL_DIM = 64
LAYERS = 2
HEADS = 4
# Audio tokens generated per sentence: max_audio_tokens - 1 conditioning input - 2.
MAX_AUDIO_TOKENS = 63
GENERATED_TOKENS = MAX_AUDIO_TOKENS - 3
# Speaker embedding size of the released decoder.
D_VECTOR_DIM = 512
SPECIAL_TOKENS = ("[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]")
LETTERS = "abcdefghijklmnopqrstuvwxyz'.,!?-"


def save_vocab(path: Path) -> None:
    """A character-level BPE vocabulary with XTTS's special and language tokens."""
    from tokenizers import Tokenizer, models

    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *LETTERS))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.save(str(path))


def save_tiny_xtts(directory: Path, speakers: tuple[str, ...] = ("Damien Black",)) -> Path:
    """Writes the four files of an XTTS-v2 model directory; returns ``directory``.

    The stop token's logit is pushed far down, so every sentence generates exactly
    ``GENERATED_TOKENS`` audio tokens (a random model would otherwise stop at random).
    ``speakers`` are the built-in speakers written to ``speakers_xtts.pth``.
    """
    import torch
    from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    directory.mkdir(parents=True, exist_ok=True)
    save_vocab(directory / "vocab.json")
    config = XttsConfig(
        model_args=XttsArgs(
            gpt_layers=LAYERS,
            gpt_n_model_channels=MODEL_DIM,
            gpt_n_heads=HEADS,
            gpt_max_audio_tokens=MAX_AUDIO_TOKENS,
            gpt_num_audio_tokens=NUM_AUDIO_TOKENS,
            gpt_start_audio_token=START_AUDIO_TOKEN,
            gpt_stop_audio_token=STOP_AUDIO_TOKEN,
            gpt_use_perceiver_resampler=True,
            decoder_input_dim=MODEL_DIM,
            d_vector_dim=D_VECTOR_DIM,
        ),
        gpt_cond_len=6,
        gpt_cond_chunk_len=3,
        max_ref_len=10,
    )
    config.save_json(str(directory / "config.json"))
    torch.manual_seed(0)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=directory / "vocab.json")
    model.init_models()
    with torch.no_grad():
        model.gpt.mel_head.bias[STOP_AUDIO_TOKEN] = -1e4
    torch.save({"model": model.state_dict()}, directory / "model.pth")
    latents = {
        name: {
            "gpt_cond_latent": torch.randn(1, 32, MODEL_DIM),
            "speaker_embedding": torch.randn(1, D_VECTOR_DIM, 1),
        }
        for name in speakers
    }
    torch.save(latents, directory / "speakers_xtts.pth")
    return directory
