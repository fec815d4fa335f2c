"""``make demo``: start the stack, ask the character one spoken question through the headset
simulator, and write what came back to ``demo-output/``:

- ``headset/``: every reply WAV as the headset received it, the aiStream frames, the timeline;
- ``reply.wav``, ``motion.npz`` (SMPL-X), ``face.npz`` (LiveLinkFace layout);
- ``reply.png``: stick-figure frames of the body motion and the main blendshape curves.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

QUESTION = Path(__file__).parent / "data" / "question.wav"
OUTPUT = Path("demo-output")
SHARED_RIGS = Path(__file__).resolve().parents[2] / "shared" / "solami-data"
# Seconds the stack may take to load every model on a slow laptop.
START_TIMEOUT_S = 600
FACE_CURVES = ("JawOpen", "MouthFunnel", "MouthSmileLeft", "EyeBlinkLeft", "BrowInnerUp")


def _start_stack(env: dict[str, str]) -> subprocess.Popen[str]:
    up = subprocess.Popen(
        [sys.executable, "-m", "solami_cli", "up", "--timeout", str(START_TIMEOUT_S)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in up.stdout:
        print(line, end="", flush=True)
        if line.startswith("Ctrl-C stops everything"):
            return up
    raise SystemExit(f"solami up stopped before the stack was ready (exit {up.wait()})")


def render_png(motion_npz: Path, face_npz: Path, out: Path) -> None:
    """Stick figures of six moments of the motion above the blendshape curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.spatial.transform import Rotation

    from services.motion.skeleton import BUILT_IN, PARENTS
    from solami.avatar.face import CHANNELS
    from solami.avatar.face_npz import read_npz

    figure = plt.figure(figsize=(12, 7))
    if motion_npz.is_file():
        with np.load(motion_npz) as data:
            poses, trans = data["poses"], data["trans"]
        rotations = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix()
        joints = BUILT_IN.forward(rotations.reshape(len(poses), 55, 3, 3), trans)
        for i, frame in enumerate(np.linspace(0, len(poses) - 1, 6).astype(int)):
            axis = figure.add_subplot(2, 6, i + 1)
            for joint, parent in enumerate(PARENTS[:22]):
                if parent >= 0:
                    a, b = joints[frame, joint], joints[frame, parent]
                    axis.plot([a[0], b[0]], [a[1], b[1]], color="tab:blue", linewidth=2)
            axis.set_title(f"{frame / 30:.1f} s", fontsize=9)
            axis.set_aspect("equal")
            axis.set_xlim(-1, 1)
            axis.set_ylim(-0.1, 2.0)
            axis.axis("off")
    weights, _ = read_npz(face_npz)
    curves = figure.add_subplot(2, 1, 2)
    seconds = np.arange(len(weights)) / 30
    for name in FACE_CURVES:
        curves.plot(seconds, weights[:, CHANNELS.index(name)], label=name)
    curves.set_xlabel("seconds")
    curves.set_ylabel("weight")
    curves.set_ylim(0, 1)
    curves.legend(loc="upper right", fontsize=8)
    figure.suptitle("SOLAMI demo reply: body motion (SMPL-X) and face (ARKit blendshapes)")
    figure.savefig(out, dpi=90)
    plt.close(figure)


def main() -> int:
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    OUTPUT.mkdir()
    env = dict(os.environ, SOLAMI_RELAY_RECORD_DIR=str((OUTPUT / "turns").resolve()))
    if "SOLAMI_RIG_DATA" not in env and SHARED_RIGS.is_dir():
        env["SOLAMI_RIG_DATA"] = str(SHARED_RIGS)
    character = "Vrmgirl" if env.get("SOLAMI_RIG_DATA") else "Smplx"
    up = _start_stack(env)
    try:
        from solami.registry import redis_url
        from solami_cli import simulator

        args = argparse.Namespace(
            wav=QUESTION,
            motion=None,
            character=character,
            out=OUTPUT / "headset",
            ws=f"ws://127.0.0.1:{env.get('SOLAMI_RELAY_PORT', '8099')}",
            redis=redis_url(env),
            timeout_s=60.0,
            settle_s=2.0,
        )
        print(f"\nasking {character}: 'Hi Samantha! Could you show me how to wave hello?'")
        status = simulator.main(args)
        time.sleep(1.0)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
    turns = sorted((OUTPUT / "turns").glob("*/reply.wav"))
    if not turns:
        print("no reply was recorded; see the logs above")
        return 1
    turn = turns[-1].parent
    for name in ("reply.wav", "motion.npz", "face.npz"):
        if (turn / name).is_file():
            shutil.copy(turn / name, OUTPUT / name)
    render_png(OUTPUT / "motion.npz", OUTPUT / "face.npz", OUTPUT / "reply.png")
    print(f"\nwrote {', '.join(sorted(p.name for p in OUTPUT.iterdir()))} to {OUTPUT}/")
    return status


if __name__ == "__main__":
    sys.exit(main())
