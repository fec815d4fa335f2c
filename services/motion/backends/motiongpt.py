"""MotionGPT: captions of a user's motion (m2t) and motion from a text (t2m).

This is the model behind SOLAMI's ``dlp+motiongpt`` baselines: SOLAMI's fork of MotionGPT at
``models/motiongpt`` (experiment ``Pretrain_HumanML3D_GPT2_Local_Body_Hand_Sep_NoInterleave``),
a GPT-2 whose vocabulary holds ``<body_id_i>`` and ``<hand_id_i>`` for the codes of separate
body (135-dim) and hand (180-dim) VQ-VAEs, the same ``VQVae`` as the SOLAMI tokenizers.

Released layout (``MotionGpt.load(directory)``):

- ``config_<time>_train.yaml``: the training config as the original saves it (``${...}``
  references unresolved); read as plain YAML for the VQ-VAE sizes, the codebook size and the
  prompt length (``EXPER.max_length``).
- ``checkpoints/last.ckpt``: a Lightning checkpoint; ``state_dict`` holds ``vae_body.*``,
  ``vae_hand.*`` and ``lm.language_model.*`` (a ``GPT2LMHeadModel`` with the motion tokens
  added), loaded strictly. ``UNUSED_KEYS`` lists what else the original writes there.
- the GPT-2 directory the config names (``./deps/gpt2``): ``gpt2/`` beside the config, or
  ``deps/gpt2`` of the original tree that holds ``experiments/mgpt/<name>``. Only its
  tokenizer, ``config.json`` and ``generation_config.json`` are read; the weights come from the
  checkpoint.
- the feature statistics (SOLAMI's ``all_mean_variance_post.npz``) beside the config.

Prompts, decoding and output parsing are the original ``MLM.generate_conditional``'s: m2t is
greedy over ``<User>Generate text for <begin_body>..<end_body><begin_hand>..<end_hand>:<LLM>``;
t2m samples three prompts ``<User>Show me a motion that captures the essence of  Input: <text>
<LLM>`` (the text in double quotes with probability ``quota_ratio``) with top-k 50 and keeps
the first answer with more than one body id, clamped to the codebook, as SOLAMI's
``generate_motion`` does. Prompts are left-padded (and right-truncated) to ``max_length``
tokens. A call seeds Python's template choices and torch's sampling with ``seed``, in the
original's order, so a seeded call gives the ids of the original seeded alike
(``tests/fixtures/motiongpt``).
"""

from __future__ import annotations

import dataclasses
import pickle
import random
import re
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from services.motion import features
from services.motion.backends.base import Caption
from services.motion.backends.checkpoints import read_stats
from services.motion.backends.vqvae import VQConfig, VQVae
from services.motion.features import Motion
from services.motion.skeleton import BUILT_IN, Skeleton
from solami.avatar.features import BODY_FEATURE_DIMS, FEATURE_DIMS
from solami.avatar.rates import FPS, FRAMES_PER_TOKEN
from solami.errors import EngineUnavailable

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerBase

CHECKPOINT_FILE = "checkpoints/last.ckpt"
CONFIG_GLOB = "config_*_train.yaml"
DEFAULT_STATS_FILE = "all_mean_variance_post.npz"
DEFAULT_TOKENIZER_DIR = "gpt2"
SOURCE = "motiongpt"

# The original's prompt templates (MLM.generate_conditional, without frame counts).
T2M_TEMPLATE = "Show me a motion that captures the essence of  Input: <Caption_Placeholder>"
M2T_TEMPLATE = "Generate text for <Motion_Placeholder>:"
USER, LLM = "<User>", "<LLM>"
BEGIN_BODY, END_BODY, BEGIN_HAND, END_HAND = (
    "<begin_body>",
    "<end_body>",
    "<begin_hand>",
    "<end_hand>",
)
MARKERS = (BEGIN_BODY, END_BODY, BEGIN_HAND, END_HAND, USER, LLM)
# Motion tokens per part: the codes plus three the original reserves.
EXTRA_CODES = 3
# MLM's default probability of quoting the text of a t2m prompt.
QUOTA_RATIO = 0.5
# The original's new-token budgets, sample count and (transformers' default) top-k.
M2T_MAX_NEW_TOKENS = 256
T2M_MAX_NEW_TOKENS = 128
T2M_SAMPLES = 3
TOP_K = 50


