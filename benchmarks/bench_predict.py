"""ADAgent.predict: time per step with the key/value cache against recomputing the context.

    python benchmarks/bench_predict.py

Both agents play the same Dark Room batch side by side in one run, after enough steps that the
context is full (200 transitions per layer); the recompute agent reruns the model over every
token that can still influence the prediction (n_layer x 199 + 1 of them). Writes
benchmarks/results/predict.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ad_gym.agents import ADAgent
from ad_gym.models.transformer import ADConfig, ADTransformer

RESULTS = Path(__file__).parent / "results"


def make_agent(context_len: int, use_cache: bool) -> ADAgent:
    torch.manual_seed(0)
    config = ADConfig(obs_nvec=(9, 9), n_actions=5, max_episode_steps=20, context_len=context_len)
    meta = {"kind": "ad_model", "env_id": "DarkRoom-v0", "model": config.to_dict()}
    return ADAgent(ADTransformer(config), meta, use_cache=use_cache, seed=0)


def time_steps(agent: ADAgent, n_envs: int, warm: int, timed: int) -> float:
    rng = np.random.default_rng(0)
    state = None
    for step in range(warm + timed):
        if step == warm:
            start = time.perf_counter()
        obs = rng.integers(0, 9, size=(n_envs, 2))
        _, state = agent.predict(obs, state)
        agent.observe(rng.integers(0, 2, size=n_envs).astype(np.float32), np.full(n_envs, step % 20 == 19))
    return (time.perf_counter() - start) / timed


@torch.no_grad()
def time_window_forward(agent: ADAgent, n_envs: int, context_len: int, timed: int) -> float:
    """One forward pass over just the last ``context_len`` tokens: the usual 'recompute the window'."""
    g = torch.Generator().manual_seed(0)
    seq = {
        "obs": torch.randint(0, 9, (n_envs, context_len, 2), generator=g),
        "prev_actions": torch.randint(0, 5, (n_envs, context_len), generator=g),
        "prev_rewards": torch.zeros(n_envs, context_len),
        "steps": torch.arange(context_len).remainder(20).expand(n_envs, context_len),
    }
    agent.model(**seq)
    start = time.perf_counter()
    for _ in range(timed):
        agent.model(**seq)[:, -1]
    return (time.perf_counter() - start) / timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context-len", type=int, default=200)
    parser.add_argument("--timed-steps", type=int, default=2000, help="steps timed for the cache and the window")
    parser.add_argument("--recompute-steps", type=int, default=50, help="steps timed for the exact recompute (slow)")
    parser.add_argument("--out", type=Path, default=RESULTS / "predict.md")
    args = parser.parse_args()
    reach = 4 * (args.context_len - 1) + 1
    lines = [
        "# ADAgent.predict: cached vs recomputed context",
        "",
        f"Command: `{shlex.join(['python', f'benchmarks/{Path(__file__).name}', *sys.argv[1:]])}`",
        "",
        f"Model: 4 layers, width 64, context {args.context_len} transitions; torch {torch.__version__}. Timed over {args.timed_steps} steps ({args.recompute_steps} for the exact recompute) after {reach} warm-up steps "
        "(the context is full and the cache slides). Cached and exact-recompute steps are whole `predict` + `observe` "
        "calls; the window recompute is a bare model forward pass, so its speed-up is conservative. "
        "'Recompute the window' reruns the model over the last 200 tokens (what most AD code does, and "
        "not exactly equal to the cache once deeper layers see past the window); 'exact recompute' "
        "reruns it over every token that can still influence the prediction, which the cache equals.",
        "",
        "| torch threads | envs | cached ms/step | recompute the window (200 tokens) ms/step | speed-up | exact recompute "
        f"({reach} tokens) ms/step | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for n_envs in (1, 16):
            cached = time_steps(make_agent(args.context_len, True), n_envs, reach, args.timed_steps)
            window = time_window_forward(make_agent(args.context_len, True), n_envs, args.context_len, args.timed_steps)
            recompute = time_steps(make_agent(args.context_len, False), n_envs, reach, args.recompute_steps)
            lines.append(
                f"| {threads} | {n_envs} | {cached * 1e3:.2f} | {window * 1e3:.1f} | {window / cached:.1f}x | "
                f"{recompute * 1e3:.1f} | {recompute / cached:.0f}x |"
            )
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
