"""A built motion library: real small npz clips written here, real all-MiniLM-L6-v2
embeddings; build -> load -> retrieve, bad clips skipped and reported, a library whose index
does not match its clips or the service's embedder refused at start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.motion.backends.retrieval import LibraryRetrieval, top1
from services.motion.engine import MotionEngine
from services.motion.library import BuiltLibrary, is_built_library
from services.motion.library_build import build, main
from services.motion.settings import MotionSettings
from services.motion.skeleton import BUILT_IN
from solami.avatar.rates import FPS
from solami.errors import EngineUnavailable
from tests.support.motion_models import shared_embedder, smplx_ai

TEXTS = {
    "wave": ["a person waves hello with the right hand#a/DET person/NOUN#0.0#0.0"],
    "walk": ["someone walks forward slowly", "a man strolls ahead"],
    "jump": ["a person jumps up high in the air", "then lands and kneels#then/ADV#1.0#2.0"],
    "sit": ["a person sits down on a chair"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    source = smplx_ai()
    (root / "texts").mkdir()
    for i, (name, texts) in enumerate(TEXTS.items()):
        start = 20 * i
        np.savez(
            root / f"{name}.npz",
            poses=source.poses[start : start + 90],
            trans=source.trans[start : start + 90],
            mocap_frame_rate=np.array(60.0 if name == "walk" else 30.0),
        )
        # HumanML3D keeps its texts in texts/<id>.txt.
        (root / "texts" / f"{name}.txt").write_text("\n".join(texts) + "\n")
    # Inter-X form: one folder per interaction, per-part SMPL-X keys, texts/<folder>.txt.
    (root / "G001").mkdir()
    p = source.poses[:60]
    np.savez(
        root / "G001" / "P1.npz",
        root_orient=p[:, :3],
        pose_body=p[:, 3:66],
        pose_lhand=p[:, 75:120],
        pose_rhand=p[:, 120:],
        trans=source.trans[:60],
    )
    (root / "texts" / "G001.txt").write_text("two people shake hands\n")
    np.savez(root / "broken_shape.npz", poses=np.zeros((30, 100)), trans=np.zeros((30, 3)))
    (root / "broken_shape.txt").write_text("a broken clip\n")
    np.savez(root / "no_text.npz", poses=source.poses[:30], trans=source.trans[:30])
    (root / "corrupt.npz").write_bytes(b"not a zip file")
    (root / "corrupt.txt").write_text("a corrupt file\n")
    return root


@pytest.fixture(scope="module")
def built(data, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("library")
    return out, build(data, out, shared_embedder())


def test_build_writes_clips_texts_and_index(built, data):
    out, report = built
    assert is_built_library(out)
    assert report.clips == 6 and report.texts == 7
    library = BuiltLibrary.open(out)
    assert library.names == ("G001/P1", "jump", "jump#1-2", "sit", "walk", "wave")
    assert library.embeddings.shape == (7, 384) and library.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(library.embeddings, axis=1), 1.0, atol=1e-4)
    assert "a person waves hello with the right hand" in library.texts
    frames = np.diff(library.offsets)
    # 90 frames at 60 Hz became 45 at 30 fps.
    assert frames[library.names.index("walk")] == pytest.approx(45, abs=1)
    assert frames[library.names.index("jump")] == 90
    # A HumanML3D caption tagged 1.0-2.0 s describes those 30 frames.
    assert frames[library.names.index("jump#1-2")] == 30
    assert library.clip(library.names.index("jump#1-2")).descriptions == ("then lands and kneels",)
    clip = library.clip(library.names.index("G001/P1"))
    assert clip.motion.poses.shape == (60, 165)
    # Without a frame-rate key, --fps applies (Inter-X: 120 fps).
    interx = build(data, out.parent / "interx", shared_embedder(), default_fps=120.0)
    interx_library = BuiltLibrary.open(out.parent / "interx")
    assert interx.clips == 6
    assert np.diff(interx_library.offsets)[interx_library.names.index("G001/P1")] == 15
    assert np.diff(interx_library.offsets)[interx_library.names.index("jump")] == 90
    assert np.abs(clip.motion.trans[0, [0, 2]]).max() < 1e-6


def test_bad_clips_are_reported_and_skipped(built, data):
    _, report = built
    reasons = dict(report.skipped)
    assert set(reasons) == {
        str(data / "broken_shape.npz"),
        str(data / "no_text.npz"),
        str(data / "corrupt.npz"),
    }
    assert "(T, 165)" in reasons[str(data / "broken_shape.npz")]
    assert "no texts" in reasons[str(data / "no_text.npz")]
    assert "unreadable" in reasons[str(data / "corrupt.npz")]


@pytest.mark.parametrize(
    ("text", "clip"),
    [
        ("jump into the air", "jump"),
        ("take a seat", "sit"),
        ("wave goodbye", "wave"),
        ("walk ahead", "walk"),
        ("kneel down after landing", "jump#1-2"),
        ("shake my hand", "G001/P1"),
    ],
)
def test_retrieval_returns_the_nearest_text(built, text, clip):
    out, _ = built
    retrieval = LibraryRetrieval.load(out, BUILT_IN, shared_embedder(), 0.3)
    retrieved = retrieval.retrieve(text, 2.0)
    assert retrieved.name == clip
    assert 0.2 < retrieved.score <= 1.0
    assert retrieved.motion.poses.shape == (2 * FPS, 165)


def test_top1_is_the_largest_cosine():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(1000, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    query = rows[417] + 0.01 * rng.normal(size=384).astype(np.float32)
    query /= np.linalg.norm(query)
    best, score = top1(rows, query)
    assert best == 417 and score == pytest.approx(float(rows[417] @ query), abs=1e-5)


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for path in src.iterdir():
        (dst / path.name).write_bytes(path.read_bytes())
    return dst


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d, m: m.update(clips=4), "clips.jsonl has 6 clips, manifest 4"),
        (lambda d, m: m.update(embedding_model="bge-large-en-v1.5"), "index built with bge"),
        (lambda d, m: m.update(embedding_dims=1024), "embeddings.f32"),
        (lambda d, m: (d / "embeddings.f32").write_bytes(b"\0" * 16), "embeddings.f32"),
        (lambda d, m: (d / "poses.f32").unlink(), "poses.f32"),
    ],
)
def test_mismatched_library_is_refused_at_start(built, tmp_path, change, message):
    library = _copy(built[0], tmp_path / "lib")
    manifest = json.loads((library / "manifest.json").read_text())
    change(library, manifest)
    (library / "manifest.json").write_text(json.dumps(manifest))
    engine = MotionEngine(MotionSettings(library_dir=library), shared_embedder())
    with pytest.raises(EngineUnavailable, match=message):
        engine.load()


def test_engine_serves_a_built_library(built):
    engine = MotionEngine(MotionSettings(library_dir=built[0]), shared_embedder())
    engine.load()
    engine.warmup()
    assert engine.text_to_motion("a person jumping", 1.0).name == "jump"


def test_cli_build(data, tmp_path, capsys):
    assert main([str(data), "--out", str(tmp_path / "lib")]) == 0
    assert "6 clips" in capsys.readouterr().out
    assert BuiltLibrary.open(tmp_path / "lib").names[0] == "G001/P1"


def test_solami_cli_subcommand(data, tmp_path):
    from solami_cli.main import main as solami

    assert solami(["motion", "library", "build", str(data), "--out", str(tmp_path / "lib")]) == 0
    assert is_built_library(tmp_path / "lib")


def _tiny_cls_model(directory: Path) -> Path:
    """A BERT of random weights in the sentence-transformers layout with CLS pooling (as
    BGE-large), with MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from services.motion.backends.retrieval import packaged_model_dir

    directory.mkdir()
    source = packaged_model_dir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (directory / name).write_bytes((source / name).read_bytes())
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(directory)
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": True})
    )
    return directory


def test_a_library_built_with_another_model_needs_that_model(data, tmp_path):
    import torch

    from services.motion.backends.retrieval import TextEmbedder

    model_dir = _tiny_cls_model(tmp_path / "tiny-bge")
    embedder = TextEmbedder(model_dir)
    embedder.load()
    vector = embedder.embed(["a person jumps"])[0]
    batch = embedder._tokenizer(["a person jumps"], return_tensors="pt")
    with torch.inference_mode():
        cls = embedder._model(**batch).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(vector, cls / np.linalg.norm(cls), atol=1e-5)
    report = build(data, tmp_path / "lib", embedder)
    library = BuiltLibrary.open(tmp_path / "lib")
    assert library.embedding_model == "tiny-bge" and library.embeddings.shape == (report.texts, 32)
    assert LibraryRetrieval.load(tmp_path / "lib", BUILT_IN, embedder, 0.3).retrieve("jump", 1.0)
    engine = MotionEngine(MotionSettings(library_dir=tmp_path / "lib"), shared_embedder())
    with pytest.raises(EngineUnavailable, match=r"tiny-bge \(32 dims.*all-MiniLM-L6-v2 \(384"):
        engine.load()