@dataclasses.dataclass(frozen=True)
class Sampled:
    """One generation: its prompts, the token ids (left padding, prompt and answer) and the
    answers as the original extracts them; ``score`` is the mean probability of the first
    answer's tokens (m2t only)."""

    prompts: list[str]
    sequences: np.ndarray
    answers: list[str]
    score: float = float("nan")


@dataclasses.dataclass(frozen=True)
class MotionGptConfig:
    """What the loader takes from the experiment config."""

    body: VQConfig
    hand: VQConfig
    code_num: int
    max_length: int
    quota_ratio: float
    model_path: str


@dataclasses.dataclass(frozen=True)
class MotionGptOptions:
    """How the model is called; the defaults are the original's."""

    # Seed of every call's template draws and sampling (a text always gives the same motion).
    seed: int = 0
    # t2m prompts sampled in one batch; the first answer holding a motion is kept.
    samples: int = T2M_SAMPLES
    # New-token budgets of a caption and of a motion answer.
    m2t_max_new_tokens: int = M2T_MAX_NEW_TOKENS
    t2m_max_new_tokens: int = T2M_MAX_NEW_TOKENS
    top_k: int = TOP_K


_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def config_value(root: dict, path: str, depth: int = 0) -> object:
    """``path`` ("a.b.c") in a saved config, following its whole-value ``${x.y}`` references."""
    if depth > 20:
        raise KeyError(f"{path}: references loop")
    node: object = root
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise KeyError(path)
        node = node[key]
        if isinstance(node, str) and (match := _REFERENCE.fullmatch(node)):
            node = config_value(root, match.group(1), depth + 1)
    return node


def vq_config(params: dict, nfeats: int) -> VQConfig:
    """A VQ-VAE's constructor parameters (``vq/*.yaml``) -> our config; MotionGPT sets nfeats."""
    if str(params.get("norm")) != "None" or params.get("activation", "relu") != "relu":
        raise ValueError(f"norm {params.get('norm')!r} / activation {params.get('activation')!r}")
    return VQConfig(
        nfeats=nfeats,
        code_num=int(params["code_num"]),
        code_dim=int(params["code_dim"]),
        output_emb_width=int(params["output_emb_width"]),
        down_t=int(params["down_t"]),
        stride_t=int(params["stride_t"]),
        width=int(params["width"]),
        depth=int(params["depth"]),
        dilation_growth_rate=int(params["dilation_growth_rate"]),
    )


def read_config(path: Path) -> MotionGptConfig:
    """The fields the loader needs from a saved training config."""
    import yaml

    if not path.is_file():
        raise EngineUnavailable(f"MotionGPT experiment config not found: {path}")
    root = yaml.safe_load(path.read_text())
    try:
        exper = {k: config_value(root, f"EXPER.{k}") for k in ("motion_part", "motion_repre")}
        interleaved = config_value(root, "EXPER.token_interleaved")
        if exper != {"motion_part": "body_hand_sep", "motion_repre": "local cont6d"} or (
            interleaved
        ):
            raise ValueError(
                f"EXPER {exper}, token_interleaved {interleaved}: this loader reads the "
                "separate body/hand, local cont6d, non-interleaved experiment"
            )
        lm = config_value(root, "model.params.lm.params")
        if lm.get("model_type") != "gpt2" or lm.get("new_token_type", "insert") != "insert":
            raise ValueError(f"lm model_type {lm.get('model_type')!r}: expected gpt2")
        body = vq_config(
            config_value(root, "model.params.motion_vae_body.params"), BODY_FEATURE_DIMS
        )
        hand_params = config_value(root, "model.params.motion_vae_hand.params")
        hand = vq_config(hand_params, FEATURE_DIMS - BODY_FEATURE_DIMS)
        code_num = int(config_value(root, "model.params.lm.params.motion_codebook_size"))
        max_length = int(config_value(root, "model.params.lm.params.max_length"))
    except (KeyError, ValueError, TypeError) as exc:
        raise EngineUnavailable(
            f"{path}: not a MotionGPT body/hand experiment config: {exc}"
        ) from None
    if not body.code_num == hand.code_num == code_num:
        raise EngineUnavailable(
            f"{path}: codebook sizes differ (body {body.code_num}, hand {hand.code_num}, "
            f"lm {code_num})"
        )
    return MotionGptConfig(
        body,
        hand,
        code_num,
        max_length,
        float(lm.get("quota_ratio", QUOTA_RATIO)),
        str(lm.get("model_path", "./deps/gpt2")),
    )


