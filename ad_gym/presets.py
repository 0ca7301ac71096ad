"""Named presets: everything a pipeline run needs besides the env, as data.

A preset names the source learner, the methods to train and compare (each a `Method` with its own
settings), and the evaluation. `ad-gym run ENV --preset NAME` runs one; `get_preset` looks one up.
The figures behind each recipe are in benchmarks/results/ (named in the comments).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ad_gym.envs.tasks import canonical_env_id
from ad_gym.methods.ad import AD
from ad_gym.methods.ad_eps import ADEps
from ad_gym.methods.ad_ps import EXPLORER, ADPS
from ad_gym.methods.base import Method
from ad_gym.methods.dpt import DPT
from ad_gym.methods.ed import ED
from ad_gym.methods.rl2 import RL2, RL2Config
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.training import TrainConfig


@dataclass
class Preset:
    """The source, the methods and the evaluation of a pipeline run."""

    source: SourceConfig
    methods: tuple[Method, ...]
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
        self.methods = tuple(self.methods)
        if not self.methods or not all(isinstance(m, Method) for m in self.methods):
            raise TypeError(f"methods must be one or more Method instances (ad_gym.methods), got {self.methods!r}")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"each method may appear once in a preset, got {names}")

    def to_dict(self) -> dict:
        """Every setting as JSON-ready data; each method named, with its settings."""
        data = dataclasses.asdict(self)  # methods become their fields alone: name them
        data["methods"] = [{"method": m.name, **dataclasses.asdict(m)} for m in self.methods]
        return data


def _updates(method: Method, updates: int) -> Method:
    """``method`` trained ``updates`` times, all else equal."""
    return dataclasses.replace(method, config=dataclasses.replace(method.config, updates=updates))


def ad_and_ed(train: TrainConfig, expert_episodes: int | None = 20, expert_updates: int | None = None,
              expert_source: SourceConfig | None = None) -> tuple[Method, Method]:
    """AD on the source's histories and its control, ED, trained ``expert_updates`` times (default: AD's)."""
    expert = dataclasses.replace(train, updates=expert_updates or train.updates)
    return AD(train), ED(expert, expert_episodes=expert_episodes, expert_source=expert_source)


# Dark Room recipe (benchmarks/results/darkroom_recipe.md has the measurements behind it): the
# SB3 A2C source's per-stream histories, every 4th episode, the first 25 kept (the source's
# learning phase: 100 of its episodes), a 200-token banded context (10 kept episodes), 300-token
# training sequences, no dropout. Only the first 100 episodes per stream are used, so the
# source is run for 8 streams x 100 episodes x 20 steps = 16k steps per task.
_DARK_ROOM_SOURCE = SourceConfig(algo="a2c", n_streams=8, total_steps=16_000)
_DARK_ROOM_TRAIN = TrainConfig(updates=2000)  # TrainConfig's defaults are this recipe
# AD-ε: the oracle with decaying random actions, 16 streams x 30 episodes per goal, the noise gone
# after 25 and decaying as a square (power 2) rather than linearly: held out 13.78 at episode 100
# against 13.30; AD's model and trainer on every episode (benchmarks/results/methods_notes.md).
_DARK_ROOM_NOISY = SourceConfig(algo="oracle-eps", n_streams=16, total_steps=9600,
                                hyperparams={"decay_episodes": 25, "power": 2.0})
# 1000 updates in the default preset (15.28 at episode 100 with 2000, AD 14.41; 13.78 with 1000 in
# its probe: benchmarks/results/methods_notes.md), 5000 in the full one.
_DARK_ROOM_AD_EPS = ADEps(dataclasses.replace(_DARK_ROOM_TRAIN, every_k=1, max_episodes=None, updates=1000), source=_DARK_ROOM_NOISY)
# DPT: its defaults are the Dark Room recipe (ad_gym/methods/dpt.py).
_DARK_ROOM_DPT = DPT()
# RL²: its defaults are the Dark Room recipe. It plays ~2 per episode, flat, up to ~4M env steps,
# then learns to search and return within a trial: held out 3.1 over episodes 1-2 -> 8.3 over
# 21-30 at 10M (benchmarks/results/rl2_notes.md). 8M here (~7 minutes on one core, side by side
# with AD), 25M in the full preset.
_DARK_ROOM_RL2 = RL2(RL2Config(total_steps=8_000_000))

# Dark Room Hard: the same A2C learner, run for 200 episodes per stream (32k steps per goal):
# held out, its streams average 0.34 over episodes 26-35 and 0.67 over 191-200, two goals in
# three solved by the end (benchmarks/results/darkroomhard_recipe.md). AD keeps every 8th
# episode of each stream, 25 of them (the whole learning phase), and trains with the paper's
# label smoothing of 0.2 for Hard. default: 100 of the 231 train goals (the list is shuffled, so
# they are spread over the room) and 1200 updates; full: all of them and 3000 updates.
_DARK_ROOM_HARD_SOURCE = SourceConfig(algo="a2c", n_streams=8, total_steps=32_000)
_DARK_ROOM_HARD_TRAIN = TrainConfig(every_k=8, max_episodes=25, label_smoothing=0.2, updates=2000)
# AD from A2C finds only the goals a random walk reaches (its validation loss flat from update
# 1000): the source's 8 streams share one learner, so a stream's history does not show how it
# found a far goal. AD-PS distils a searching explorer instead (each episode heads for an
# unvisited cell, a found goal is gone back to in every later episode, random moves once paid),
# 8 streams x 40 episodes on every train goal (a minute to collect): held out, in its probe,
# 0.10 over episodes 1-5, 0.52 over 11-20, 0.84 over 41-50, 0.97 over 81-100, against A2C's 0.22
# at episode 100 (benchmarks/results/darkroomhard_recipe.md). 1500 updates in the default preset,
# 3000 in the full one.
_DARK_ROOM_HARD_AD_PS = ADPS(TrainConfig(every_k=1, max_episodes=None, updates=2000, warmup=200),
                            source=SourceConfig(algo="oracle-eps", n_streams=8, total_steps=8 * 40 * 20,
                                                hyperparams={**EXPLORER, "wander": True}), train_tasks=231)

# Adversarial Bandit: UCB, 4 independent streams per task, 10 episodes (1000 pulls) each; its
# statistics carry over between episodes, so each stream is one learning history over 10
# episodes. UCB learns fastest in its first episodes, so AD keeps every episode of the first 5
# and a 200-token context holds two episodes. UCB never stops exploring, so its late episodes
# are no expert: ED learns from the oracle's demonstrations (always the best arm), as the
# paper's expert distillation does, which is why it cannot adapt to a new condition.
_BANDIT_SOURCE = SourceConfig(algo="ucb", n_streams=4, total_steps=4000)
_BANDIT_TRAIN = TrainConfig(every_k=1, max_episodes=5, updates=2000)
_BANDIT_EXPERT = SourceConfig(algo="oracle", n_streams=1, total_steps=500)
# AD-ε: the best-arm oracle with random pulls decaying over 8 of 10 episodes, 4 streams, every
# episode, AD's trainer (benchmarks/results/methods_notes.md).
_BANDIT_AD_EPS = ADEps(TrainConfig(every_k=1, max_episodes=None, updates=1000),
                       source=SourceConfig(algo="oracle-eps", n_streams=4, total_steps=4000, hyperparams={"decay_episodes": 8}))
# DPT as its paper ran it on bandits: contexts and queries of uniformly random pulls, every pull of
# the query labelled with the best arm. The pulls say nothing, only the rewards do, so sampling the
# model's action each step is Thompson sampling. One 100-pull query per row after up to 100 pulls;
# 1500 updates: at 1000 it had learned only the odd-arm prior, and 3000 fit no 30-minute preset
# (methods_notes.md).
_RANDOM_PULLS = {"eps_start": 1.0, "eps_end": 1.0}
_BANDIT_DPT = DPT(TrainConfig(updates=1500),
                  context_source=SourceConfig(algo="oracle-eps", n_streams=2, total_steps=1000, hyperparams=_RANDOM_PULLS),
                  query_source=SourceConfig(algo="oracle-eps", n_streams=1, total_steps=200, hyperparams=_RANDOM_PULLS),
                  queries_per_row=1, label_steps="all")

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
# The default fits 30 minutes by running the A2C source (~3.5 s a pair) on 40 train pairs only,
# while the oracle-made histories (seconds for hundreds of pairs) cover more: AD-PS keeps its
# probe's 300 pairs and 2000 updates (cut to 80 pairs and 1500 updates it fell from 2.00 to 1.45
# at episode 50), AD-ε and DPT 100. AD-PS (2000 updates, ~16 minutes on one core) is the longest
# path; AD, ED, AD-ε and DPT train short enough to fit on the other core meanwhile. On 40 pairs
# AD memorises them and does not learn in context: the full preset's 600 pairs are what AD needs
# (benchmarks/results/methods_notes.md).
# AD-ε: the oracle (key, then door) with random moves decaying over the first 30 of
# each stream's 40 episodes, 16 streams.
_KEY_TO_DOOR_V1_AD_EPS = ADEps(TrainConfig(every_k=1, max_episodes=None, updates=2000, warmup=200),
                               source=SourceConfig(algo="oracle-eps", n_streams=16, total_steps=16 * 40 * 50,
                                                   hyperparams={"decay_episodes": 30}))
# AD-PS: a posterior-sampling explorer (key hypotheses among unvisited cells, then door ones,
# every found target remembered, random moves once the door is open), 8 streams x 20 episodes,
# AD's trainer on every episode: held out 1.98 at episode 50 in its probe
# (benchmarks/results/methods_notes.md).
_KEY_TO_DOOR_V1_AD_PS = ADPS(TrainConfig(every_k=1, max_episodes=None, updates=2000, warmup=200),
                             source=SourceConfig(algo="oracle-eps", n_streams=8, total_steps=8 * 20 * 50,
                                                 hyperparams={**EXPLORER, "wander": True}))
# DPT: Dark Room's recipe (decoys drawn among unvisited cells, resampled on arriving unpaid) for
# both the key and the door, 4 streams x 20 episodes of context and 4 x 5 of queries per task, two
# queries per row (benchmarks/results/methods_notes.md).
_KEY_TO_DOOR_V1_DPT = DPT(TrainConfig(updates=1500, warmup=200),
                          context_source=SourceConfig(algo="oracle-eps", n_streams=4, total_steps=4000, hyperparams={
                              "decoy": True, "resample": True, "eps_start": 0.2, "eps_end": 0.2, "true_prob": 0.3}),
                          query_source=SourceConfig(algo="oracle-eps", n_streams=4, total_steps=1000, hyperparams={
                              "decoy": True, "resample": True, "eps_start": 0.0, "eps_end": 0.0, "true_prob": 0.5}),
                          queries_per_row=2)

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
# AD-ε: the oracle's straight path with random moves decaying over 20 episodes, 16 streams of 1000
# steps; AD's model on each stream's first 40 episodes (an episode ends on the platform, so the
# noiseless ones are short and would otherwise fill the histories).
_WATERMAZE_V1_AD_EPS = ADEps(dataclasses.replace(_WATERMAZE_V1_TRAIN, max_episodes=40, updates=1000),
                             source=SourceConfig(algo="oracle-eps", n_streams=16, total_steps=16 * 1000,
                                                 hyperparams={"decay_episodes": 20}))
# DPT: contexts of decoys (each episode the path to a random training platform, the true one 3
# times in 10, one move in five random), queries the oracle's own paths. Watermaze's oracle
# replays a plan and cannot tell it has arrived, so its decoys are not resampled (Dark Room's
# recipe needs that); the model reads the token before each query itself (no prev_obs).
_WATERMAZE_V1_DPT = DPT(dataclasses.replace(_WATERMAZE_V1_TRAIN, prev_obs=False, final_obs=False, updates=1000),
                        context_source=SourceConfig(algo="oracle-eps", n_streams=8, total_steps=8 * 30 * 50, hyperparams={
                            "decoy": True, "eps_start": 0.2, "eps_end": 0.2, "true_prob": 0.3}),
                        query_source=SourceConfig(algo="oracle", n_streams=1, total_steps=100))

# RL² on the bandit: Dark Room's recipe, trials of 10 episodes (1000 pulls) of one training
# bandit; a rollout of 200 steps per env covers a fifth of a trial. 2M pulls of meta-training
# (5M: 38.6 over episodes 1-2 and 39.8 over 21-30 held out, random 29.4: it learns within the
# first episode, little after; benchmarks/results/rl2_notes.md).
_BANDIT_RL2 = RL2(RL2Config(total_steps=2_000_000))

PRESETS: dict[str, dict[str, Preset]] = {
    "DarkRoom-v0": {
        "default": Preset(
            source=_DARK_ROOM_SOURCE,
            methods=(*ad_and_ed(_DARK_ROOM_TRAIN, expert_updates=300), _DARK_ROOM_AD_EPS, _DARK_ROOM_DPT, _DARK_ROOM_RL2),
            notes="2-core CPU, <= 30 minutes in all",
        ),
        "full": Preset(
            source=_DARK_ROOM_SOURCE,
            methods=(
                *ad_and_ed(dataclasses.replace(_DARK_ROOM_TRAIN, updates=5000, warmup=200), expert_updates=1500),
                dataclasses.replace(_DARK_ROOM_AD_EPS, config=dataclasses.replace(_DARK_ROOM_AD_EPS.config, updates=5000, warmup=200)),
                dataclasses.replace(_DARK_ROOM_DPT, config=dataclasses.replace(_DARK_ROOM_DPT.config, updates=2500, warmup=200)),
                RL2(RL2Config(total_steps=25_000_000)),
            ),
            notes="2-core CPU, <= 90 minutes in all",
        ),
    },
    "DarkRoomHard-v0": {
        # AD's validation loss is flat from update 1000 on (darkroomhard_recipe.md): 1200 updates
        # (~11 minutes on one core) and ED's 300 leave room for AD-PS's 1500 beside them.
        "default": Preset(
            source=_DARK_ROOM_HARD_SOURCE,
            methods=(*ad_and_ed(dataclasses.replace(_DARK_ROOM_HARD_TRAIN, updates=1200), expert_updates=300),
                     _updates(_DARK_ROOM_HARD_AD_PS, 1500)),
            train_tasks=100, notes="2-core CPU, <= 30 minutes in all",
        ),
        "full": Preset(
            source=_DARK_ROOM_HARD_SOURCE,
            methods=(*ad_and_ed(dataclasses.replace(_DARK_ROOM_HARD_TRAIN, updates=3000, warmup=200), expert_updates=1500),
                     _updates(_DARK_ROOM_HARD_AD_PS, 3000)),
            notes="2-core CPU, <= 90 minutes in all",
        ),
    },
    "DarkKeyToDoor-v0": {
        "default": Preset(
            source=_KEY_TO_DOOR_SOURCE, methods=ad_and_ed(_KEY_TO_DOOR_TRAIN, expert_episodes=20, expert_updates=1000),
            eval_seeds=(0, 1), train_tasks=600, test_tasks=40, notes="2-core CPU, <= 45 minutes in all",
        ),
    },
    "DarkKeyToDoor-v1": {
        "default": Preset(
            source=_KEY_TO_DOOR_V1_SOURCE,
            methods=(*ad_and_ed(dataclasses.replace(_KEY_TO_DOOR_V1_TRAIN, updates=500), expert_episodes=20, expert_updates=200),
                     _updates(dataclasses.replace(_KEY_TO_DOOR_V1_AD_EPS, train_tasks=100), 400),
                     _updates(dataclasses.replace(_KEY_TO_DOOR_V1_DPT, train_tasks=100), 500),
                     dataclasses.replace(_KEY_TO_DOOR_V1_AD_PS, train_tasks=300)),
            eval_seeds=(0, 1), train_tasks=40, test_tasks=25, notes="2-core CPU, <= 30 minutes in all",
        ),
        "full": Preset(
            source=_KEY_TO_DOOR_V1_SOURCE,
            methods=ad_and_ed(dataclasses.replace(_KEY_TO_DOOR_V1_TRAIN, updates=10_000), expert_episodes=20, expert_updates=1000),
            eval_seeds=(0, 1), train_tasks=600, test_tasks=40, notes="2-core CPU, <= 90 minutes in all",
        ),
    },
    "Watermaze-v0": {
        "default": Preset(
            source=_WATERMAZE_SOURCE,
            methods=ad_and_ed(_WATERMAZE_TRAIN, expert_episodes=None, expert_updates=500, expert_source=_WATERMAZE_EXPERT),
            eval_episodes=50, notes="2-core CPU, <= 45 minutes in all",
        ),
    },
    "Watermaze-v1": {
        # The default fits 30 minutes with half the source's streams per platform (8, each the same
        # 800 steps), half the training platforms (32) and short training: with 8 streams on all 64
        # platforms, AD 1000 updates, ED 300, AD-ε and DPT 600, collection took 14.5 minutes and
        # training was heading for 18 (benchmarks/results/watermaze_recipe.md).
        "default": Preset(
            source=dataclasses.replace(_WATERMAZE_V1_SOURCE, n_streams=8, total_steps=8 * 800),
            methods=(*ad_and_ed(dataclasses.replace(_WATERMAZE_V1_TRAIN, updates=800), expert_episodes=None,
                                expert_updates=200, expert_source=_WATERMAZE_EXPERT),
                     _updates(_WATERMAZE_V1_AD_EPS, 400), _updates(_WATERMAZE_V1_DPT, 400)),
            eval_episodes=50, train_tasks=32, notes="2-core CPU, <= 30 minutes in all",
        ),
        "full": Preset(
            source=_WATERMAZE_V1_SOURCE,
            methods=ad_and_ed(_WATERMAZE_V1_FULL_TRAIN, expert_episodes=None, expert_updates=500, expert_source=_WATERMAZE_EXPERT),
            train_learners=2, eval_episodes=50, eval_seeds=tuple(range(8)), notes="2-core CPU, <= 90 minutes in all",
        ),
    },
    "AdversarialBandit-v0": {
        "default": Preset(
            source=_BANDIT_SOURCE,
            methods=(*ad_and_ed(_BANDIT_TRAIN, expert_episodes=5, expert_updates=500, expert_source=_BANDIT_EXPERT),
                     _BANDIT_AD_EPS, _BANDIT_DPT, _BANDIT_RL2),
            eval_episodes=10, eval_seeds=(0, 1), test_tasks=50, notes="2-core CPU, <= 30 minutes in all",
        ),
        # All 10 episodes of UCB's histories (AD also learns how UCB exploits later), twice the
        # updates, every task of every condition with 4 seeds.
        "full": Preset(
            source=_BANDIT_SOURCE,
            methods=ad_and_ed(dataclasses.replace(_BANDIT_TRAIN, max_episodes=10, updates=4000), expert_episodes=5,
                              expert_updates=500, expert_source=_BANDIT_EXPERT),
            eval_episodes=10, notes="2-core CPU, <= 90 minutes in all",
        ),
    },
}


def get_preset(env_id: str, name: str) -> Preset:
    env_id = canonical_env_id(env_id)
    presets = PRESETS.get(env_id, {})
    if name not in presets:
        raise ValueError(f"no preset {name!r} for {env_id}; available: {sorted(presets)}")
    return presets[name]
