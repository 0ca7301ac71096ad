"""Training sequences for the AD transformer, cut from learning histories.

Each stream of each history becomes one long token sequence: its episodes, optionally only every
k-th of them (the paper's subsampling, which makes the distilled learner faster than its source),
in time order. Token t holds what the agent knew when it chose action t (see
`ad_gym.models.transformer`): observation o_t, previous action and reward (across episode
boundaries, so the last reward of an episode reaches the next one), the step of o_t in its
episode and, where the histories recorded it, the observation the previous action led to (at an
episode's first token, the view the previous episode ended on). `SequenceSampler` draws
fixed-length segments uniformly from all streams, from memory or from token files
(`ad_gym.data.token_files`, for datasets larger than memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from ad_gym.data.histories import History, IndexedObservations


TOKEN_COLUMNS = ("obs", "prev_actions", "prev_rewards", "steps", "actions")


@dataclass
class TokenSequences:
    """All streams' token sequences, concatenated; ``starts[i]:ends[i]`` is stream i."""

    obs: np.ndarray  # (N, D) int64; for pixel envs (N,) rows of obs_table
    prev_actions: np.ndarray  # (N,) int64; n_actions marks "no previous action"
    prev_rewards: np.ndarray  # (N,) float32
    steps: np.ndarray  # (N,) int64, step of obs in its episode
    actions: np.ndarray  # (N,) int64, the targets
    starts: np.ndarray  # (S,) first token of each stream
    ends: np.ndarray  # (S,)
    obs_table: np.ndarray | None = None  # (K, H, W, C) uint8: every distinct image, for pixel envs
    # (N, D) or (N,) rows like obs: what the previous action led to, so at an episode's first token
    # the view the previous episode ended on (elsewhere o_t itself). None if a history lacks it.
    final_obs: np.ndarray | None = None
    history_index: np.ndarray | None = None  # (S,) which of the histories given each stream came from

    def __len__(self) -> int:
        return len(self.actions)


