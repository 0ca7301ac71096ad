"""The whole Algorithm Distillation pipeline for one env, from a named preset:

    collect histories (train and held-out tasks) -> train AD and ED -> evaluate in context

Every stage writes under one folder and resumes: rerunning a pipeline skips what is finished.

    run_pipeline("DarkRoom-v0", "default", "runs/darkroom")
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ad_gym.agents import ADAgent, RandomAgent, oracle_for
from ad_gym.atomic import atomic_write
from ad_gym.data.histories import load_histories
from ad_gym.envs.tasks import canonical_env_id, family, tasks
from ad_gym.evaluation import leaderboard_table, learner_episode_returns, normalised_table, play_episodes, plot_curves
from ad_gym.sources.collect import collect
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.stages import StageMeter
from ad_gym.training import TrainConfig, check_training_data, train


@dataclass
class Preset:
    """Everything a pipeline run needs besides the env: source, AD training, ED, evaluation."""

    source: SourceConfig
    train: TrainConfig
    expert_episodes: int | None = 20  # ED trains on each stream's last N episodes (None: all of them)
    # Where ED's expert episodes come from. None: the source's own histories (their converged
    # end). A SourceConfig (e.g. algo "oracle"): histories recorded with it on the train tasks,
    # for sources that never converge to an expert within their budget (UCB keeps exploring).
    expert_source: SourceConfig | None = None
    expert_updates: int | None = None  # ED's training length (default: AD's); its data is easy to fit
    eval_episodes: int = 100
    eval_seeds: tuple[int, ...] = (0, 1, 2, 3)
    train_tasks: int | None = None  # only the first N tasks of the train split (default: all)
    # Independent source learners per train task (collection seeds seed, seed + 1, ...): AD sees
    # several learning histories of each task, which it otherwise memorises when tasks are few.
    # Held-out tasks keep one learner, so the source's curve there is unchanged.
    train_learners: int = 1
    test_tasks: int | None = None  # only the first N held-out tasks, for collection and evaluation
    notes: str = ""

    def __post_init__(self):
        if isinstance(self.train_learners, bool) or not isinstance(self.train_learners, int) or self.train_learners < 1:
            raise ValueError(f"train_learners must be a positive integer, got {self.train_learners!r}")

    def expert_config(self) -> TrainConfig:
        return dataclasses.replace(
            self.train, expert_episodes=self.expert_episodes, every_k=1, max_episodes=None,
            updates=self.expert_updates or self.train.updates,
        )


# Dark Room recipe (benchmarks/results/darkroom_recipe.md has the measurements behind it): the
# SB3 A2C source's per-stream histories, every 4th episode, the first 25 kept (the source's
# learning phase: 100 of its episodes), a 200-token banded context (10 kept episodes), 300-token
# training sequences, no dropout. Only the first 100 episodes per stream are used, so the
# source is run for 8 streams x 100 episodes x 20 steps = 16k steps per task.
_DARK_ROOM_SOURCE = SourceConfig(algo="a2c", n_streams=8, total_steps=16_000)
_DARK_ROOM_TRAIN = TrainConfig(updates=2000)  # TrainConfig's defaults are this recipe

# Adversarial Bandit: UCB, 4 independent streams per task, 10 episodes (1000 pulls) each; its
# statistics carry over between episodes, so each stream is one learning history over 10
# episodes. UCB learns fastest in its first episodes, so AD keeps every episode of the first 5
# and a 200-token context holds two episodes. UCB never stops exploring, so its late episodes
# are no expert: ED learns from the oracle's demonstrations (always the best arm), as the
# paper's expert distillation does, which is why it cannot adapt to a new condition.
_BANDIT_SOURCE = SourceConfig(algo="ucb", n_streams=4, total_steps=4000)
_BANDIT_TRAIN = TrainConfig(every_k=1, max_episodes=5, updates=2000)
_BANDIT_EXPERT = SourceConfig(algo="oracle", n_streams=1, total_steps=500)

# Dark Key-to-Door: A2C on the has-key wrapper, 32 streams sharing one learner, 1000 steps
# (at least 20 episodes) per stream; with 32 streams the learner finds the key within ~5
# episodes per stream and the door within ~15. AD keeps every episode of the first 20; ED the
# last 20 (return ~1.9 of 2; the last 5 alone are shorter than one 300-token training
# sequence). Measured: 200 or 1000 train tasks give the same AD curve at this training length,
# so 600 keep collection short.
_KEY_TO_DOOR_SOURCE = SourceConfig(algo="a2c", n_streams=32, total_steps=32_000)
_KEY_TO_DOOR_TRAIN = TrainConfig(every_k=1, max_episodes=20, updates=3000)

# Dark Key-to-Door v1 (episodes never end at the door, so the door cell is observed and a
# 200-token context is exactly 4 episodes, as in the paper): the same A2C learner run for 2000
# steps (40 episodes) per stream, all 40 episodes kept, and long training: measured on 300
# train tasks, AD at episode 100 went from 1.09 (2000 updates) to 1.39 (5000 updates), and the
# full preset's 10,000 updates on 600 reach 1.55; the extra updates buy the door's recall
# (benchmarks/results/keytodoor_recipe.md).
_KEY_TO_DOOR_V1_SOURCE = SourceConfig(algo="a2c", n_streams=32, total_steps=64_000)
_KEY_TO_DOOR_V1_TRAIN = TrainConfig(every_k=1, max_episodes=None, updates=5000, warmup=200)

# Watermaze: PPO with the SmallCNN on pixels, 8 streams sharing one learner, 2000 steps (at
# least 40 episodes) per stream; the learner finds most platforms within ~10-20 episodes per
# stream, and on some it later collapses, so ED learns from the oracle's optimal paths instead
# of the source's last episodes. AD keeps every episode of the first 30.
_WATERMAZE_SOURCE = SourceConfig(algo="ppo", n_streams=8, total_steps=16_000)
_WATERMAZE_TRAIN = TrainConfig(every_k=1, max_episodes=30, updates=2000)
# 600 steps: even the platform one step ahead gives a stream longer than a training sequence.
_WATERMAZE_EXPERT = SourceConfig(algo="oracle", n_streams=1, total_steps=600)

# Watermaze v1 (compass moves): PPO updated more often and harder (16-step rollouts, 10 epochs)
# so it learns within a few episodes per stream, 16 streams, 800 steps each; AD keeps each
# stream's first 30 episodes. Measured with the same AD training: held-out success in episodes
# 31-40 0.40 (v0 with its own recipe: 0.26), recall 0.71 (0.40); benchmarks/results/watermaze_recipe.md.
_WATERMAZE_V1_PPO = SourceConfig(algo="ppo", n_streams=16, total_steps=12_800, hyperparams={"n_steps": 16, "n_epochs": 10})
# default: the same PPO with an entropy bonus of 0.2. Its streams keep a stochastic policy, so
# their histories hold failed returns and recoveries (P(success | success) 0.96 instead of 0.98)
# and exploration closer to a random walk; AD distilled from them goes back to a found platform
# 0.92 of the time (0.77 without the bonus), benchmarks/results/watermaze_recipe.md.
_WATERMAZE_V1_SOURCE = dataclasses.replace(_WATERMAZE_V1_PPO, hyperparams={**_WATERMAZE_V1_PPO.hyperparams, "ent_coef": 0.2})
# Each token also embeds the previous view (prev_obs), so the token that carries a platform's
# reward also holds the view it was earned from: 31-40 success 0.40 -> 0.49, recall 0.71 -> 0.78.
_WATERMAZE_V1_TRAIN = dataclasses.replace(_WATERMAZE_TRAIN, prev_obs=True, final_obs=True)
# full: the default's source and model with two PPO learners per training platform (AD otherwise
# memorises the 64 platforms: its held-out loss climbs), 5000 updates, 8 evaluation seeds.
_WATERMAZE_V1_FULL_TRAIN = dataclasses.replace(_WATERMAZE_V1_TRAIN, updates=5000, warmup=200)

PRESETS: dict[str, dict[str, Preset]] = {
    "DarkRoom-v0": {
        "default": Preset(source=_DARK_ROOM_SOURCE, train=_DARK_ROOM_TRAIN, notes="2-core CPU, <= 30 minutes in all"),
        "full": Preset(
            source=_DARK_ROOM_SOURCE,
            train=dataclasses.replace(_DARK_ROOM_TRAIN, updates=5000, warmup=200),
            expert_updates=1500,
            notes="2-core CPU, <= 90 minutes in all",
        ),
    },
    "DarkKeyToDoor-v0": {
        "default": Preset(
            source=_KEY_TO_DOOR_SOURCE, train=_KEY_TO_DOOR_TRAIN, expert_episodes=20, expert_updates=1000,
            eval_seeds=(0, 1), train_tasks=600, test_tasks=40, notes="2-core CPU, <= 45 minutes in all",
        ),
    },
    "DarkKeyToDoor-v1": {
        "default": Preset(
            source=_KEY_TO_DOOR_V1_SOURCE, train=_KEY_TO_DOOR_V1_TRAIN, expert_episodes=20, expert_updates=1000,
            eval_seeds=(0, 1), train_tasks=300, test_tasks=40, notes="2-core CPU, <= 45 minutes in all",
        ),
        "full": Preset(
            source=_KEY_TO_DOOR_V1_SOURCE, train=dataclasses.replace(_KEY_TO_DOOR_V1_TRAIN, updates=10_000),
            expert_episodes=20, expert_updates=1000, eval_seeds=(0, 1), train_tasks=600, test_tasks=40,
            notes="2-core CPU, <= 90 minutes in all",
        ),
    },
    "Watermaze-v0": {
        "default": Preset(
            source=_WATERMAZE_SOURCE, train=_WATERMAZE_TRAIN, expert_source=_WATERMAZE_EXPERT, expert_episodes=None,
            expert_updates=500, eval_episodes=50, notes="2-core CPU, <= 45 minutes in all",
        ),
    },
    "Watermaze-v1": {
        "default": Preset(
            source=_WATERMAZE_V1_SOURCE, train=_WATERMAZE_V1_TRAIN, expert_source=_WATERMAZE_EXPERT, expert_episodes=None,
            expert_updates=500, eval_episodes=50, notes="2-core CPU, <= 45 minutes in all",
        ),
        "full": Preset(
            source=_WATERMAZE_V1_SOURCE, train=_WATERMAZE_V1_FULL_TRAIN, train_learners=2, expert_source=_WATERMAZE_EXPERT,
            expert_episodes=None, expert_updates=500, eval_episodes=50, eval_seeds=tuple(range(8)),
            notes="2-core CPU, <= 90 minutes in all",
        ),
    },
    "AdversarialBandit-v0": {
        "default": Preset(
            source=_BANDIT_SOURCE, train=_BANDIT_TRAIN, expert_source=_BANDIT_EXPERT, expert_episodes=5,
            expert_updates=500,
            eval_episodes=10, eval_seeds=(0, 1), test_tasks=50, notes="2-core CPU, <= 45 minutes in all",
        ),
        # All 10 episodes of UCB's histories (AD also learns how UCB exploits later), twice the
        # updates, every task of every condition with 4 seeds.
        "full": Preset(
            source=_BANDIT_SOURCE, train=dataclasses.replace(_BANDIT_TRAIN, max_episodes=10, updates=4000),
            expert_source=_BANDIT_EXPERT, expert_episodes=5, expert_updates=500, eval_episodes=10,
            notes="2-core CPU, <= 90 minutes in all",
        ),
    },
}


def get_preset(env_id: str, name: str) -> Preset:
    env_id = canonical_env_id(env_id)
    presets = PRESETS.get(env_id, {})
    if name not in presets:
        raise ValueError(f"no preset {name!r} for {env_id}; available: {sorted(presets)}")
    return presets[name]


@dataclass
class PipelineResult:
    curves: dict[str, np.ndarray]  # method -> (rows, episodes) returns on the held-out "test" tasks
    table: str  # markdown: every evaluation split's table (and normalised scores for bandits)
    seconds: dict[str, float] = field(default_factory=dict)
    out: Path | None = None
    curves_by_split: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    peak_gib: dict[str, float] = field(default_factory=dict)  # peak resident memory per stage


def run_pipeline(
    env_id: str,
    preset: str | Preset = "default",
    out: str | os.PathLike | None = None,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> PipelineResult:
    env_id = canonical_env_id(env_id)
    preset_name = preset if isinstance(preset, str) else "custom"
    preset = get_preset(env_id, preset) if isinstance(preset, str) else preset
    out = Path(out or f"runs/{env_id}-{preset_name}")
    eval_splits = family(env_id).eval_splits
    meter = StageMeter()

    train_dirs = [out / "histories" / ("train" if k == 0 else f"train-learner{k + 1}") for k in range(preset.train_learners)]
    with meter.stage("collect"):
        for learner, folder in enumerate(train_dirs):
            collect(
                env_id, folder, split="train", config=preset.source, seed=seed + learner, max_tasks=preset.train_tasks,
                workers=workers, progress=progress,
            )
        for split in eval_splits:
            collect(
                env_id, out / "histories" / split, split=split, config=preset.source, seed=seed,
                max_tasks=preset.test_tasks, workers=workers, progress=progress,
            )

        if preset.expert_source is not None:
            collect(
                env_id, out / "histories" / "expert", split="train", config=preset.expert_source, seed=seed,
                max_tasks=preset.train_tasks, workers=workers, progress=progress,
            )

    provenance = {"pipeline": {"env_id": env_id, "preset": preset_name, "seed": seed}}
    train_dir, test_dir = train_dirs[0], out / "histories" / "test"
    expert_dir = out / "histories" / "expert" if preset.expert_source is not None else train_dir
    ad_config = dataclasses.replace(preset.train, seed=seed)
    ed_config = dataclasses.replace(preset.expert_config(), seed=seed)
    check_pipeline_data({("AD", "training"): (train_dirs, ad_config), ("AD", "validation"): (test_dir, ad_config),
                         ("ED", "training"): (expert_dir, ed_config), ("ED", "validation"): (test_dir, ed_config)})
    with meter.stage("train AD"):
        ad_path = train(train_dirs, out / "ad", ad_config, val_path=test_dir, progress=progress, provenance=provenance)
    with meter.stage("train ED"):
        ed_path = train(expert_dir, out / "ed", ed_config, val_path=test_dir, progress=progress, provenance=provenance)

    with meter.stage("evaluate"):
        curves_by_split = {
            split: evaluate_methods(env_id, ad_path, ed_path, out / "histories" / split, preset, split, progress=progress)
            for split in eval_splits
        }
    seconds = meter.seconds
    table = leaderboard_tables(env_id, curves_by_split)
    write_results(out, env_id, preset_name, curves_by_split, table, meter)
    return PipelineResult(
        curves=curves_by_split["test"], table=table, seconds=seconds, out=out, curves_by_split=curves_by_split,
        peak_gib=meter.peak_gib,
    )


def check_pipeline_data(data: dict[tuple[str, str], tuple[Path, TrainConfig]]) -> None:
    """Fail before any training when a model's data slice yields no training sequence."""
    for (model, role), (path, config) in data.items():
        try:
            check_training_data(path, config)
        except ValueError as error:
            raise ValueError(f"{model} {role} data in {path}: {error}") from error


