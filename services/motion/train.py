"""Trains the motion tokenizers on a folder of SMPL-X clips and writes a checkpoint directory.

    python -m services.motion.train DATA_DIR --out CHECKPOINT_DIR [--steps 20000] [--resume]

DATA_DIR is searched recursively for ``.npz`` files with ``poses`` (T, 165) and ``trans``
(T, 3), Y-up (``--z-up`` converts Blender-style data), e.g. AMASS or HumanML3D converted to
SMPL-X. A clip's frame rate is read from ``mocap_frame_rate`` / ``mocap_framerate`` (AMASS) or
``fps`` and the clip resampled to 30 fps (per-joint slerp); without one it is taken as 30 fps.
Each clip is placed and turned into features; the feature mean/std are
computed over all frames. The body and hand VQ-VAEs learn to reconstruct random windows
(smooth L1 + commitment, EMA code book with dead-code reset); the relative-transform VQ learns
random user/character placements (0.5-3 m apart, any heading) made from the clips' poses.

The output directory is the service's ``SOLAMI_MOTION_CHECKPOINT_DIR`` layout plus
``train_state.pt`` (optimizer and code book statistics) for ``--resume``. At the end the
reconstruction error is reported as MPJPE in millimetres (root-aligned, body + hand joints).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812
from tqdm import tqdm

from services.motion import features
from services.motion.backends.checkpoints import (
    STATS_FILE,
    Stats,
    Tokenizers,
    load_tokenizers,
    save_tokenizers,
)
from services.motion.backends.codec import MotionCodec, pad_to_tokens
from services.motion.backends.vqvae import BODY, HAND, TRANSFORM, TransformVQ, VQConfig, VQVae
from services.motion.features import Motion
from services.motion.skeleton import BUILT_IN, Skeleton
from solami.avatar.features import BODY_FEATURE_DIMS, FEATURE_DIMS, TRANSFORM_DIMS
from solami.avatar.rates import FPS, FRAMES_PER_TOKEN
from solami.avatar.skeleton import NUM_JOINTS, POSE_DIMS

STATE_FILE = "train_state.pt"
# Smallest standard deviation used to normalise a feature dim (constant dims stay finite).
STD_FLOOR = 1e-3
# User/character distance range of the synthetic placements for the transform VQ, metres.
PLACEMENT_DISTANCE_M = (0.5, 3.0)
# Joints in the MPJPE: body and hands (jaw and eyes carry no motion).
MPJPE_JOINTS = [j for j in range(NUM_JOINTS) if j not in (22, 23, 24)]
MM_PER_M = 1000.0
# npz keys that give a clip's frame rate (AMASS SMPL-X, older AMASS, HumanML3D-style exports).
FRAME_RATE_KEYS = ("mocap_frame_rate", "mocap_framerate", "fps")


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    data_dir: Path
    out_dir: Path
    steps: int = 20_000
    batch_size: int = 32
    window_frames: int = 64
    learning_rate: float = 2e-4
    commit_weight: float = 0.02
    save_every: int = 1_000
    resume: bool = False
    seed: int = 0
    device: str = "cpu"
    z_up: bool = False
    body: VQConfig = BODY
    hand: VQConfig = HAND
    transform_samples: int = 2_048
    eval_clips: int = 16
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class TrainResult:
    steps: int
    losses: list[float]
    mpjpe_mm: float
    body_perplexity: float
    hand_perplexity: float


def load_clips(data_dir: Path, z_up: bool, min_frames: int) -> list[Motion]:
    """Every usable clip under ``data_dir`` (too short or broken files are skipped)."""
    clips = []
    for path in sorted(data_dir.rglob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            if not {"poses", "trans"} <= set(data.files):
                continue
            poses = np.asarray(data["poses"], dtype=np.float64)
            trans = np.asarray(data["trans"], dtype=np.float64)
            rate_hz = _frame_rate(data)
        usable = poses.ndim == 2 and poses.shape[1] == POSE_DIMS
        usable = usable and trans.shape == (len(poses), 3) and len(poses) >= 2 and rate_hz > 0
        if usable and np.isfinite(poses).all() and np.isfinite(trans).all():
            motion = features.resample(Motion(poses, trans), rate_hz)
            if motion.n_frames >= min_frames:
                clips.append(features.convert_up_axis(motion) if z_up else motion)
    return clips


def _frame_rate(data: np.lib.npyio.NpzFile) -> float:
    """The clip's frame rate in Hz (30 when the file names none; 0 when it is unreadable)."""
    for key in FRAME_RATE_KEYS:
        if key in data.files:
            try:
                return float(np.asarray(data[key]).reshape(-1)[0])
            except (IndexError, TypeError, ValueError):
                return 0.0
    return float(FPS)


