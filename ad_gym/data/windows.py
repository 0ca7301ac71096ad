"""Training sequences for the AD transformer, cut from learning histories.

Each stream of each history becomes one long token sequence: its episodes, optionally only every
k-th of them (the paper's subsampling, which makes the distilled learner faster than its source),
in time order. Token t holds what the agent knew when it chose action t (see
`ad_gym.models.transformer`): observation o_t, previous action and reward (across episode
boundaries, so the last reward of an episode reaches the next one), the step of o_t in its
episode and, where the histories recorded it, the observation the previous action led to (at an
episode's first token, the view the previous episode ended on). `SequenceSampler` draws
fixed-length segments uniformly from all streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ad_gym.data.histories import History, IndexedObservations


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


def build_sequences(
    histories: list[History],
    n_actions: int,
    every_k: int = 1,
    max_episodes: int | None = None,
    last_episodes: int | None = None,
) -> TokenSequences:
    if every_k < 1:
        raise ValueError(f"every_k must be a positive integer, got {every_k!r}")
    parts, tables, offset, owners = [], [], 0, []
    for number, h in enumerate(histories):
        indexed = isinstance(h.observations, IndexedObservations)
        for s in range(h.n_streams):
            tokens = stream_tokens(h, s, n_actions, every_k, max_episodes, last_episodes)
            if tokens is not None:
                # Pixel tokens point into one table made of every history's table, one after another.
                if indexed:
                    final = None if tokens[5] is None else tokens[5] + offset
                    tokens = (tokens[0] + offset, *tokens[1:5], final)
                parts.append(tokens)
                owners.append(number)
        if indexed:
            tables.append(h.observations.table)
            offset += len(h.observations.table)
    if not parts:
        raise ValueError("the histories hold no complete episode")
    if tables and len(tables) != len(histories):
        raise ValueError("the histories mix pixel and integer observations")
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
    """Uniform random segments of ``seq_len`` tokens that never cross from one stream to another."""

    def __init__(self, sequences: TokenSequences, seq_len: int, generator: torch.Generator):
        lengths = sequences.ends - sequences.starts
        usable = lengths >= seq_len
        if not usable.any():
            raise ValueError(
                f"every stream is shorter than the training sequence ({seq_len} tokens; the longest has "
                f"{lengths.max()}): collect longer histories, subsample less, or shorten the context"
            )
        # A segment may start at any token that leaves seq_len tokens in its stream.
        self.first = np.concatenate([np.arange(s, e - seq_len + 1) for s, e in zip(sequences.starts[usable], sequences.ends[usable])])
        self.seq_len = seq_len
        self.generator = generator
        self.obs_table = None if sequences.obs_table is None else torch.from_numpy(sequences.obs_table)
        self.tensors = {
            "obs": torch.from_numpy(sequences.obs),
            "prev_actions": torch.from_numpy(sequences.prev_actions),
            "prev_rewards": torch.from_numpy(sequences.prev_rewards),
            "steps": torch.from_numpy(sequences.steps),
            "actions": torch.from_numpy(sequences.actions),
        }
        if sequences.final_obs is not None:
            self.tensors["final_obs"] = torch.from_numpy(sequences.final_obs)

    @property
    def n_segments(self) -> int:
        return len(self.first)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        pick = torch.randint(len(self.first), (batch_size,), generator=self.generator)
        index = torch.from_numpy(self.first)[pick][:, None] + torch.arange(self.seq_len)  # (B, T)
        batch = {name: tensor[index] for name, tensor in self.tensors.items()}
        if self.obs_table is not None:
            for name in ("obs", "final_obs"):
                if name in batch:
                    batch[name] = self.obs_table[batch[name]]  # (B, T) rows -> (B, T, H, W, C) pixels
        return batch

    @property
    def has_final_obs(self) -> bool:
        """Whether the segments carry the view each episode ended on (see TokenSequences)."""
        return "final_obs" in self.tensors
