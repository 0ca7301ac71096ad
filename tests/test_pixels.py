"""Pixel observations through the whole stack: recording, the history format, the CNN model, ADAgent."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import ad_gym
from ad_gym.agents import ADAgent
from ad_gym.data.histories import History, IndexedObservations, read_history, save_history
from ad_gym.data.windows import SequenceSampler, build_sequences
from ad_gym.models.transformer import ADConfig, ADTransformer
from ad_gym.sources.sb3 import SourceConfig, learn_task
from ad_gym.training import TrainConfig, train

ENV_ID = "Watermaze-v0"
TINY_SOURCE = SourceConfig(algo="ppo", n_streams=2, total_steps=400, hyperparams={"n_steps": 50, "batch_size": 50, "n_epochs": 1})


@pytest.fixture(scope="module")
def pixel_histories(tmp_path_factory):
    root = tmp_path_factory.mktemp("pixels")
    paths = []
    for i, task in enumerate(ad_gym.tasks(ENV_ID, "train")[:2]):
        history = learn_task(ENV_ID, task, TINY_SOURCE)
        paths.append(save_history(history, root / f"{i}.npz"))
    return root, paths


def test_recorded_pixels_are_the_env_frames_stored_once(pixel_histories):
    _, paths = pixel_histories
    history = read_history(paths[0])
    obs = history.observations
    assert isinstance(obs, IndexedObservations) and obs.shape == (2, 200, 36, 36, 3) and obs.dtype == np.uint8
    assert len(obs.table) < 200  # far fewer distinct frames than steps
    assert isinstance(history.next_observations, IndexedObservations) and history.next_observations.table is obs.table
    # Replay stream 0's actions in a fresh env: every recorded frame is the frame the env showed,
    # and every next frame the one its step returned (the view an episode ended on, before the reset).
    env = gym.make(ENV_ID, **history.task)
    frame, _ = env.reset(seed=0)
    for t in range(200):
        np.testing.assert_array_equal(obs[0, t], frame)
        frame, _, terminated, truncated, _ = env.step(int(history.actions[0, t]))
        np.testing.assert_array_equal(history.next_observations[0, t], frame)
        assert bool(history.dones[0, t]) == (terminated or truncated)
        if terminated or truncated:
            frame, _ = env.reset()
    assert history.dones[0].any()


def test_indexed_observations_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 36, 36, 3), dtype=np.uint8)
    full = frames[rng.integers(0, 4, (3, 25))]
    ended_on = np.full((3, 25, 36, 36, 3), 7, dtype=np.uint8)  # a fifth frame, seen only as a next observation
    history = History(task={"platform": (1, 1)}, observations=full, actions=np.zeros((3, 25), np.int64),
                      rewards=np.zeros((3, 25), np.float32), dones=np.zeros((3, 25), bool), next_observations=ended_on)
    back = read_history(save_history(history, tmp_path / "h.npz"))
    assert back.observations.table.shape == (5, 36, 36, 3) and back.next_observations.table is back.observations.table
    np.testing.assert_array_equal(np.asarray(back.observations), full)
    np.testing.assert_array_equal(back.observations[2, [0, 7]], full[2, [0, 7]])
    np.testing.assert_array_equal(np.asarray(back.next_observations), ended_on)


def test_sequences_gather_pixels_from_one_table(pixel_histories):
    _, paths = pixel_histories
    histories = [read_history(p) for p in paths]
    sequences = build_sequences(histories, n_actions=3)
    assert sequences.obs.ndim == 1 and sequences.obs_table.shape[1:] == (36, 36, 3)
    batch = SequenceSampler(sequences, seq_len=20, generator=torch.Generator().manual_seed(0)).sample(4)
    assert batch["obs"].shape == (4, 20, 36, 36, 3) and batch["obs"].dtype == torch.uint8
    # Token 0 of stream 0 is the first frame of history 0's stream 0.
    np.testing.assert_array_equal(sequences.obs_table[sequences.obs[0]], histories[0].observations[0, 0])
    # The first token after an episode ends carries the view that episode ended on (history 1's too).
    assert batch["final_obs"].shape == batch["obs"].shape
    for h, history in enumerate(histories):
        stream = h * history.n_streams  # stream 0 of each history
        end = np.flatnonzero(history.dones[0])[0]
        np.testing.assert_array_equal(
            sequences.obs_table[sequences.final_obs[sequences.starts[stream] + end + 1]], history.next_observations[0, end]
        )


@pytest.mark.parametrize("options", [{}, {"prev_obs": True, "final_obs": True}])
def test_cnn_model_is_causal_and_its_cache_matches(options):
    config = ADConfig(obs_nvec=(), image_shape=(36, 36, 3), n_actions=3, max_episode_steps=50, context_len=6,
                      n_layer=2, n_head=2, n_embd=32, ffn_dim=64, **options)
    model = ADTransformer(config).eval()
    g = torch.Generator().manual_seed(0)
    tokens = {
        "obs": torch.randint(0, 256, (2, 15, 36, 36, 3), generator=g, dtype=torch.uint8),
        "prev_actions": torch.randint(0, 4, (2, 15), generator=g),
        "prev_rewards": torch.zeros(2, 15),
        "steps": torch.arange(15).remainder(7).expand(2, 15),  # episodes of 7 steps: 2 follow another
        "final_obs": torch.randint(0, 256, (2, 15, 36, 36, 3), generator=g, dtype=torch.uint8),
    }
    full = model(**tokens)
    cache = model.new_cache(2)
    stepped = torch.stack([model.step(cache, **{k: v[:, t] for k, v in tokens.items()}) for t in range(15)], dim=1)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-5)
    changed = {k: v.clone() for k, v in tokens.items()}
    changed["obs"][:, 10] = 0
    torch.testing.assert_close(model(**changed)[:, :10], full[:, :10])


@pytest.mark.parametrize("options", [{}, {"prev_obs": True, "final_obs": True}])
def test_train_and_play_on_pixels(pixel_histories, tmp_path, options):
    root, _ = pixel_histories
    config = TrainConfig(context_len=20, seq_len=30, n_layer=1, n_head=2, n_embd=16, ffn_dim=32, batch_size=4,
                         updates=3, warmup=1, eval_every=3, checkpoint_every=3, threads=1, **options)
    agent = ADAgent.load(train(root, tmp_path / "run", config, progress=False), seed=0)
    assert agent.config.image_shape == (36, 36, 3)
    env = gym.make(ENV_ID, **ad_gym.tasks(ENV_ID, "test")[0])
    obs, _ = env.reset(seed=0)
    state = None
    for _ in range(60):
        action, state = agent.predict(obs, state)
        obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(reward, terminated or truncated, next_obs=obs)
        if terminated or truncated:
            obs, _ = env.reset()
    assert agent.config.final_obs == options.get("final_obs", False)
    actions, _ = agent.predict(np.stack([obs, obs]), None)  # a batch of two frames
    assert actions.shape == (2,)
    with pytest.raises(TypeError, match="uint8 images"):
        agent.predict(obs.astype(np.float32), None)
    with pytest.raises(ValueError, match=r"shape \(36, 36\) does not fit"):
        agent.predict(obs[..., 0], None)