def placements(clips: list[Motion], count: int, skeleton: Skeleton, seed: int) -> np.ndarray:
    """(count, 5) relative transforms of random user/character placements."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, TRANSFORM_DIMS))
    for i in range(count):
        pair = []
        for _ in range(2):
            clip = clips[rng.integers(len(clips))]
            frame = rng.integers(clip.n_frames)
            pair.append(Motion(clip.poses[frame : frame + 1], clip.trans[frame : frame + 1]))
        yaw, direction = rng.uniform(-np.pi, np.pi, 2)
        distance = rng.uniform(*PLACEMENT_DISTANCE_M)
        turn = features.Placement(float(yaw), np.zeros(3))
        user = features.apply_placement(pair[0], turn)
        offset = distance * np.array([np.sin(direction), 0.0, np.cos(direction)])
        user = Motion(user.poses, user.trans + offset)
        out[i] = features.relative_transform(user, pair[1], skeleton)
    return out


def mpjpe_mm(codec: MotionCodec, clips: list[Motion], skeleton: Skeleton) -> float:
    """Mean root-aligned joint error of encode -> decode over ``clips``, in millimetres."""
    errors = []
    for clip in clips:
        feats, placement = features.features_of(clip, skeleton)
        body, hand = codec.encode_features(pad_to_tokens(feats)[None])
        decoded, _ = features.from_features(codec.decode_features(body, hand)[0][: len(feats)])
        truth = features.apply_placement(clip, placement)
        joints = [m.joints(skeleton)[: len(feats), MPJPE_JOINTS] for m in (truth, decoded)]
        aligned = [j - j[:, :1] for j in joints]
        errors.append(np.linalg.norm(aligned[0] - aligned[1], axis=-1).mean())
    return float(np.mean(errors) * MM_PER_M)


class _Data:
    def __init__(self, feats: list[np.ndarray], stats: Stats, window: int, seed: int) -> None:
        self.feats = [(f - stats.motion_mean) / stats.motion_std for f in feats]
        self.window = window
        weights = np.array([len(f) - window + 1 for f in feats], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        picks = self.rng.choice(len(self.feats), size=size, p=self.weights)
        out = np.empty((size, self.window, FEATURE_DIMS), dtype=np.float32)
        for row, pick in enumerate(picks):
            start = self.rng.integers(len(self.feats[pick]) - self.window + 1)
            out[row] = self.feats[pick][start : start + self.window]
        return torch.from_numpy(out)


def _stats(feats: list[np.ndarray], transforms: np.ndarray) -> Stats:
    frames = np.concatenate(feats)
    return Stats(
        frames.mean(0),
        np.maximum(frames.std(0), STD_FLOOR),
        transforms.mean(0),
        np.maximum(transforms.std(0), STD_FLOOR),
    )


def _quantizer_states(models: list) -> list:
    return [(m.quantizer.code_sum, m.quantizer.code_count) for m in models]


def train(options: TrainOptions, skeleton: Skeleton = BUILT_IN) -> TrainResult:
    """Runs (or resumes) training; saves every ``save_every`` steps and at the end."""
    if options.window_frames % FRAMES_PER_TOKEN:
        raise ValueError(f"window_frames must be a multiple of {FRAMES_PER_TOKEN}")
    torch.manual_seed(options.seed)
    clips = load_clips(options.data_dir, options.z_up, options.window_frames + 1)
    if not clips:
        raise ValueError(
            f"no usable clips in {options.data_dir} (npz with poses (T,165), trans (T,3), "
            f"at least {options.window_frames + 1} frames)"
        )
    feats = [features.features_of(clip, skeleton)[0] for clip in clips]
    transforms = placements(clips, options.transform_samples, skeleton, options.seed)
    state_path = options.out_dir / STATE_FILE
    step = 0
    if options.resume and state_path.is_file():
        loaded = load_tokenizers(options.out_dir, STATS_FILE, options.device)
        body, hand, transform, stats = loaded.body, loaded.hand, loaded.transform, loaded.stats
        state = torch.load(state_path, map_location=options.device, weights_only=True)
        step = int(state["step"])
    else:
        stats = _stats(feats, transforms)
        body, hand = VQVae(options.body), VQVae(options.hand)
        transform, state = TransformVQ(TRANSFORM), None
    models = [m.to(options.device) for m in (body, hand, transform)]
    optimizer = torch.optim.AdamW(
        [p for m in models for p in m.parameters()], lr=options.learning_rate, betas=(0.9, 0.99)
    )
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        for model, (code_sum, code_count) in zip(models, state["codebooks"], strict=True):
            model.quantizer.code_sum, model.quantizer.code_count = code_sum, code_count
    data = _Data(feats, stats, options.window_frames, options.seed + step)
    normal_t = torch.as_tensor(
        (transforms - stats.transform_mean) / stats.transform_std, dtype=torch.float32
    )
    rng = torch.Generator().manual_seed(options.seed + step)
    losses: list[float] = []
    perplexity = (0.0, 0.0)

    def save() -> None:
        tokenizers = Tokenizers(body, hand, transform, stats, source=str(options.out_dir))
        save_tokenizers(options.out_dir, tokenizers)
        codebooks = _quantizer_states(models)
        torch.save(
            {"step": step, "optimizer": optimizer.state_dict(), "codebooks": codebooks}, state_path
        )

    bar = tqdm(total=options.steps, initial=step, disable=not options.progress, unit="step")
    for model in models:
        model.train()
    while step < options.steps:
        x = data.batch(options.batch_size).to(options.device)
        rows = torch.randint(len(normal_t), (options.batch_size,), generator=rng)
        t = normal_t[rows].to(options.device)
        loss = torch.zeros((), device=options.device)
        ppl = []
        for model, target in (
            (body, x[..., :BODY_FEATURE_DIMS]),
            (hand, x[..., BODY_FEATURE_DIMS:]),
            (transform, t),
        ):
            recon, commit, model_ppl = model(target)
            loss = loss + F.smooth_l1_loss(recon, target) + options.commit_weight * commit
            ppl.append(float(model_ppl))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(float(loss.detach()))
        perplexity = (ppl[0], ppl[1])
        bar.update(1)
        bar.set_postfix(
            loss=f"{losses[-1]:.4f}", ppl_body=f"{ppl[0]:.0f}", ppl_hand=f"{ppl[1]:.0f}"
        )
        if step % options.save_every == 0:
            save()
    bar.close()
    save()
    for model in models:
        model.eval()
    codec = MotionCodec(Tokenizers(body, hand, transform, stats), skeleton, options.device)
    error = mpjpe_mm(codec, clips[: options.eval_clips], skeleton)
    return TrainResult(step, losses, error, *perplexity)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="solami motion train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("data_dir", type=Path, help="folder of SMPL-X npz clips (recursive)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    parser.add_argument("--steps", type=int, default=20_000, help="total optimizer steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--window", type=int, default=64, help="frames per sample (x4)")
    parser.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate")
    parser.add_argument("--save-every", type=int, default=1_000, help="steps between saves")
    parser.add_argument("--resume", action="store_true", help="continue from --out")
    parser.add_argument("--z-up", action="store_true", help="the clips are Z-up (Blender)")
    parser.add_argument("--width", type=int, default=BODY.width, help="conv channels")
    parser.add_argument("--code-dim", type=int, default=BODY.code_dim, help="code size")
    parser.add_argument("--depth", type=int, default=BODY.depth, help="residual blocks")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = {
        "width": args.width,
        "code_dim": args.code_dim,
        "output_emb_width": args.code_dim,
        "depth": args.depth,
    }
    options = TrainOptions(
        data_dir=args.data_dir,
        out_dir=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        window_frames=args.window,
        learning_rate=args.lr,
        save_every=args.save_every,
        resume=args.resume,
        seed=args.seed,
        device=args.device,
        z_up=args.z_up,
        body=dataclasses.replace(BODY, **size),
        hand=dataclasses.replace(HAND, **size),
    )
    try:
        result = train(options)
    except ValueError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    summary = {
        "steps": result.steps,
        "loss": round(result.losses[-1], 5) if result.losses else None,
        "mpjpe_mm": round(result.mpjpe_mm, 1),
        "perplexity": {
            "body": round(result.body_perplexity, 1),
            "hand": round(result.hand_perplexity, 1),
        },
        "out": str(args.out),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
