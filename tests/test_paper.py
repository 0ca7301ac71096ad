"""benchmarks/paper.py: verdicts computed from the curves the benchmarks save as data."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import common  # noqa: E402
import paper  # noqa: E402


def _curves(rng, start, end, rows=32, episodes=50, noise=0.3):
    """Returns rising linearly from ``start`` to ``end`` over the episodes, plus noise."""
    return np.linspace(start, end, episodes)[None] + noise * rng.standard_normal((rows, episodes))


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("AD_GYM_BENCH_RESULTS", str(tmp_path))
    return tmp_path


def test_results_round_trip_without_pickles(results):
    curves = {"AD": np.arange(6.0).reshape(2, 3), "source (A2C, from scratch)": np.ones((1, 3))}
    common.save_results("x", "# x\n", curves, {"n_tasks": 2})
    loaded, meta = common.load_results("x")
    assert (results / "x.md").read_text() == "# x\n"
    assert meta == {"n_tasks": 2} and set(loaded) == set(curves)
    np.testing.assert_allclose(loaded["AD"], curves["AD"])
    with np.load(results / "x.npz", allow_pickle=False) as data:  # plain arrays only
        assert all(data[k].dtype != object for k in data.files)


def test_in_context_verdicts_follow_the_curves(results):
    rng = np.random.default_rng(0)
    common.save_results("rising", "", {"AD": _curves(rng, 1, 14), "ED": _curves(rng, 1, 1)})
    common.save_results("flat", "", {"AD": _curves(rng, 1, 1), "ED": _curves(rng, 1, 1)})
    assert paper.in_context_claim("rising", "Dark Room", "", results).verdict == "holds"
    assert paper.in_context_claim("flat", "Dark Room", "", results).verdict.startswith("does not hold")
    assert paper.in_context_claim("absent", "Dark Room", "", results).verdict.startswith("not measured")


def test_context_and_prompt_verdicts(results):
    rng = np.random.default_rng(1)
    common.save_results("context_darkroom", "", {
        "AD, context 1 episode (20 steps)": _curves(rng, 1, 3),
        "AD, context 4 episodes (80 steps)": _curves(rng, 1, 13),
    })
    common.save_results("context_keytodoor_v1", "", {
        "AD, context 1 episode (50 steps)": _curves(rng, 1, 1.8),
        "AD, context 4 episodes (200 steps)": _curves(rng, 1, 1.8),
    })
    dark_room, key_to_door = paper.context_claims(results)
    assert dark_room.verdict == "holds" and key_to_door.verdict.startswith("does not hold")

    common.save_results("prompt_darkroom", "", {
        "AD, suboptimal prompt": _curves(rng, 0.5, 13), "ED, suboptimal prompt": _curves(rng, 1.5, 1.6),
    }, {"prompt_levels": {"suboptimal": 0.4}})
    assert paper.prompt_claim(results).verdict.startswith("holds")


def test_compose_writes_every_section(results):
    text = paper.compose(results, {"darkroom": 1.5})
    for section in ("In-context RL", "Dark Room Hard", "RL²", "Any source distilled", "Suboptimal prompt", "Context length"):
        assert f"## {section}" in text
    assert "darkroom 1.5" in text and "not measured" in text


def test_ad_ps_rows_are_reported_and_named_in_the_verdicts(results):
    rng = np.random.default_rng(2)
    flat, rising = _curves(rng, 1, 1), _curves(rng, 0.1, 1.9, episodes=100, noise=0.1)
    common.save_results("keytodoor_v1_default", "", {"AD": flat, "AD-PS": rising[:, :50], "ED": _curves(rng, 0.2, 0.2, noise=0.1)})
    claim = paper.in_context_claim("keytodoor_v1_default", "Key-to-Door", "", results)
    assert "AD-PS" in claim.ours and claim.ours.startswith("default preset") and claim.verdict == "holds for AD-PS (not for AD)"
    source = "source (A2C, from scratch)"
    hard = {"AD": _curves(rng, 0.05, 0.3, episodes=100, noise=0.1), "AD-PS": rising / 1.9, "ED": _curves(rng, 0.05, 0.05, episodes=100, noise=0.05),
            source: _curves(rng, 0.05, 0.2, episodes=100, noise=0.1)}
    common.save_results("darkroomhard_default", "", hard, {"source": source})
    claim = paper.hard_claim(results)
    assert claim.verdict.startswith("holds for AD-PS; AD ") and "below 0.6" in claim.verdict and "default preset" in claim.ours
    common.save_results("darkroomhard_full", "", {**hard, "AD-PS": hard["AD"]}, {"source": source})  # the full run wins
    claim = paper.hard_claim(results)
    assert claim.ours.startswith("full preset") and claim.verdict.startswith("does not hold")


def test_source_verdicts_ask_above_on_dark_room_and_level_on_the_bandit(results):
    rng = np.random.default_rng(4)
    for name, source, ad in (("sources_darkroom", "source (A2C, from scratch)", _curves(rng, 1, 14)),
                             ("sources_bandit", "source (UCB, from scratch)", _curves(rng, 40, 65))):
        own = _curves(rng, 1, 4) if name == "sources_darkroom" else _curves(rng, 40, 65)
        algo = source.split("(")[1].split(",")[0]
        common.save_results(name, "", {f"AD from {algo}": ad, source: own, f"{source}, whole run": own}, {"optimal": 16.0})
    dark_room, bandit = paper.source_claims(results)
    assert dark_room.claim == "Dark Room: AD distils A2C, above its source" and dark_room.verdict == "holds"
    assert bandit.claim == "Adversarial Bandit: AD distils UCB, level with its source" and bandit.verdict == "holds"
    common.save_results("sources_bandit", "", {"AD from UCB": _curves(rng, 30, 30), "source (UCB, from scratch)": own,
                                               "source (UCB, from scratch), whole run": own})
    assert paper.source_claims(results)[1].verdict == "does not hold"  # clearly below UCB


def test_the_context_claim_reads_the_method_it_varied(results):
    rng = np.random.default_rng(3)
    common.save_results("context_keytodoor_v1", "", {
        "AD-PS, context 1 episode (50 steps)": _curves(rng, 1, 1.2),
        "AD-PS, context 4 episodes (200 steps)": _curves(rng, 1, 1.9),
    }, {"method": "AD-PS"})
    claim = paper.context_claims(results)[1]
    assert claim.ours.startswith("AD-PS, eps 41-50: 1 episode") and claim.verdict == "holds"


def test_each_experiments_minutes_are_kept_across_runs(results):
    assert paper.recorded_minutes(results, {}) == {}
    paper.recorded_minutes(results, {"context": 2.04})
    assert paper.recorded_minutes(results, {"darkroom": 1.0}) == {"darkroom": 1.0, "context": 2.0}  # experiments' order
    assert "darkroom 1.0, context 2.0" in paper.compose(results, paper.recorded_minutes(results, {}))
