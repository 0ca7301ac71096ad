"""DPT, the Decision-Pretrained Transformer (Lee et al. 2023), on AD's model and agent.

DPT learns to predict the *optimal* action for a query state from an in-context dataset of the
same task. Here the dataset is a window of exploration episodes (goal-agnostic behaviour: see
`ad_gym.sources.noisy_oracle`, ``decoy=True``) and the queries are the states of an episode of
the family's oracle played after it; the label at each query is the oracle's action. The model is
AD's causal transformer (one token per transition), the loss is taken on the oracle episode only,
and the agent is `ADAgent` unchanged, so DPT plays through the same ``predict`` / ``observe`` /
cache as AD.

Why the oracle's own episode is the query, rather than states drawn on their own: at play time
the context holds the agent's own earlier steps of the current episode. Trained this way, the
model reads those steps as an oracle's (the label's) and so keeps heading for the one target they
are consistent with: sampling an action per step then samples a whole trajectory of *posterior
sampling* (one hypothesis per episode), which explores a Dark Room far better than sampling each
step from the posterior's marginal (measured: benchmarks/results/methods_notes.md). Several queries share
one context window in a row (each sees the window only up to where it starts), so a batch holds
several labelled episodes per context for the cost of one.

Posterior sampling drops a hypothesis it reaches without reward and draws another; an oracle
never does, so a model trained on whole oracle episodes has never seen what follows and, at play
time, waits on the wrong cell for the rest of the episode. Where the family's oracle can tell it
has arrived (the grid families), the default queries are therefore episodes that try wrong
hypotheses first (`NoiseSchedule.resample`) and are labelled on their oracle tail only
(``label_steps="tail"``), and the contexts explore the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ad_gym.data.histories import History, load_histories
from ad_gym.data.windows import build_sequences
from ad_gym.envs.tasks import oracle_for, task_key
from ad_gym.methods.base import Collection, Method, RunData, register
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.training import TrainConfig, check_disjoint, fit


def _context_source() -> SourceConfig:
    # Dark Room: posterior-sampling-like exploration, hypotheses drawn among the training goals not
    # yet visited (the true one 3 times in 10), one action in five random; 16 streams of 30
    # episodes per task.
    return SourceConfig(algo="oracle-eps", n_streams=16, total_steps=9600,
                        hyperparams={"decoy": True, "resample": True, "eps_start": 0.2, "eps_end": 0.2, "true_prob": 0.3})


def _query_source() -> SourceConfig:
    # The same exploration without random actions, the true goal every other hypothesis: 4 streams
    # of 5 episodes per task, labelled from the step they head for the true goal.
    return SourceConfig(algo="oracle-eps", n_streams=4, total_steps=400,
                        hyperparams={"decoy": True, "resample": True, "eps_start": 0.0, "eps_end": 0.0, "true_prob": 0.5})


@register
@dataclass
class DPT(Method):
    name = "DPT"
    slug = "dpt"
    summary = "Decision-Pretrained Transformer: predict the oracle's action from an exploration context"

    # The model, optimisation and context_len fields apply; training rows are context_len long
    # windows plus their queries, so the history-slicing fields (every_k, max_episodes,
    # expert_episodes, seq_len) do not.
    config: TrainConfig = field(default_factory=lambda: TrainConfig(updates=1000))
    context_source: SourceConfig = field(default_factory=_context_source)  # the in-context datasets
    query_source: SourceConfig = field(default_factory=_query_source)  # the episodes that are the queries
    queries_per_row: int = 4  # query episodes sharing one context window in a training row
    label_steps: str = "tail"  # which query steps carry the oracle's label: see QueryEpisodeSampler
    train_tasks: int | None = None  # train tasks its contexts and queries cover (None: the preset's); see Collection

    def __post_init__(self):
        if isinstance(self.queries_per_row, bool) or not isinstance(self.queries_per_row, int) or self.queries_per_row < 1:
            raise ValueError(f"queries_per_row must be a positive integer, got {self.queries_per_row!r}")
        if self.label_steps not in LABEL_STEPS:
            raise ValueError(f"label_steps must be one of {LABEL_STEPS}, got {self.label_steps!r}")
        if self.query_source.algo not in ("oracle", "oracle-eps"):
            raise ValueError(
                f"DPT's queries are episodes of the oracle (algo 'oracle'), or of a noisy oracle whose oracle "
                f"steps are the labels (algo 'oracle-eps'), got {self.query_source.algo!r}"
            )
        if self.config.final_obs or self.config.prev_obs:
            # Packed rows put a query right after another query or the context: the token before
            # it is not the one it follows, which prev_obs and final_obs would read.
            raise ValueError("DPT does not support prev_obs or final_obs models yet")

    def collections(self) -> list[Collection]:
        return [Collection("dpt-context", self.context_source, train_tasks=self.train_tasks),
                Collection("dpt-queries", self.query_source, train_tasks=self.train_tasks)]

    def _samplers(self, data: RunData, seed: int, labels: bool = True,
                  ) -> tuple["QueryEpisodeSampler", "QueryEpisodeSampler", dict[str, Any]]:
        """The training and validation samplers; ``labels=False`` replays the oracle along one query
        history only (enough to check it can be replayed) and labels with the recorded actions."""
        context, queries = self.collections()
        histories = {split: (load_histories(data.folder(context, split), compact=True),
                             load_histories(data.folder(queries, split), compact=True))
                     for split in ("train", "test")}
        check_disjoint(histories["train"][0], histories["test"][0])
        n_actions = self.config.model_config(data.env_id).n_actions
        if not labels:
            oracle_actions(histories["train"][1][0], data.env_id)
        train, val = (
            QueryEpisodeSampler(*histories[split], n_actions, self.config.context_len, torch.Generator().manual_seed(seed + offset),
                                self.queries_per_row,
                                [oracle_actions(h, data.env_id) for h in histories[split][1]] if labels else None,
                                self.label_steps)
            for split, offset in (("train", 0), ("test", 1))
        )
        description = {
            "train_tasks": [h.task for h in histories["train"][0]], "val_tasks": [h.task for h in histories["test"][0]],
            "source": histories["train"][0][0].metadata.get("source"),
            "query_source": histories["train"][1][0].metadata.get("source"),
        }
        return train, val, description

    def check(self, data: RunData) -> None:
        try:
            self._samplers(data, 0, labels=False)  # train() replays the oracle along every history
        except ValueError as error:
            raise ValueError(f"{self.name} data: {error}") from error

    def train(self, data: RunData, out: Path, seed: int = 0, progress: bool = True,
              provenance: dict[str, Any] | None = None) -> Path:
        config = dataclasses.replace(self.config, seed=seed)
        sampler, val_sampler, description = self._samplers(data, seed)
        return fit(config.model_config(data.env_id), sampler, val_sampler, out, config, method=self.name,
                   data=description, env_id=data.env_id, progress=progress, provenance=provenance)


def oracle_actions(history: History, env_id: str) -> np.ndarray:
    """``(streams, steps)``: the action the family's oracle takes at each recorded step.

    The oracle of the history's task is replayed along the recorded steps (it sees the same
    observations, rewards and episode ends), so the answer is exact for oracles that act from
    what they observe (the grid families': any state) and for fixed plans from an episode's start.
    """
    n_streams, n_steps = history.actions.shape[:2]
    oracle = oracle_for(env_id, [history.task] * n_streams)
    actions = np.zeros((n_streams, n_steps), dtype=np.int64)
    start = np.ones(n_streams, dtype=bool)
    for t in range(n_steps):
        action, _ = oracle.predict(np.asarray(history.observations[:, t]), episode_start=start)
        actions[:, t] = np.asarray(action).reshape(n_streams)
        oracle.observe(history.rewards[:, t], history.dones[:, t])
        start = history.dones[:, t]
    return actions


LABEL_STEPS = ("tail", "all")


class QueryEpisodeSampler:
    """Rows of one context window followed by up to ``queries_per_row`` query episodes, each seeing
    the window only up to its own episode boundary (packed: see `ADTransformer.forward`).

    ``context``: exploration histories; ``queries``: histories of the same tasks whose episodes are
    the queries.
    ``oracle`` (one ``(streams, steps)`` array per query history: the oracle's action at each step,
    see `oracle_actions`; None: the recorded actions are the oracle's) gives the labels, and
    ``label_steps`` which of a query episode's steps carry them:

    - ``"tail"``: its longest tail on which the recorded actions are the oracle's. A query that
      tried wrong hypotheses first (a ``resample`` noisy oracle) then teaches what the oracle does
      after them, while its earlier steps stand in its context; the labelled steps are the
      query's own moves, so the model reads the current episode's moves as an oracle's and keeps
      to one hypothesis per episode.
    - ``"all"``: every step, labelled with the oracle's action whatever was recorded (DPT's
      original per-state labels): for queries whose moves carry no information (random pulls of a
      bandit), where sampling the labels step by step is Thompson sampling.

    A window of up to ``length - len(query episode)`` context tokens ends at an episode boundary
    (its size uniform, from none at all to full); each query follows the window's first tokens up
    to a boundary inside it (none at all is one of them), as if played after them. Padding on the
    left. A batch carries ``positions``, ``allowed``, ``loss_mask`` (the labelled tokens) and, as
    ``actions``, the labels.
    """

    def __init__(self, context: list[History], queries: list[History], n_actions: int, length: int,
                 generator: torch.Generator, queries_per_row: int = 4, oracle: list[np.ndarray] | None = None,
                 label_steps: str = "tail"):
        sequences = build_sequences([*context, *queries], n_actions)
        if oracle is not None and len(oracle) != len(queries):
            raise ValueError(f"oracle has {len(oracle)} arrays for {len(queries)} query histories")
        if label_steps not in LABEL_STEPS:
            raise ValueError(f"label_steps must be one of {LABEL_STEPS}, got {label_steps!r}")
        owner_task = [task_key(h.task) for h in [*context, *queries]]
        n_context = len(context)
        self.n_actions, self.length, self.generator, self.queries_per_row = n_actions, length, generator, queries_per_row
        self.arrays = {
            "obs": sequences.obs, "prev_actions": sequences.prev_actions, "prev_rewards": sequences.prev_rewards,
            "steps": sequences.steps, "actions": sequences.actions,
        }
        self.obs_table = None if sequences.obs_table is None else torch.from_numpy(sequences.obs_table)
        self.episode_first = np.zeros(len(sequences.steps) + 1, dtype=bool)
        self.episode_first[np.flatnonzero(sequences.steps == 0)] = True
        self.labelled = np.zeros(len(sequences.steps), dtype=bool)  # the tokens a query's loss is taken on
        self.targets = sequences.actions.copy()  # the labels: the oracle's actions on query tokens
        self.query_episodes: dict[str, list[tuple[int, int]]] = {}
        ends, stream_start, end_task = [], [], []
        kept_streams: dict[int, Any] = {}  # per query history: its streams that have tokens, in order
        for stream, (start, end) in enumerate(zip(sequences.starts, sequences.ends)):
            owner = int(sequences.history_index[stream])
            firsts = np.flatnonzero(self.episode_first[start:end]) + start
            if owner >= n_context:
                # Query streams keep every complete episode from step 0: token start + t is step t.
                # (build_sequences skips streams with no complete episode; so does this count.)
                if owner not in kept_streams:
                    kept_streams[owner] = iter(np.flatnonzero(queries[owner - n_context].dones.any(axis=1)))
                s = next(kept_streams[owner])
                if oracle is not None:
                    self.targets[start:end] = np.asarray(oracle[owner - n_context])[s, : end - start]
                agrees = self.targets[start:end] == sequences.actions[start:end]
                bounds = [*firsts, end]
                for a, b in zip(bounds[:-1], bounds[1:]):
                    own = agrees[a - start : b - start]
                    first_labelled = a if label_steps == "all" or own.all() else b - int(np.argmin(own[::-1]))
                    if b - a < length and first_labelled < b:
                        self.labelled[first_labelled:b] = True
                        self.query_episodes.setdefault(owner_task[owner], []).append((int(a), int(b)))
            else:  # a window may end at any episode's first token: it holds what came before
                ends += firsts.tolist()
                stream_start += [int(start)] * len(firsts)
                end_task += [owner_task[owner]] * len(firsts)
        keep = [i for i, task in enumerate(end_task) if task in self.query_episodes]
        if not keep:
            raise ValueError("no task has both exploration histories and oracle episodes shorter than the context")
        self.ends, self.stream_start = np.array(ends)[keep], np.array(stream_start)[keep]
        self.end_task = [end_task[i] for i in keep]
        self.longest_query = max(b - a for episodes in self.query_episodes.values() for a, b in episodes)

    @property
    def n_segments(self) -> int:
        return len(self.ends)

    def _row(self, pick: int, draws: np.ndarray):
        """Token indices, positions, segment of each token (0 context, i >= 1 query i) and each
        query's first position and the context token it follows (-1: none)."""
        end, start = int(self.ends[pick]), int(self.stream_start[pick])
        n_ctx = int(draws[0] * (min(end - start, self.length - self.longest_query) + 1))
        window = end - n_ctx
        # Where a query may start: after none of the window, or after any whole episode in it.
        cuts = [window, *(np.flatnonzero(self.episode_first[window + 1 : end + 1]) + window + 1)]
        chosen = sorted(set(cuts[int(d * len(cuts))] for d in draws[1 : 1 + self.queries_per_row]))
        episodes = self.query_episodes[self.end_task[pick]]
        index, positions, segment, follows = [np.arange(window, end)], [np.arange(n_ctx)], [np.zeros(n_ctx, np.int64)], []
        for i, cut in enumerate(chosen, start=1):
            a, b = episodes[int(draws[1 + self.queries_per_row + i - 1] * len(episodes))]
            index.append(np.arange(a, b))
            positions.append(np.arange(b - a) + (cut - window))
            segment.append(np.full(b - a, i))
            follows.append(cut if cut > window else -1)
        return np.concatenate(index), np.concatenate(positions), np.concatenate(segment), follows

    def sample(self, batch_size: int, rows: slice = slice(None)) -> dict[str, torch.Tensor]:
        """As `SequenceSampler.sample`: ``rows`` keeps a rank's share of the batch drawn."""
        picks = torch.randint(len(self.ends), (batch_size,), generator=self.generator).numpy()[rows]
        draws = torch.rand(batch_size, 1 + 2 * self.queries_per_row, generator=self.generator).numpy()[rows]
        batch_size = len(picks)
        rows = [self._row(pick, row_draws) for pick, row_draws in zip(picks, draws)]
        T = max(len(index) for index, *_ in rows)
        index = np.zeros((batch_size, T), dtype=np.int64)
        positions = np.zeros((batch_size, T), dtype=np.int64)
        segment = np.full((batch_size, T), -1, dtype=np.int64)  # -1: padding
        allowed = np.zeros((batch_size, T, T), dtype=bool)
        first_tokens, follows = [], []
        for b, (row_index, row_positions, row_segment, row_follows) in enumerate(rows):
            n = len(row_index)
            index[b, T - n :], positions[b, T - n :], segment[b, T - n :] = row_index, row_positions, row_segment
            seg, pos = row_segment, row_positions
            query_start = np.array([0, *(pos[seg == i][0] for i in range(1, seg.max() + 1))])  # per segment
            own = (seg[:, None] == seg[None, :]) & (pos[None, :] <= pos[:, None])
            context = (seg[None, :] == 0) & (seg[:, None] > 0) & (pos[None, :] < query_start[seg][:, None])
            allowed[b, T - n :, T - n :] = own | context
            starts = np.flatnonzero(np.diff(np.concatenate([[0], seg])) != 0)  # first token of each query
            first_tokens += [(b, T - n + s) for s in starts if seg[s] > 0]
            follows += row_follows
        batch = {name: torch.from_numpy(array[index]) for name, array in self.arrays.items()}
        # A query episode follows what it was cut after: its first token carries the last action and
        # reward before the cut (the first token after the cut holds them), or "none" after nothing.
        rows_, cols = (np.array(v, dtype=np.int64) for v in zip(*first_tokens))
        follows = np.array(follows)
        after = follows >= 0
        batch["prev_actions"][rows_, cols] = torch.from_numpy(
            np.where(after, self.arrays["prev_actions"][np.maximum(follows, 0)], self.n_actions))
        batch["prev_rewards"][rows_, cols] = torch.from_numpy(
            np.where(after, self.arrays["prev_rewards"][np.maximum(follows, 0)], 0.0).astype(np.float32))
        if self.obs_table is not None:
            batch["obs"] = self.obs_table[batch["obs"]]
        batch["positions"] = torch.from_numpy(positions)
        batch["allowed"] = torch.from_numpy(allowed)
        batch["loss_mask"] = torch.from_numpy((segment > 0) & self.labelled[index])
        batch["actions"] = torch.from_numpy(self.targets[index])  # the recorded ones wherever no label is
        return batch
