"""The Algorithm Distillation transformer: a causal model over a long sequence of transitions.

One token per transition. Token t embeds what the agent knows when it picks action a_t: the
observation o_t, the previous action a_{t-1}, the reward r_{t-1} that action earned, and the
step of o_t within its episode (options: also o_{t-1}; at an episode's first token, also the view
the previous episode ended on). The model predicts a_t from token t and the tokens before it.

Attention is causal and *banded*: every token attends to itself and the ``context_len - 1``
tokens before it, with a learned bias per head and distance instead of absolute positions.
So a prediction never depends on where a window starts, training can use sequences longer than
the context (every position past the first ``context_len`` sees a full context), and inference
keeps a fixed-size key/value cache per layer that gives exactly the logits of recomputing the
whole sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ad_gym.settings import config_from_pairs


@dataclass
class ADConfig:
    obs_nvec: tuple[int, ...]  # observation = len(obs_nvec) integers, component i in [0, obs_nvec[i]); () for images
    n_actions: int
    max_episode_steps: int  # the step-in-episode embedding has this many rows
    image_shape: tuple[int, ...] | None = None  # (H, W, C) uint8 pixel observations, read by a small CNN
    context_len: int = 200  # c: tokens each token attends to (itself included): 10 Dark Room episodes
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    ffn_dim: int = 256
    dropout: float = 0.0  # the paper used 0.1; on CPU budgets the model underfits, so none by default
    attn_dropout: float = 0.0  # the paper used 0.5 (0 for Dark Room Hard)
    token_mask_prob: float = 0.0  # training only: each context token hidden from attention with this prob.
    # Each token also embeds the previous observation. Where an episode ends on its reward (Watermaze)
    # the reward arrives in the next episode's first token, one token after the view it was earned
    # from: with this, the two share a token.
    prev_obs: bool = False
    # The first token of each episode also embeds the observation the previous episode ended on.
    # Where an episode ends on its reward (Watermaze's platform) that view is otherwise never seen:
    # the reset replaces it before the next action is chosen.
    final_obs: bool = False

    def __post_init__(self):
        self.obs_nvec = tuple(int(n) for n in self.obs_nvec)
        if self.image_shape is not None:
            self.image_shape = tuple(int(n) for n in self.image_shape)
            if len(self.image_shape) != 3 or min(self.image_shape[:2]) < 8:
                raise ValueError(f"image_shape must be (height, width, channels) of at least 8x8, got {self.image_shape}")
        if bool(self.obs_nvec) == (self.image_shape is not None):
            raise ValueError("give exactly one of obs_nvec (integer observations) and image_shape (pixels)")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        for name in ("n_actions", "max_episode_steps", "context_len", "n_layer", "n_head", "n_embd", "ffn_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("prev_obs", "final_obs"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("dropout", "attn_dropout", "token_mask_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ADConfig":
        return config_from_pairs(cls, data)


@dataclass
class KVCache:
    """Keys and values of the last ``context_len`` tokens, per layer, in a ring buffer.

    Slot ``t % context_len`` holds token t, so a step writes one slot in place instead of
    concatenating and copying the whole window (which dominated the step time). Attention does
    not care about the order of keys: the learned distance bias of each slot says how far back
    its token is.
    """

    keys: list[torch.Tensor]  # per layer (B, H, c, hd)
    values: list[torch.Tensor]
    valid: torch.Tensor  # (B, c) True where a slot holds a token of the current context
    last_obs: torch.Tensor | None = None  # (B, C) features of the last observation stepped (prev_obs)
    written: int = 0  # tokens stepped so far; the next one goes to slot written % c

    @property
    def length(self) -> int:
        """Previous tokens a new token can attend to."""
        return min(self.written, self.valid.shape[1] - 1)

    def clear(self, rows: torch.Tensor) -> None:
        """Forget the context of the batch rows where ``rows`` (B,) is True."""
        self.valid[rows] = False
        if self.last_obs is not None:
            self.last_obs[rows] = 0.0


class Block(nn.Module):
    def __init__(self, config: ADConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.n_embd // config.n_head
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.ffn = nn.Sequential(
            nn.Linear(config.n_embd, config.ffn_dim), nn.GELU(), nn.Linear(config.ffn_dim, config.n_embd)
        )
        self.dropout = config.dropout
        self.attn_dropout = config.attn_dropout
        # Learned attention bias per head and distance 0..c-1 (distance 0 = the token itself).
        self.distance_bias = nn.Parameter(torch.zeros(config.n_head, config.context_len))

    # The submodules hold the weights; calling them through torch.nn.functional skips the module
    # call machinery, which was a fifth of the time of a cached inference step.
    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        h = F.layer_norm(x, (C,), self.ln1.weight, self.ln1.bias, self.ln1.eps)
        q, k, v = F.linear(h, self.qkv.weight, self.qkv.bias).split(C, dim=2)
        return tuple(t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)

    def _finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        B, _, T, _ = attended.shape
        C = x.shape[-1]
        out = F.linear(attended.transpose(1, 2).reshape(B, T, C), self.proj.weight, self.proj.bias)
        x = x + self._dropout(out)
        h = F.layer_norm(x, (C,), self.ln2.weight, self.ln2.bias, self.ln2.eps)
        up, down = self.ffn[0], self.ffn[2]
        h = F.linear(F.gelu(F.linear(h, up.weight, up.bias)), down.weight, down.bias)
        return x + self._dropout(h)

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, training=True) if self.training and self.dropout > 0 else x

    def forward(self, x: torch.Tensor, distance: torch.Tensor, allowed: torch.Tensor,
                chunks: list[tuple[int, int, int]]) -> torch.Tensor:
        # x: (B, T, C); distance: (B or 1, T, T) long, query minus key; allowed: (B or 1, 1, T, T) bool;
        # chunks: (start, end, first): queries start..end-1 attend to keys first..end-1, which must
        # hold every key they are allowed (see `attention_chunks`).
        q, k, v = self._split(x)
        attended = [
            self._attend(q[:, :, start:end], k[:, :, first:end], v[:, :, first:end],
                         distance[:, start:end, first:end], allowed[:, :, start:end, first:end])
            for start, end, first in chunks
        ]
        return self._finish(x, attended[0] if len(attended) == 1 else torch.cat(attended, dim=2))

    def _attend(self, q, k, v, distance, allowed) -> torch.Tensor:
        # q: (B, H, Tq, hd); k, v: (B, H, Tk, hd); distance: (B or 1, Tq, Tk); allowed: (B or 1, 1, Tq, Tk)
        bias = self.distance_bias[:, distance.clamp(0, self.distance_bias.shape[1] - 1)].transpose(0, 1)  # (B or 1, H, Tq, Tk)
        mask = bias.masked_fill(~allowed, float("-inf"))
        # Written out rather than through scaled_dot_product_attention: a mask that needs a gradient
        # (the learned bias) sends SDPA to its reference path, which also scans every score for rows
        # masked out entirely (none are: a token always sees itself). That scan cost a tenth of an update.
        scores = torch.matmul(q * self.head_dim**-0.5, k.transpose(-2, -1)).add_(mask)  # (B, H, Tq, Tk)
        weights = scores.softmax(dim=-1)
        if self.training and self.attn_dropout > 0:
            weights = F.dropout(weights, self.attn_dropout, training=True)
        return torch.matmul(weights, v)  # (B, H, Tq, hd)

    def step(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, slot: int, mask: torch.Tensor):
        # x: (B, 1, C); keys/values: (B, H, c, hd) ring buffers, written in place at ``slot``;
        # mask: (B, H, 1, c) distance bias of every slot, -inf where a slot is empty or cleared
        q, k, v = self._split(x)
        keys[:, :, slot] = k[:, :, 0]
        values[:, :, slot] = v[:, :, 0]
        return self._finish(x, F.scaled_dot_product_attention(q, keys, values, attn_mask=mask))


def attention_chunks(T: int, context_len: int, banded: bool, causal: bool) -> list[tuple[int, int, int]]:
    """Query chunks (start, end, first key) for a sequence of T tokens.

    Where no token attends to a later one (``causal``), queries attend in chunks of half a
    context, each only to the keys up to its last query, and where the band also follows the
    token index (``banded``: default rows), from its first query's reach back. A 300-token
    sequence with a 200-token context then scores 60k query-key pairs instead of 90k: 1.2-1.35x
    faster training (benchmarks/results/parallel_training.md). Otherwise one chunk of everything.
    """
    size = max(1, context_len // 2)
    if not causal or T <= size:
        return [(0, T, 0)]
    return [(start, min(T, start + size), max(0, start - context_len + 1) if banded else 0) for start in range(0, T, size)]


def pixel_convs(channels: int, height: int, width: int) -> tuple[nn.Sequential, int]:
    """Two strided convolutions for small flat-coloured frames (N, C, H, W) -> (N, flat), and flat.

    Small on purpose: the pixel families render flat-coloured cells a few pixels wide, and a
    training batch holds thousands of frames. The SB3 sources' CNN policies use the same stack.
    """
    convs = nn.Sequential(
        nn.Conv2d(channels, 16, kernel_size=4, stride=4), nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, stride=2), nn.ReLU(), nn.Flatten(),
    )
    # The output size by arithmetic, not by running a frame: a checkpoint's config may claim any
    # frame size, and `check_weights_fit` asks for it before anything that large is allocated.
    h, w = height, width
    for conv in (layer for layer in convs if isinstance(layer, nn.Conv2d)):  # unpadded, undilated
        h, w = (h - conv.kernel_size[0]) // conv.stride[0] + 1, (w - conv.kernel_size[1]) // conv.stride[1] + 1
        channels = conv.out_channels
    if min(h, w) < 1:
        raise ValueError(f"frames of {height}x{width} pixels are too small for the pixel encoder")
    return convs, channels * h * w


class ImageEncoder(nn.Module):
    """Pixels (N, H, W, C) uint8 -> (N, n_embd): `pixel_convs` and a linear map."""

    def __init__(self, image_shape: tuple[int, int, int], n_embd: int):
        super().__init__()
        height, width, channels = image_shape
        self.convs, flat = pixel_convs(channels, height, width)
        self.linear = nn.Linear(flat, n_embd)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0  # (N, C, H, W) in [0, 1]
        return self.linear(self.convs(x))


def check_weights_fit(config: ADConfig, state_dict: dict[str, torch.Tensor]) -> None:
    """A ValueError unless the stored weights have the shapes ``config`` asks for, checked from
    the config's numbers alone: a crafted config (a billion-token context, ten million layers)
    is refused before anything the size of its claims is built."""
    layers = {int(key.split(".")[1]) for key in state_dict if key.startswith("blocks.") and key.split(".")[1].isdigit()}
    if len(layers) != config.n_layer or layers != set(range(len(layers))):  # the count first: n_layer may be huge
        raise ValueError(f"the config has {config.n_layer} layers, the weights {len(layers)}")
    C = config.n_embd
    expected = {
        "head.weight": (config.n_actions, C),
        "action_embedding.weight": (config.n_actions + 1, C),
        "step_embedding.weight": (config.max_episode_steps, C),
        "blocks.0.distance_bias": (config.n_head, config.context_len),
        "blocks.0.ffn.0.weight": (config.ffn_dim, C),
    }
    if config.image_shape is None:
        expected["obs_embedding.weight"] = (sum(config.obs_nvec), C)
    else:
        height, width, channels = config.image_shape
        expected["image_encoder.linear.weight"] = (C, pixel_convs(channels, height, width)[1])
    wrong = [f"{key} {tuple(state_dict[key].shape) if key in state_dict else 'missing'} (config: {shape})"
             for key, shape in expected.items() if key not in state_dict or tuple(state_dict[key].shape) != shape]
    if wrong:
        raise ValueError("the weights do not have the config's shapes: " + "; ".join(wrong))


class ADTransformer(nn.Module):
    """Predicts the next action's logits from a sequence of transition tokens."""

    def __init__(self, config: ADConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        # One embedding table for all observation components (offsets keep them apart): the sum of
        # rows is a linear map of the components' one-hot codes.
        if config.image_shape is not None:
            self.image_encoder = ImageEncoder(config.image_shape, C)
        else:
            self.register_buffer("obs_offsets", torch.tensor([0, *config.obs_nvec[:-1]]).cumsum(0), persistent=False)
            self.obs_embedding = nn.Embedding(sum(config.obs_nvec), C)
        if config.prev_obs:
            self.prev_obs_projection = nn.Linear(C, C)
        if config.final_obs:
            self.final_obs_projection = nn.Linear(C, C)
        self.action_embedding = nn.Embedding(config.n_actions + 1, C)  # last row: no previous action
        self.reward_embedding = nn.Linear(1, C)
        self.step_embedding = nn.Embedding(config.max_episode_steps, C)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, config.n_actions)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def observation_features(self, obs: torch.Tensor) -> torch.Tensor:
        """(..., D) long or (..., H, W, C) uint8 observations -> (..., C) features."""
        if self.config.image_shape is not None:
            lead = obs.shape[:-3]
            return self.image_encoder(obs.reshape(-1, *obs.shape[-3:])).view(*lead, self.config.n_embd)
        return self.obs_embedding(obs + self.obs_offsets).sum(dim=-2)

    def embed(self, obs, prev_actions, prev_rewards, steps, last_obs=None, final_obs=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, T, C) and the observations' own features (B, T, C).

        obs: (B, T, D) long, or (B, T, H, W, C) uint8 pixels; prev_actions, steps: (B, T) long
        (n_actions = none); prev_rewards: (B, T) float; last_obs: (B, C) features of the
        observation before obs[:, 0] (prev_obs models; zeros where None); final_obs: like obs,
        read only at the first token of an episode that follows another (final_obs models).
        """
        features = self.observation_features(obs)
        x = features + self.action_embedding(prev_actions) + self.reward_embedding(prev_rewards.unsqueeze(-1))
        x = x + self.step_embedding(steps.clamp(max=self.config.max_episode_steps - 1))
        if self.config.prev_obs:
            first = torch.zeros_like(features[:, :1]) if last_obs is None else last_obs[:, None]
            x = x + self.prev_obs_projection(torch.cat([first, features[:, :-1]], dim=1))
        if self.config.final_obs:
            if final_obs is None:
                raise ValueError("this model embeds the view each episode ended on: pass final_obs")
            after_end = (steps == 0) & (prev_actions < self.config.n_actions)  # (B, T)
            ended = torch.zeros_like(x)
            ended[after_end] = self.final_obs_projection(self.observation_features(final_obs[after_end]))
            x = x + ended
        return self.dropout(x), features

    def forward(self, obs, prev_actions, prev_rewards, steps, final_obs=None, positions=None, allowed=None) -> torch.Tensor:
        """Logits (B, T, n_actions) of a_t for every token of the sequences.

        By default each row is one sequence and token t attends to the ``context_len`` tokens up to
        itself. Several sequences that share a prefix can be packed into one row instead:
        ``positions`` (B, T) long gives each token's place in its own sequence (distances are taken
        between positions) and ``allowed`` (B, T, T) bool which keys each query may see (within the
        band; every token always sees itself, so padding rows stay finite).
        """
        x, _ = self.embed(obs, prev_actions, prev_rewards, steps, final_obs=final_obs)
        B, T, _ = x.shape
        position = torch.arange(T, device=x.device)[None] if positions is None else positions  # (B or 1, T)
        distance = position[:, :, None] - position[:, None, :]  # (B or 1, T, T)
        band = (distance >= 0) & (distance < self.config.context_len)
        if allowed is not None:
            band = (band & allowed) | torch.eye(T, dtype=torch.bool, device=x.device)
        allowed = band[:, None]  # (B or 1, 1, T, T)
        if self.training and self.config.token_mask_prob > 0:
            # Hide random context tokens from every query (never a token from itself).
            hidden = torch.rand(B, 1, 1, T, device=x.device) < self.config.token_mask_prob
            allowed = allowed & ~(hidden & (distance[:, None] > 0))
        chunks = attention_chunks(T, self.config.context_len, banded=positions is None,
                                  causal=positions is None or not allowed.triu(diagonal=1).any())
        for block in self.blocks:
            x = block(x, distance, allowed, chunks)
        return self.head(self.ln_f(x))

    def new_cache(self, batch_size: int) -> KVCache:
        param = self.head.weight
        shape = (batch_size, self.config.n_head, self.config.context_len, self.config.n_embd // self.config.n_head)
        return KVCache(
            keys=[param.new_zeros(shape) for _ in self.blocks],
            values=[param.new_zeros(shape) for _ in self.blocks],
            valid=torch.zeros(batch_size, self.config.context_len, dtype=torch.bool, device=param.device),
            last_obs=param.new_zeros(batch_size, self.config.n_embd) if self.config.prev_obs else None,
        )

    @torch.no_grad()
    def step(self, cache: KVCache, obs, prev_actions, prev_rewards, steps, final_obs=None) -> torch.Tensor:
        """Logits (B, n_actions) for one new token per row, reusing and then updating ``cache``.

        Inputs as in `forward` with T = 1 dropped: obs and final_obs (B, D), the others (B,).
        """
        final_obs = None if final_obs is None else final_obs[:, None]
        x, features = self.embed(
            obs[:, None], prev_actions[:, None], prev_rewards[:, None], steps[:, None], cache.last_obs, final_obs
        )
        if cache.last_obs is not None:
            cache.last_obs = features[:, 0]
        c = self.config.context_len
        slot = cache.written % c
        cache.valid[:, slot] = True
        cache.written += 1
        # Slot j holds the token (slot - j) mod c steps back; one bias lookup for all layers.
        distance = (slot - torch.arange(c, device=x.device)).remainder(c)  # (c,)
        bias = torch.stack([block.distance_bias for block in self.blocks])[:, :, distance]  # (n_layer, H, c)
        masks = bias[:, None, :, None, :].masked_fill(~cache.valid[None, :, None, None, :], float("-inf"))
        for block, keys, values, mask in zip(self.blocks, cache.keys, cache.values, masks):
            x = block.step(x, keys, values, slot, mask)  # mask: (B, H, 1, c)
        return self.head(self.ln_f(x[:, 0]))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
