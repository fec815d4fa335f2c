"""Our SoundStorm against the original SOLAMI/AnyGPT class: a tiny model built and run by the
original code (tests/fixtures/soundstorm/README.md says how) loads strictly through our loader,
and seeded decoding gives the original's tokens exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.tts.backends.soundstorm import SoundStorm, load_soundstorm

FIXTURES = Path(__file__).parent / "fixtures" / "soundstorm"
CASES = torch.load(FIXTURES / "cases.pt", weights_only=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def original_weights() -> SoundStorm:
    return load_soundstorm(FIXTURES, "SoundStorm.pt")


def test_original_state_dict_loads_strictly(original_weights):
    saved = torch.load(FIXTURES / "SoundStorm.pt", weights_only=True)
    ours = original_weights.state_dict()
    assert list(ours) == list(saved)
    assert all(torch.equal(ours[k], saved[k]) for k in saved)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c['seed']}-{c['kwargs']}")
def test_seeded_decoding_gives_the_original_tokens(original_weights, case):
    options = case["kwargs"]
    codes = original_weights.generate(
        case["semantic"],
        case["prompt"],
        options["steps"],
        greedy=options["greedy"],
        top_k_threshold=options.get("topk_pres", 0.7),
        sampled_levels=options.get("num_full_sampling_levels", 1),
        generator=torch.Generator().manual_seed(case["seed"]),
    )
    assert torch.equal(codes, case["output"])


def test_the_solami_call_is_the_default(original_weights):
    """SOLAMI's call (vc_steps 4, greedy, top-k 0.7, one sampled level) with the same seed."""
    case = CASES[0]
    assert case["kwargs"] == {"steps": 4, "greedy": True} and case["seed"] == 0
    assert torch.equal(original_weights.generate(case["semantic"], case["prompt"]), case["output"])
