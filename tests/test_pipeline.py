"""The whole pipeline end to end on a tiny budget: collect, train AD and ED, evaluate, report."""

import dataclasses
import json
import os

import numpy as np
import pytest

from ad_gym.checkpoints import load_checkpoint
from ad_gym.cli import main
from ad_gym.data.histories import load_histories
from ad_gym.envs.tasks import family
from ad_gym.presets import PRESETS, Preset, ad_and_ed
from ad_gym.pipeline import run_pipeline
from ad_gym.sources.sb3 import SourceConfig
from tests.conftest import TINY_TRAIN

TINY_PRESET = Preset(
    source=SourceConfig(n_streams=2, total_steps=1200), methods=ad_and_ed(TINY_TRAIN, expert_episodes=5),
    eval_episodes=12, eval_seeds=(0, 1), train_tasks=2, test_tasks=2,
)


@pytest.mark.parametrize(
    "env_id", ["DarkRoom-v0", "DarkKeyToDoor-v0", "AdversarialBandit-v0", "Watermaze-v0", "Watermaze-v1"]
)
def test_tiny_pipeline_end_to_end(env_id, tmp_path):
    algo = family(env_id).default_source
    preset = dataclasses.replace(TINY_PRESET, source=dataclasses.replace(TINY_PRESET.source, algo=algo))
    if algo == "ucb":  # independent UCB learners: each stream must play the 12 evaluated episodes itself
        preset = dataclasses.replace(
            preset, source=dataclasses.replace(preset.source, total_steps=2400),
            methods=ad_and_ed(TINY_TRAIN, expert_episodes=5, expert_source=SourceConfig(algo="oracle", n_streams=1, total_steps=500)),
        )
    result = run_pipeline(env_id, preset, tmp_path, workers=1, progress=False)
    assert set(result.curves) == {"AD", "ED", f"source ({algo.upper()}, from scratch)", "random", "oracle (task known)"}
    assert set(result.curves_by_split) == set(family(env_id).eval_splits)
    assert result.curves["AD"].shape == (2 * 2, 12)  # 2 held-out tasks x 2 seeds, 12 episodes
    oracle = result.curves["oracle (task known)"]
    assert oracle.mean() == max(c.mean() for c in result.curves.values()) and oracle.min() > 0
    if env_id != "AdversarialBandit-v0":  # deterministic rewards: optimal from episode 1
        assert (oracle == oracle[:, :1]).all()
    for name in ("leaderboard.md", "returns.png", "returns.npz", "ad/checkpoint.pt", "ed/checkpoint.pt"):
        assert (tmp_path / name).is_file(), name
    assert "| AD |" in result.table and "ep 10" in result.table
    saved = np.load(tmp_path / "returns.npz")
    np.testing.assert_array_equal(saved["AD"], result.curves["AD"])
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert set(board["splits"]) == set(result.curves_by_split)
    for split, curves in result.curves_by_split.items():
        for name, returns in curves.items():
            entry = board["splits"][split]["methods"][name]
            np.testing.assert_allclose(entry["mean"], returns.mean(axis=0))
            assert entry["rows"] == len(returns) and set(entry["iqm"]) == {"1", "5", "10"}
    assert [m["method"] for m in board["settings"]["methods"]] == ["AD", "ED"]
    assert board["settings"]["methods"][0]["config"]["updates"] == preset.methods[0].config.updates
    source = result.curves[f"source ({algo.upper()}, from scratch)"]
    # One row per learner: SB3 streams share one learner per task, UCB streams are learners of their own.
    assert source.shape == ((2 * 2, 12) if algo == "ucb" else (2, 12))
    assert (tmp_path / "histories" / "expert-train").is_dir() == (algo == "ucb")
    assert result.methods == ("AD", "ED") and result.source == f"source ({algo.upper()}, from scratch)"