def build_tokenizer(directory: Path, code_num: int) -> PreTrainedTokenizerBase:
    """The GPT-2 tokenizer of ``directory`` with MotionGPT's tokens added in its order."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    tokenizer.pad_token = tokenizer.eos_token
    for part in ("body", "hand"):
        tokenizer.add_tokens([f"<{part}_id_{i}>" for i in range(code_num + EXTRA_CODES)])
    tokenizer.add_tokens(list(MARKERS), special_tokens=True)
    tokenizer.padding_side = "left"
    return tokenizer


def build_language_model(directory: Path, vocab_size: int) -> GPT2LMHeadModel:
    """A GPT-2 of ``directory/config.json`` (random weights) with ``vocab_size`` tokens."""
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    config = GPT2Config.from_pretrained(str(directory), local_files_only=True)
    config.vocab_size = vocab_size
    model = GPT2LMHeadModel(config)
    if (directory / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(
            str(directory), local_files_only=True
        )
    return model.eval()


def find_config(directory: Path) -> Path:
    """The newest ``config_<time>_train.yaml`` in ``directory``."""
    found = sorted(directory.glob(CONFIG_GLOB))
    if not found:
        raise EngineUnavailable(f"no MotionGPT experiment config ({CONFIG_GLOB}) in {directory}")
    return found[-1]


def find_tokenizer_dir(directory: Path, model_path: str) -> Path:
    """``gpt2/`` beside the config, else the config's path in the original tree."""
    candidates = [directory / DEFAULT_TOKENIZER_DIR]
    if len(directory.parents) > 2:
        candidates.append(directory.parents[2] / model_path)
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate
    raise EngineUnavailable(
        "MotionGPT GPT-2 tokenizer/config directory not found: "
        + " or ".join(str(c) for c in candidates)
        + " (the original's deps/gpt2: config.json and the tokenizer files)"
    )


# Keys the original writes into last.ckpt that the baseline does not use: the relative-
# transform tokenizer (trained alongside; SOLAMI's server sets EXPER.transform False), the SMPL-X
# body model MotionGPT keeps for its losses, evaluator and metric state (the original's own
# load_state_dict drops keys with "Metrics" or "_losses"), and the causal-mask buffers older
# transformers saved with GPT-2.
UNUSED_KEYS = re.compile(
    r"^vae_transform\.|^smplx_model\.|^metrics\.|Metrics|_losses"
    r"|^lm\.language_model\.transformer\.h\.\d+\.attn\.(masked_)?bias$"
)
# How many offending keys a load error names.
KEYS_NAMED = 4
# Modules whose classes a checkpoint may build; anything else (OmegaConf configs and Lightning
# objects among the hyper-parameters, callbacks) is read as an opaque stand-in.
_PICKLE_MODULES = ("torch", "collections", "copyreg", "_codecs", "numpy")
_PICKLE_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "slice", "complex", "bytearray"}