def source_label(algo: str) -> str:
    return f"source ({algo.upper()}, from scratch)"


def evaluate_methods(
    env_id, ad_path, ed_path, histories_dir, preset: Preset, split: str = "test", progress=False
) -> dict[str, np.ndarray]:
    """Returns per episode on ``split`` of AD, ED, the source learning from scratch, random and oracle."""
    eval_tasks = tasks(env_id, split)[: preset.test_tasks]
    n, seeds = preset.eval_episodes, list(preset.eval_seeds)
    curves = {}
    for name, path in (("AD", ad_path), ("ED", ed_path)):
        agent = ADAgent.load(path, env_id=env_id, seed=0)
        curves[name] = play_episodes(lambda rows: agent, env_id, eval_tasks, n, seeds, progress=progress)
    source = [learner_episode_returns(h) for h in load_histories(histories_dir, env_id=env_id)]
    width = min(n, min(s.shape[1] for s in source))
    curves[source_label(preset.source.algo)] = np.concatenate([s[:, :width] for s in source])
    curves["random"] = play_episodes(lambda rows: RandomAgent.for_env(env_id, seed=0), env_id, eval_tasks, n, seeds)
    curves["oracle (task known)"] = play_episodes(lambda rows: oracle_for(env_id, rows), env_id, eval_tasks, n, seeds)
    return curves