def test_rerun_resumes_without_redoing_anything(tmp_path):
    run_pipeline("DarkRoom-v0", TINY_PRESET, tmp_path, workers=1, progress=False)
    stamp = (tmp_path / "ad" / "checkpoint.pt").stat().st_mtime_ns
    again = run_pipeline("DarkRoom-v0", TINY_PRESET, tmp_path, workers=1, progress=False)
    assert (tmp_path / "ad" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert again.seconds["train AD"] < 5


def test_unknown_preset_is_a_clear_error(capsys):
    assert "default" in PRESETS["DarkRoom-v0"]
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "DarkRoom-v0", "--preset", "nope"])
    assert exit_info.value.code == 2
    assert "no preset 'nope'" in capsys.readouterr().err


def test_too_short_expert_slice_fails_before_any_training(tmp_path):
    # 2 Dark Room episodes are 40 tokens, shorter than one 60-token training sequence.
    preset = dataclasses.replace(TINY_PRESET, methods=ad_and_ed(TINY_TRAIN, expert_episodes=2))
    with pytest.raises(ValueError, match="ED training data .* shorter than the training sequence"):
        run_pipeline("DarkRoom-v0", preset, tmp_path, workers=1, progress=False)
    assert (tmp_path / "histories" / "train").is_dir()  # collection ran...
    assert not (tmp_path / "ad").exists()  # ...and AD training never started


def test_several_learners_per_train_task(tmp_path):
    preset = dataclasses.replace(TINY_PRESET, train_learners=2)
    run_pipeline("DarkRoom-v0", preset, tmp_path, workers=1, progress=False)
    first, second = (load_histories(tmp_path / "histories" / name) for name in ("train", "train-learner2"))
    assert [h.task for h in first] == [h.task for h in second]  # the same tasks, other learners
    assert [h.metadata["seed"] for h in first + second] == [0, 0, 1, 1]
    assert not (first[0].actions == second[0].actions).all()
    meta, _ = load_checkpoint(tmp_path / "ad" / "checkpoint.pt")
    assert len(meta["train_tasks"]) == 4  # AD trained on both learners' histories
    assert sorted(p.name for p in (tmp_path / "histories").iterdir()) == ["test", "train", "train-learner2"]
    with pytest.raises(ValueError, match="train_learners must be a positive integer"):
        dataclasses.replace(TINY_PRESET, train_learners=0)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_methods_trained_side_by_side_match_one_at_a_time(tmp_path):
    # Two processes, one core each, against one method at a time (TINY_TRAIN: one thread): the same models.
    alone = run_pipeline("DarkRoom-v0", TINY_PRESET, tmp_path / "alone", workers=1, progress=False)
    side = run_pipeline("DarkRoom-v0", TINY_PRESET, tmp_path / "side", workers=2, progress=False)
    assert list(side.seconds) == ["collect source", "train 2 methods, 2 side by side", "evaluate"]
    assert set(side.side_by_side) == {"train AD", "train ED"}
    for slug in ("ad", "ed"):
        _, weights_alone = load_checkpoint(tmp_path / "alone" / slug / "checkpoint.pt")
        _, weights_side = load_checkpoint(tmp_path / "side" / slug / "checkpoint.pt")
        for name, tensor in weights_alone["model"].items():
            assert (tensor == weights_side["model"][name]).all(), name
    np.testing.assert_array_equal(alone.curves["AD"], side.curves["AD"])


def test_methods_go_side_by_side_only_when_the_work_spreads():
    from ad_gym.pipeline import _worth_splitting, core_slots

    cores = len(os.sched_getaffinity(0))
    assert core_slots(3, workers=1) == [tuple(sorted(os.sched_getaffinity(0)))]  # one process, every core
    slots = core_slots(5, workers=None)
    assert len(slots) == min(cores, 5) and sorted(c for s in slots for c in s) == sorted(os.sched_getaffinity(0))
    ad, ed = ad_and_ed(dataclasses.replace(TINY_TRAIN, updates=2000), expert_updates=500)
    assert not _worth_splitting([ad, ed])  # AD is 80% of the work: one at a time on every core is faster
    assert _worth_splitting([ad, ed, dataclasses.replace(ad, config=dataclasses.replace(ad.config, updates=1500))])