class _Opaque:
    """Stands in for an object of a class not needed to read the weights."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args = args

    def __setstate__(self, state: object) -> None:
        self.state = state


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if module.split(".")[0] in _PICKLE_MODULES or (
            module == "builtins" and name in _PICKLE_BUILTINS
        ):
            return super().find_class(module, name)
        return type(name, (_Opaque,), {"__module__": module})


_LENIENT_PICKLE = types.ModuleType("lenient_pickle")
_LENIENT_PICKLE.Unpickler = _LenientUnpickler
_LENIENT_PICKLE.load = pickle.load


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint. Its other entries (hyper-parameters with
    OmegaConf configs, optimizer state) may need classes that are not installed; they are read
    as stand-ins. The file is trusted input, like any model file."""
    if not path.is_file():
        raise EngineUnavailable(f"MotionGPT checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        checkpoint = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_LENIENT_PICKLE
        )
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise EngineUnavailable(f"{path}: no state_dict (expected a Lightning checkpoint)")
    return state


def _first(keys: list[str]) -> str:
    more = f" and {len(keys) - KEYS_NAMED} more" if len(keys) > KEYS_NAMED else ""
    return ", ".join(keys[:KEYS_NAMED]) + more


def split_state(
    path: Path, state: dict[str, torch.Tensor], modules: dict[str, torch.nn.Module]
) -> dict[str, dict[str, torch.Tensor]]:
    """``state`` cut into one state dict per prefix of ``modules``; every module key must be
    there with its shape, and every other key must be one of ``UNUSED_KEYS``."""
    expected = {p + k: v for p, m in modules.items() for k, v in m.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and not UNUSED_KEYS.search(k)]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = [
        f"{what} {_first(keys)}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("misshapen", wrong))
        if keys
    ]
    if problems:
        raise EngineUnavailable(
            f"{path}: not the MotionGPT of its config and tokenizer: "
            + "; ".join(problems)
            + " (expected vae_body.*, vae_hand.*, lm.language_model.* as the original writes)"
        )
    return {
        prefix: {k[len(prefix) :]: state[k] for k in expected if k.startswith(prefix)}
        for prefix in modules
    }


def _between(content: str, start: str, end: str, pattern: str) -> list[int]:
    """The original's id extraction: ids between the first ``start`` and the first ``end``;
    [0] when a marker or the ids are missing."""
    if start not in content or end not in content:
        return [0]
    found = re.findall(pattern, content[content.index(start) + len(start) : content.index(end)])
    return [int(i) for i in found] or [0]


def llm_part(decoded: str, pad_token: str) -> str:
    """The answer: what follows the last ``<LLM>`` on its line, stripped."""
    found = re.findall(re.escape(LLM) + r"(.*)", decoded.replace(pad_token, ""))
    return found[-1].strip() if found else ""


def caption_of(answer: str) -> str:
    """An answer without its motion tokens and markers."""
    text = re.sub(r"<(body|hand)_id_\d+>", "", answer)
    for marker in MARKERS:
        text = text.replace(marker, "")
    return text


def motion_ids_of(answer: str) -> np.ndarray:
    """(2, L) body and hand ids of an answer, cut to the shorter."""
    body = _between(answer, BEGIN_BODY, END_BODY, r"<body_id_(\d+)>")
    hand = _between(answer, BEGIN_HAND, END_HAND, r"<hand_id_(\d+)>")
    length = min(len(body), len(hand))
    return np.array([body[:length], hand[:length]], dtype=np.int64)