def leaderboard_tables(env_id: str, curves_by_split: dict[str, dict[str, np.ndarray]]) -> str:
    """One returns table per evaluation split; bandits add scores normalised against UCB and random."""
    if list(curves_by_split) == ["test"]:
        return leaderboard_table(curves_by_split["test"])
    parts = []
    for split, curves in curves_by_split.items():
        parts += [f"**{split}** tasks: returns", "", leaderboard_table(curves), ""]
        reference = next((name for name in curves if name.startswith("source")), None)
        if reference:
            parts += [f"**{split}** tasks: score normalised as (r - random) / ({reference} - random)", "",
                      normalised_table(curves, reference), ""]
    return "\n".join(parts).rstrip()


def write_results(out: Path, env_id: str, preset: str, curves_by_split, table: str, meter: StageMeter) -> None:
    """The run's results, each file written atomically."""
    for split, curves in curves_by_split.items():
        suffix = "" if split == "test" else f"_{split}"
        atomic_write(out / f"returns{suffix}.npz", lambda f, curves=curves: np.savez_compressed(f, **curves))
        atomic_write(out / f"returns{suffix}.png", lambda f, curves=curves, split=split: plot_curves(
            curves, f, f"{env_id}, {split} tasks, preset {preset}"))
    text = f"# {env_id}: in-context returns on held-out tasks\n\n{table}\n\nCost: {meter.summary()}\n"
    atomic_write(out / "leaderboard.md", lambda f: f.write(text.encode()))
    timing = json.dumps({"seconds": meter.seconds, "peak_gib": meter.peak_gib}, indent=2)
    atomic_write(out / "timing.json", lambda f: f.write(timing.encode()))
