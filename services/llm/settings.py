"""Settings of the llm service (``SOLAMI_LLM_*``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from services.llm.prompt import AGENT_PROMPTS, SOLAMI_REPLY_TOKENS
from solami.registry import SERVICES
from solami.settings import ServiceSettings, SettingsError

INFO = SERVICES["llm"]
BACKENDS = ("llama-cpp", "transformers", "vllm", "echo")


@dataclasses.dataclass(frozen=True)
class LlmSettings(ServiceSettings):
    """Which model generates and how."""

    port: int = INFO.port
    metrics_port: int = INFO.metrics_port
    # "llama-cpp" (CPU default, GGUF), "transformers" (HF directory), "vllm" (GPU nodes);
    # "echo" is a benchmarking profile (a fixed reply at once) that must never serve users.
    backend: str = "llama-cpp"
    # Model path: a .gguf file (llama-cpp; empty = the packaged SmolLM2) or an HF directory.
    model: str = ""
    # Context window in tokens (SOLAMI: 2048). SOLAMI prompts stay under it less 600 tokens for
    # the reply (1448); agent prompts must leave room for max_new_tokens (150 by default).
    context_tokens: int = 2048
    # CPU threads for inference.
    cpu_threads: int = 2
    # Torch device of the transformers backend ("cpu", "cuda").
    device: str = "cpu"
    # Tries when a SOLAMI reply lacks speech or body ids (the original SOLAMI server: 3).
    max_attempts: int = 3
    # Tries when an agent-method reply lacks speech (the original agent server: 4).
    agent_max_attempts: int = 4
    # Longest accepted user text, in characters.
    max_user_chars: int = 2000
    # YAML/JSON file with more characters (name, prompt, description, examples).
    characters_file: Path | None = None
    # Agent prompt: "examples" (the original's plus the motions a reply may name, an instruction
    # to answer the user and example exchanges) or "original" (the original agent server's,
    # word for word). The default won the dialogue benchmark (README, Performance).
    agent_prompt: str = "examples"
    # llama-cpp: constrain agent replies while decoding to <speech>...</speech> <motion>PHRASE
    # </motion> with PHRASE one of the motion phrases (a GBNF grammar); other backends ignore it.
    agent_grammar: bool = True
    # Motion phrases (one a line) for the grammar and the "examples" prompt; unset = one per
    # clip of the packaged motion library.
    motions_file: Path | None = None
    # vLLM: GPUs to shard the model over.
    tensor_parallel_size: int = 1
    # vLLM: fraction of GPU memory for weights and KV cache.
    gpu_memory_utilization: float = 0.85

    def validate(self, prefix: str = "") -> None:
        super().validate(prefix)
        if self.backend not in BACKENDS:
            raise SettingsError(
                f"{prefix}BACKEND must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.backend not in ("llama-cpp", "echo") and not self.model:
            raise SettingsError(f"{prefix}MODEL must name a model directory for {self.backend}")
        if self.context_tokens <= SOLAMI_REPLY_TOKENS:
            raise SettingsError(
                f"{prefix}CONTEXT_TOKENS must be more than {SOLAMI_REPLY_TOKENS} (the tokens kept "
                f"for a reply), got {self.context_tokens}"
            )
        if self.max_attempts < 1:
            raise SettingsError(f"{prefix}MAX_ATTEMPTS must be >= 1, got {self.max_attempts}")
        if self.agent_max_attempts < 1:
            raise SettingsError(
                f"{prefix}AGENT_MAX_ATTEMPTS must be >= 1, got {self.agent_max_attempts}"
            )
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise SettingsError(
                f"{prefix}GPU_MEMORY_UTILIZATION must be in (0, 1], "
                f"got {self.gpu_memory_utilization}"
            )
        if self.agent_prompt not in AGENT_PROMPTS:
            raise SettingsError(
                f"{prefix}AGENT_PROMPT must be one of {', '.join(AGENT_PROMPTS)}, "
                f"got {self.agent_prompt!r}"
            )
        if self.motions_file is not None and not self.motions_file.is_file():
            raise SettingsError(f"{prefix}MOTIONS_FILE does not exist: {self.motions_file}")
        if self.characters_file is not None and not self.characters_file.is_file():
            raise SettingsError(f"{prefix}CHARACTERS_FILE does not exist: {self.characters_file}")