class MotionGpt:
    """The loaded model, a ``backends.base.MotionGenerator``; ``caption`` and ``generate`` are
    thread-safe (one model call at a time)."""

    def __init__(
        self,
        config: MotionGptConfig,
        body: VQVae,
        hand: VQVae,
        language_model: GPT2LMHeadModel,
        tokenizer: PreTrainedTokenizerBase,
        mean: np.ndarray,
        std: np.ndarray,
        skeleton: Skeleton = BUILT_IN,
        device: str = "cpu",
        options: MotionGptOptions = MotionGptOptions(),
    ) -> None:
        self.config = config
        self.body, self.hand, self.language_model = body, hand, language_model
        self.tokenizer = tokenizer
        self.mean, self.std = mean, std
        self.skeleton = skeleton
        self.device = torch.device(device)
        self.options = options
        self.code_num = config.code_num
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        directory: Path,
        device: str = "cpu",
        *,
        skeleton: Skeleton = BUILT_IN,
        config_file: Path | None = None,
        tokenizer_dir: Path | None = None,
        stats_file: Path | None = None,
        options: MotionGptOptions = MotionGptOptions(),
    ) -> MotionGpt:
        """Loads the released layout strictly (see the module docstring)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise EngineUnavailable(f"MotionGPT directory not found: {directory}")
        config = read_config(config_file or find_config(directory))
        tokenizer_dir = tokenizer_dir or find_tokenizer_dir(directory, config.model_path)
        if not (tokenizer_dir / "config.json").is_file():
            raise EngineUnavailable(f"no GPT-2 config.json in {tokenizer_dir}")
        stats = read_stats(stats_file or directory / DEFAULT_STATS_FILE)
        try:
            tokenizer = build_tokenizer(tokenizer_dir, config.code_num)
        except (OSError, ValueError) as exc:
            raise EngineUnavailable(f"{tokenizer_dir}: no GPT-2 tokenizer: {exc}") from None
        language_model = build_language_model(tokenizer_dir, len(tokenizer))
        body, hand = VQVae(config.body), VQVae(config.hand)
        checkpoint = directory / CHECKPOINT_FILE
        modules = {"vae_body.": body, "vae_hand.": hand, "lm.language_model.": language_model}
        for prefix, state in split_state(checkpoint, read_state(checkpoint), modules).items():
            modules[prefix].load_state_dict(state, strict=True)
        language_model.tie_weights()
        for module in modules.values():
            module.to(device).eval()
        return cls(
            config,
            body,
            hand,
            language_model,
            tokenizer,
            stats.motion_mean,
            stats.motion_std,
            skeleton,
            device,
            options,
        )

    # Prompts.
    def m2t_prompt(self, body_ids: np.ndarray, hand_ids: np.ndarray) -> str:
        motion = (
            BEGIN_BODY
            + "".join(f"<body_id_{int(i)}>" for i in body_ids)
            + END_BODY
            + BEGIN_HAND
            + "".join(f"<hand_id_{int(i)}>" for i in hand_ids)
            + END_HAND
        )
        return USER + M2T_TEMPLATE.replace("<Motion_Placeholder>", motion) + LLM

    def t2m_prompts(self, text: str, rng: random.Random) -> list[str]:
        """The original's draws per prompt: input and output template, then a quoting draw
        for each (only the input's is used)."""
        prompts = []
        for _ in range(self.options.samples):
            template = rng.choice([T2M_TEMPLATE])
            rng.choice([""])
            quoted = rng.random() < self.config.quota_ratio
            rng.random()
            filled = template.replace("<Caption_Placeholder>", f'"{text}"' if quoted else text)
            prompts.append(USER + filled + LLM)
        return prompts

    # Model calls.
    def _generate(self, prompts: list[str], seed: int, **kwargs: object) -> object:
        encoded = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.config.max_length,
            truncation=True,
            return_tensors="pt",
        ).to(self.device)
        devices = [] if self.device.type != "cuda" else [self.device.index or 0]
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            return self.language_model.generate(
                input_ids=encoded.input_ids,
                attention_mask=encoded.attention_mask,
                pad_token_id=self.tokenizer.pad_token_id,
                return_dict_in_generate=True,
                **kwargs,
            )

    def _decode(self, sequences: torch.Tensor) -> list[str]:
        texts = self.tokenizer.batch_decode(
            sequences, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        return [llm_part(t, self.tokenizer.pad_token) for t in texts]

    def sample_m2t(self, body_ids: np.ndarray, hand_ids: np.ndarray) -> Sampled:
        """The greedy m2t answer for body and hand ids (one sequence each)."""
        prompts = [self.m2t_prompt(body_ids, hand_ids)]
        with self._lock:
            out = self._generate(
                prompts,
                self.options.seed,
                do_sample=False,
                max_new_tokens=self.options.m2t_max_new_tokens,
                output_scores=True,
            )
        new = out.sequences[0, -len(out.scores) :]
        logp = torch.stack([s[0].log_softmax(-1) for s in out.scores]).gather(1, new[:, None])
        ended = (new == self.tokenizer.eos_token_id).nonzero()
        count = int(ended[0, 0]) + 1 if len(ended) else len(new)
        sequences = out.sequences.cpu().numpy()
        return Sampled(
            prompts, sequences, self._decode(out.sequences), float(logp[:count].mean().exp())
        )

    def caption_ids(self, body_ids: np.ndarray, hand_ids: np.ndarray) -> Caption:
        sampled = self.sample_m2t(body_ids, hand_ids)
        return Caption(caption_of(sampled.answers[0]), sampled.score, SOURCE)

    def encode(self, motion: Motion) -> tuple[np.ndarray, np.ndarray]:
        """A clip -> body and hand ids as the original's m2t input (no padding beyond 4
        frames: the last ``frames % 4`` frames only reach the last id's receptive field)."""
        feats, _ = features.features_of(motion, self.skeleton)
        if len(feats) < FRAMES_PER_TOKEN:
            feats = np.concatenate([feats, np.repeat(feats[-1:], FRAMES_PER_TOKEN - len(feats), 0)])
        x = torch.as_tensor(((feats - self.mean) / self.std)[None], dtype=torch.float32)
        x = x.to(self.device)
        body = self.body.encode(x[..., :BODY_FEATURE_DIMS])[0].cpu().numpy()
        hand = self.hand.encode(x[..., BODY_FEATURE_DIMS:])[0].cpu().numpy()
        return body, hand

    def caption(self, motion: Motion) -> Caption:
        """The original m2t: the user's clip through both VQ-VAEs, then a greedy caption."""
        return self.caption_ids(*self.encode(motion))

    def sample_t2m(self, text: str) -> Sampled:
        """The sampled t2m answers for ``text`` (``options.samples`` prompts, one batch)."""
        prompts = self.t2m_prompts(text, random.Random(self.options.seed))
        with self._lock:
            out = self._generate(
                prompts,
                self.options.seed,
                do_sample=True,
                top_k=self.options.top_k,
                top_p=1.0,
                temperature=1.0,
                max_new_tokens=self.options.t2m_max_new_tokens,
            )
        return Sampled(prompts, out.sequences.cpu().numpy(), self._decode(out.sequences))

    def generate_ids(self, text: str) -> np.ndarray | None:
        """t2m: the first answer's (2, L) ids with L > 1, clamped to the codebook (None: no
        answer held a motion)."""
        for answer in self.sample_t2m(text).answers:
            ids = np.clip(motion_ids_of(answer), 0, self.code_num - 1)
            if ids.shape[1] > 1:
                return ids
        return None

    def decode_features(self, ids: np.ndarray) -> np.ndarray:
        """(2, L) ids -> (4 L, 315) normalised features (the VQ-VAE decoders' output)."""
        with self._lock:
            tensor = torch.as_tensor(ids, device=self.device)
            body = self.body.decode(tensor[:1])
            hand = self.hand.decode(tensor[1:])
        return torch.cat([body, hand], dim=-1)[0].cpu().numpy().astype(np.float64)

    def generate(self, text: str, seconds: float = 0.0) -> Motion | None:
        """A clip for ``text`` (its own length; ``seconds`` > 0 caps it), None when no sample
        held a motion."""
        ids = self.generate_ids(text)
        if ids is None:
            return None
        motion, _ = features.from_features(self.decode_features(ids) * self.std + self.mean)
        if seconds > 0:
            frames = max(1, round(seconds * FPS))
            motion = Motion(motion.poses[:frames], motion.trans[:frames])
        return motion