def episode_bounds(dones: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each complete episode of one stream; an unfinished last one is dropped."""
    ends = np.flatnonzero(dones) + 1
    return list(zip([0, *ends[:-1]], ends))


def stream_tokens(
    history: History,
    stream: int,
    n_actions: int,
    every_k: int = 1,
    max_episodes: int | None = None,
    last_episodes: int | None = None,
):
    """Token arrays of one stream, keeping episodes 0, k, 2k, ... (the first ``max_episodes`` kept).

    ``last_episodes`` keeps only that many final episodes instead: the near-expert end of the
    history, which is what expert distillation (ED) trains on.
    """
    bounds = episode_bounds(history.dones[stream])
    bounds = bounds[-last_episodes:] if last_episodes else bounds[::every_k][:max_episodes]
    if not bounds:
        return None
    index = np.concatenate([np.arange(a, b) for a, b in bounds])
    actions = history.actions[stream][index].astype(np.int64).reshape(len(index))
    rewards = history.rewards[stream][index].astype(np.float32)
    obs = _token_observations(history.observations, stream, index)
    steps = np.concatenate([np.arange(b - a) for a, b in bounds])
    prev_actions = np.concatenate([[n_actions], actions[:-1]])
    prev_rewards = np.concatenate([[0.0], rewards[:-1]]).astype(np.float32)
    final_obs = None
    if history.next_observations is not None:
        led_to = _token_observations(history.next_observations, stream, index)
        final_obs = np.concatenate([obs[:1], led_to[:-1]])  # the first token follows nothing: its own
    return obs, prev_actions, prev_rewards, steps, actions, final_obs


def _token_observations(observations, stream: int, index: np.ndarray) -> np.ndarray:
    """(N, D) int64 observations of one stream's kept steps; for pixels (N,) rows of the table."""
    if isinstance(observations, IndexedObservations):
        return observations.index[stream][index].astype(np.int64)
    return observations[stream][index].astype(np.int64).reshape(len(index), -1)


def history_tokens(
    histories: Iterable[History],
    n_actions: int,
    every_k: int = 1,
    max_episodes: int | None = None,
    last_episodes: int | None = None,
) -> Iterator[tuple[int, History, np.ndarray | None, list[tuple]]]:
    """Per history, in order: (its number, itself, its pixel table or None, the token arrays of each of
    its streams that keeps a complete episode). Pixel tokens already point into one table made of
    every history's table, one after another."""
    if every_k < 1:
        raise ValueError(f"every_k must be a positive integer, got {every_k!r}")
    offset, kinds = 0, set()
    for number, h in enumerate(histories):
        indexed = isinstance(h.observations, IndexedObservations)
        kinds.add(indexed)
        if len(kinds) > 1:
            raise ValueError("the histories mix pixel and integer observations")
        parts = []
        for s in range(h.n_streams):
            tokens = stream_tokens(h, s, n_actions, every_k, max_episodes, last_episodes)
            if tokens is not None:
                if indexed:
                    final = None if tokens[5] is None else tokens[5] + offset
                    tokens = (tokens[0] + offset, *tokens[1:5], final)
                parts.append(tokens)
        table = h.observations.table if indexed else None
        offset += 0 if table is None else len(table)
        yield number, h, table, parts


def build_sequences(
    histories: list[History],
    n_actions: int,
    every_k: int = 1,
    max_episodes: int | None = None,
    last_episodes: int | None = None,
) -> TokenSequences:
    parts, tables, owners = [], [], []
    for number, _, table, history_parts in history_tokens(histories, n_actions, every_k, max_episodes, last_episodes):
        parts += history_parts
        owners += [number] * len(history_parts)
        if table is not None:
            tables.append(table)
    if not parts:
        raise ValueError("the histories hold no complete episode")
    lengths = np.array([len(p[4]) for p in parts])
    ends = np.cumsum(lengths)
    columns = [np.concatenate(column) for column in zip(*(p[:5] for p in parts))]
    finals = [p[5] for p in parts]
    final_obs = None if any(f is None for f in finals) else np.concatenate(finals)
    return TokenSequences(
        *columns, starts=ends - lengths, ends=ends, obs_table=np.concatenate(tables) if tables else None, final_obs=final_obs,
        history_index=np.array(owners, dtype=np.int64),
    )


class SequenceSampler:
    """Uniform random segments of ``seq_len`` tokens that never cross from one stream to another,
    gathered from token data in memory (`TokenSequences`) or in files
    (`ad_gym.data.token_files.TokenFiles`): the same generator state draws the same segments from
    either."""

    def __init__(self, sequences, seq_len: int, generator: torch.Generator):
        lengths = sequences.ends - sequences.starts
        usable = lengths >= seq_len
        if not usable.any():
            raise ValueError(
                f"every stream is shorter than the training sequence ({seq_len} tokens; the longest has "
                f"{lengths.max()}): collect longer histories, subsample less, or shorten the context"
            )
        # A segment may start at any token that leaves seq_len tokens in its stream: segment number
        # n is in the stream whose range of numbers holds n (one entry per stream, not per token).
        counts = lengths[usable] - seq_len + 1
        self.stream_first = torch.from_numpy(sequences.starts[usable].astype(np.int64))
        self.stream_until = torch.from_numpy(np.cumsum(counts))  # segments numbered below, stream by stream
        self.stream_before = self.stream_until - torch.from_numpy(counts)
        self.seq_len = seq_len
        self.generator = generator
        self.files = sequences if hasattr(sequences, "segments") else None  # TokenFiles: read batch by batch
        self.obs_table = None if sequences.obs_table is None else torch.from_numpy(sequences.obs_table)
        self.tensors = {}
        if self.files is None:
            self.tensors = {name: torch.from_numpy(getattr(sequences, name)) for name in TOKEN_COLUMNS}
            if sequences.final_obs is not None:
                self.tensors["final_obs"] = torch.from_numpy(sequences.final_obs)

    @property
    def n_segments(self) -> int:
        return int(self.stream_until[-1])

    def sample(self, batch_size: int, rows: slice = slice(None)) -> dict[str, torch.Tensor]:
        """``batch_size`` random segments; ``rows`` keeps only those rows of the batch (a rank's
        share: the generator advances as for the whole batch, so every rank draws the same one)."""
        pick = torch.randint(self.n_segments, (batch_size,), generator=self.generator)[rows]
        stream = torch.searchsorted(self.stream_until, pick, right=True)
        first = self.stream_first[stream] + pick - self.stream_before[stream]  # (B,) first token of each segment
        if self.files is not None:
            batch = self.files.segments(first.numpy(), self.seq_len)
        else:
            index = first[:, None] + torch.arange(self.seq_len)  # (B, T)
            batch = {name: tensor[index.to(tensor.device)] for name, tensor in self.tensors.items()}
        if self.obs_table is not None:
            for name in ("obs", "final_obs"):
                if name in batch:
                    batch[name] = self.obs_table[batch[name].to(self.obs_table.device)]  # (B, T) rows -> (B, T, H, W, C)
        return batch

    def to(self, device: torch.device) -> "SequenceSampler":
        """Keep the token data on ``device`` (a GPU's memory, where it fits), so batches are gathered there."""
        self.tensors = {name: tensor.to(device) for name, tensor in self.tensors.items()}
        if self.obs_table is not None:
            self.obs_table = self.obs_table.to(device)
        return self

    @property
    def has_final_obs(self) -> bool:
        """Whether the segments carry the view each episode ended on (see TokenSequences)."""
        return "final_obs" in self.tensors or (self.files is not None and self.files.final_obs)
