"""Collecting SB3 learning histories: what is recorded is what happened, and a rerun resumes."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import A2C
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv

import ad_gym
from ad_gym.sources import HistoryRecorder
from ad_gym.sources.collect import collect
from ad_gym.sources.sb3 import SourceConfig, learn_task
from tests.processes import HAS_PROC, alive, children
from tests.rules import HORIZON, RULES, rules_of

ENV_IDS = list(RULES)
TINY = SourceConfig(total_steps=800, n_streams=4)  # 200 steps, 10 episodes, per stream
ARRAYS = ("observations", "actions", "rewards", "dones")


def run(env_id, out, config=TINY, max_tasks=2, workers=1, **kwargs):
    return collect(env_id, out, max_tasks=max_tasks, config=config, workers=workers, progress=False, **kwargs)


@pytest.fixture(scope="module", params=ENV_IDS)
def collected(request, tmp_path_factory):
    """A tiny real collection of the first 2 train tasks, one process: (env_id, folder, results)."""
    env_id = request.param
    out = tmp_path_factory.mktemp(env_id)
    return env_id, out, run(env_id, out)


def assert_equal_histories(a, b):
    assert a.task == b.task
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def assert_follows_the_env_rules(history, rules):
    """Re-derive every observation and reward of every stream from the rules and the recorded actions."""
    goal = history.task["goal"]
    for obs, actions, rewards, dones in zip(history.observations, history.actions, history.rewards, history.dones):
        np.testing.assert_array_equal(np.flatnonzero(dones), np.arange(HORIZON - 1, len(dones), HORIZON))
        for t, action in enumerate(actions):
            if t % HORIZON == 0:  # a new episode starts at the centre
                position, reached = rules.start, False
            assert tuple(obs[t]) == position, f"step {t}: observation"
            position = rules.move(position, action)
            # exactly what the env paid: SB3's in-place bootstrap of truncated episodes is not recorded
            assert rewards[t] == rules.reward(position, goal, reached), f"step {t}: reward {rewards[t]}"
            reached |= position == goal


# -- what a collection holds ------------------------------------------------------------------------


def test_results_files_and_manifest(collected):
    env_id, out, results = collected
    tasks = ad_gym.tasks(env_id, "train")[:2]
    assert [r.task for r in results] == tasks
    assert all(not r.skipped and r.path.is_file() and r.path.parent == out and r.steps == 800 for r in results)
    assert sorted(p.name for p in out.iterdir()) == sorted(["collection.json", *(r.path.name for r in results)])
    manifest = json.loads((out / "collection.json").read_text())
    assert manifest["env_id"] == env_id and manifest["split"] == "train" and manifest["seed"] == 0
    assert manifest["source"]["total_steps"] == 800 and manifest["source"]["n_streams"] == 4


def test_histories_follow_the_env_rules(collected):
    env_id, out, _ = collected
    histories = ad_gym.load_histories(out, env_id=env_id)
    assert [h.task for h in histories] == ad_gym.tasks(env_id, "train")[:2]
    for history in histories:
        assert (history.n_streams, history.n_steps) == (4, 200)
        assert history.observations.shape == (4, 200, 2) and history.actions.shape == (4, 200)
        assert_follows_the_env_rules(history, rules_of(env_id))


def test_metadata(collected):
    env_id, out, _ = collected
    for index, history in enumerate(ad_gym.load_histories(out)):
        meta = history.metadata
        assert meta["env_id"] == env_id and meta["task_index"] == ad_gym.tasks(env_id, "all").index(history.task)
        assert history.task == ad_gym.tasks(env_id, "train")[index]
        assert meta["seed"] == 0 and isinstance(meta["learner_seed"], int)
        assert meta["ad_gym_version"] == ad_gym.__version__
        source = meta["source"]
        assert source["algo"] == "a2c" and source["n_streams"] == 4 and source["total_steps"] == 800
        assert source["policy"] == "auto" and source["algo_kwargs"] == {"ent_coef": 0.01}


def test_tasks_get_different_learners(collected):
    _, out, _ = collected
    first, second = ad_gym.load_histories(out)
    assert first.metadata["learner_seed"] != second.metadata["learner_seed"]


@pytest.mark.parametrize("collected", ["DarkRoom-v0"], indirect=True)
def test_two_worker_processes_give_the_same_histories(collected, tmp_path):
    _, reference, _ = collected
    results = run("DarkRoom-v0", tmp_path, workers=2)
    assert [r.skipped for r in results] == [False, False]
    for ours, theirs in zip(ad_gym.load_histories(tmp_path), ad_gym.load_histories(reference), strict=True):
        assert_equal_histories(ours, theirs)


@pytest.mark.parametrize("collected", ["DarkRoom-v0"], indirect=True)
def test_same_seed_same_histories_other_seed_others(collected, tmp_path):
    _, reference, _ = collected
    run("DarkRoom-v0", tmp_path / "same", max_tasks=1)
    assert_equal_histories(ad_gym.load_histories(tmp_path / "same")[0], ad_gym.load_histories(reference)[0])
    run("DarkRoom-v0", tmp_path / "other", max_tasks=1, seed=1)
    assert not np.array_equal(ad_gym.load_histories(tmp_path / "other")[0].actions, ad_gym.load_histories(reference)[0].actions)


# -- resuming -------------------------------------------------------------------------------------


def folder_state(out):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(out.iterdir())}


def test_rerun_with_the_same_settings_skips_every_task(collected):
    env_id, out, _ = collected
    before = folder_state(out)
    again = run(env_id, out)
    assert [r.skipped for r in again] == [True, True]
    assert folder_state(out) == before  # nothing rewritten, the manifest included


@pytest.mark.parametrize(
    "change, message",
    [
        ({"config": SourceConfig(total_steps=400, n_streams=4)}, "source"),
        ({"config": SourceConfig(total_steps=800, n_streams=2)}, "source"),
        ({"config": SourceConfig(total_steps=800, n_streams=4, hyperparams={"learning_rate": 1e-3})}, "source"),
        ({"config": SourceConfig(algo="ppo", total_steps=800, n_streams=4)}, "source"),
        ({"seed": 1}, "seed"),
        ({"split": "test"}, "split"),
    ],
    ids=["total_steps", "n_streams", "hyperparams", "algo", "seed", "split"],
)
def test_rerun_with_other_settings_is_refused(collected, change, message):
    env_id, out, _ = collected
    before = folder_state(out)
    with pytest.raises(ValueError, match=f"other settings.*{message}"):
        run(env_id, out, **change)
    assert folder_state(out) == before


def test_other_env_into_the_same_folder_is_refused(collected):
    env_id, out, _ = collected
    other = next(e for e in ENV_IDS if e != env_id)
    before = folder_state(out)
    with pytest.raises(ValueError, match=f"holds {env_id} histories, not {other}"):
        run(other, out, max_tasks=1)
    assert folder_state(out) == before


@pytest.mark.parametrize("collected", ["DarkRoom-v0"], indirect=True)
def test_other_env_histories_without_a_manifest_are_refused(collected, tmp_path):
    _, reference, results = collected
    shutil.copy(results[0].path, tmp_path)  # history files copied without their collection.json
    with pytest.raises(ValueError, match="holds DarkRoom-v0 histories, not DarkRoomHard-v0"):
        run("DarkRoomHard-v0", tmp_path, max_tasks=1)


@pytest.mark.parametrize("collected", ["DarkRoom-v0"], indirect=True)
def test_truncated_file_is_collected_again(collected, tmp_path):
    _, reference, results = collected
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    damaged = tmp_path / results[1].path.name
    damaged.write_bytes(damaged.read_bytes()[:300])  # as if copied half-way, say
    again = run("DarkRoom-v0", tmp_path)
    assert [r.skipped for r in again] == [True, False]
    # Collected again from the same seed: the very same history as before.
    for ours, theirs in zip(ad_gym.load_histories(tmp_path), ad_gym.load_histories(reference), strict=True):
        assert_equal_histories(ours, theirs)


@pytest.mark.parametrize("collected", ["DarkRoom-v0"], indirect=True)
def test_file_with_corrupted_compressed_data_is_collected_again(collected, tmp_path):
    """A file whose compressed bytes are damaged (zlib errors on read) is collected again."""
    _, reference, results = collected
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    damaged = tmp_path / results[0].path.name
    data = bytearray(damaged.read_bytes())
    data[100:108] = bytes(b ^ 0xFF for b in data[100:108])  # inside the first array's deflate stream
    damaged.write_bytes(bytes(data))
    again = run("DarkRoom-v0", tmp_path)
    assert [r.skipped for r in again] == [False, True]
    ad_gym.load_histories(tmp_path)


@pytest.mark.parametrize("collected", ["DarkRoom-v0"], indirect=True)
def test_histories_of_other_settings_without_a_manifest_are_refused(collected, tmp_path):
    """Without collection.json (history files copied on their own, or the manifest deleted), each
    file's metadata still says how it was collected: other settings are refused, never mixed."""
    _, reference, results = collected
    for result in results:
        shutil.copy(result.path, tmp_path)  # collected with total_steps=800
    with pytest.raises(ValueError, match="other settings"):
        run("DarkRoom-v0", tmp_path, config=SourceConfig(total_steps=400, n_streams=4))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"max_tasks": 0}, "max_tasks"), ({"workers": 0}, "workers"), ({"split": "validation"}, "unknown split")],
)
def test_bad_collect_arguments_are_refused_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run("DarkRoom-v0", tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_or_unknown_env_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        run("DarkRoom-v0", tmp_path / "file")
    with pytest.raises(ValueError, match="unknown env id"):
        run("Pong-v5", tmp_path / "out")


@pytest.mark.parametrize(
    "kwargs, message",
    [({"algo": "sac"}, "unknown algo"), ({"n_streams": 0}, "n_streams"), ({"total_steps": 2, "n_streams": 4}, "total_steps"),
     ({"hyperparams": {"lr": 1}}, "not A2C arguments"), ({"hyperparams": {"seed": 1}}, "may not set"),
     ({"algo": "oracle", "hyperparams": {"c": 1}}, "oracle takes no hyperparameters")],
)
def test_bad_source_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SourceConfig(**kwargs)


# -- the recorder ---------------------------------------------------------------------------------


class KeepReferences(BaseCallback):
    """Keeps SB3's own reward arrays, uncopied, to see what SB3 does to them after the callback."""

    def __init__(self):
        super().__init__()
        self.rewards = []

    def _on_step(self):
        self.rewards.append(self.locals["rewards"])
        return True


def test_recorder_copies_rewards_before_sb3_bootstraps_them_in_place():
    goal = (5, 4)  # next to the start: paid often
    env = DummyVecEnv([lambda: gym.make("DarkRoom-v0", goal=goal)] * 2)
    model = A2C("MlpPolicy", env, seed=0, device="cpu", n_steps=5)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default leaves a folder in /tmp
    recorder, spy = HistoryRecorder(), KeepReferences()
    model.learn(total_timesteps=400, callback=[recorder, spy])  # truncation every 20 steps per stream
    recorded = recorder.arrays()
    # SB3 really adds gamma * V(last obs) to the rewards of truncated steps, in place ...
    sb3_rewards = np.stack(spy.rewards, axis=1)
    assert not np.isin(sb3_rewards[:, HORIZON - 1 :: HORIZON], [0.0, 1.0]).all()
    # ... but the recording holds what the env paid: exactly 0.0 or 1.0, and by the rules.
    assert recorded["rewards"].dtype == np.float32 and np.isin(recorded["rewards"], [0.0, 1.0]).all()
    assert recorded["rewards"].shape == (2, 200) and recorded["rewards"].sum() > 0
    history = ad_gym.History(task={"goal": goal}, **recorded)
    assert_follows_the_env_rules(history, RULES["DarkRoom-v0"])


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_other_source_algorithms_are_recorded_exactly(algo):
    task = ad_gym.tasks("DarkRoom-v0", "train")[3]
    history = learn_task("DarkRoom-v0", task, SourceConfig(algo=algo, n_streams=2, total_steps=800), seed=0)
    assert history.metadata["source"]["algo"] == algo and history.n_steps >= 400
    assert_follows_the_env_rules(history, RULES["DarkRoom-v0"])


def test_the_source_learns():
    # Long enough to learn a goal: the last episodes beat the first ones by far.
    history = learn_task("DarkRoom-v0", ad_gym.tasks("DarkRoom-v0", "train")[0], SourceConfig(total_steps=16_000), seed=0)
    returns = np.stack(history.episode_returns())
    assert returns[:, -10:].mean() > returns[:, :10].mean() + 5


@pytest.mark.parametrize("env_id", ["DarkRoom-v0", "DarkKeyToDoor-v0", "Watermaze-v0", "AdversarialBandit-v0"])
def test_oracle_source_records_expert_demonstrations(env_id):
    # Expert data for ED, in the same format as a learner's: optimal from the first episode on.
    task = ad_gym.tasks(env_id, "train")[1]
    history = learn_task(env_id, task, SourceConfig(algo="oracle", n_streams=2, total_steps=400), seed=0)
    assert history.metadata["source"]["algo"] == "oracle" and history.n_streams == 2
    returns = np.stack([r[:3] for r in history.episode_returns()])
    env = gym.make(env_id, **task)
    if env_id == "AdversarialBandit-v0":  # random rewards: the best arm, every pull
        assert (history.actions == np.argmax(task["means"])).all()
    elif env_id == "DarkKeyToDoor-v0":  # random starts: key and door every episode
        assert (returns == 2).all()
    else:
        env.reset(seed=0)
        assert (returns == env.unwrapped.optimal_return()).all()


@pytest.mark.skipif(not HAS_PROC, reason="reads the process tree from /proc")
def test_collection_workers_exit_when_the_job_is_killed(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        from ad_gym.sources.collect import collect
        from ad_gym.sources.sb3 import SourceConfig
        if __name__ == "__main__":
            collect("DarkRoom-v0", {str(tmp_path / "histories")!r}, config=SourceConfig(n_streams=2, total_steps=2_000_000),
                    max_tasks=2, workers=2, progress=False)
    """))
    job = subprocess.Popen([sys.executable, str(script)])
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(children(job.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = children(job.pid)
        assert len(workers) >= 2, "the job never started its workers"
        time.sleep(5)  # let them start learning
        job.kill()  # SIGKILL: the job gets no chance to shut its pool down
        job.wait()
        deadline = time.monotonic() + 15
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(w) for w in workers), "workers kept running after their job was killed"
    finally:
        job.kill()
        for worker in workers:
            if alive(worker):
                os.kill(worker, 9)


def test_sb3_learners_keep_their_own_logs_only_when_asked(tmp_path):
    config = SourceConfig(n_streams=2, total_steps=1200)  # A2C: 120 updates, logged at the 100th
    collect("DarkRoom-v0", tmp_path / "quiet", config=config, max_tasks=1, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quiet"]
    collect("DarkRoom-v0", tmp_path / "h", config=config, max_tasks=1, workers=1, progress=False, sb3_log_dir=tmp_path / "logs")
    (log,) = (tmp_path / "logs").glob("*/progress.csv")
    header, *rows = log.read_text().splitlines()
    assert "time/total_timesteps" in header and "train/entropy_loss" in header and len(rows) == 1


def test_the_ray_backend_writes_the_local_backends_arrays(tmp_path):
    """Collection on a (local) Ray cluster: the same histories, array for array, as the process pool."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    config = SourceConfig(n_streams=2, total_steps=400)
    local = collect("DarkRoom-v0", tmp_path / "local", config=config, max_tasks=2, workers=2, progress=False)
    on_ray = collect("DarkRoom-v0", tmp_path / "ray", config=config, max_tasks=2, workers=2, progress=False, backend="ray")
    for a, b in zip(local, on_ray):
        assert a.path.name == b.path.name and not b.skipped
        with np.load(a.path) as x, np.load(b.path) as y:
            assert x.files == y.files
            for key in set(x.files) - {"metadata"}:
                np.testing.assert_array_equal(x[key], y[key])
            meta_x, meta_y = (json.loads(f["metadata"].tobytes()) for f in (x, y))
            assert meta_x.pop("seconds") > 0 and meta_y.pop("seconds") > 0  # what differs: how long it took
            assert meta_x == meta_y
    again = collect("DarkRoom-v0", tmp_path / "ray", config=config, max_tasks=2, workers=2, progress=False, backend="ray")
    assert all(r.skipped for r in again)  # resumes as the local backend does


def test_a_ray_address_needs_the_ray_backend(tmp_path):
    with pytest.raises(ValueError, match="backend='ray'"):
        collect("DarkRoom-v0", tmp_path, config=SourceConfig(n_streams=2, total_steps=400), max_tasks=1, address="auto")
    with pytest.raises(ValueError, match="backend must be one of"):
        collect("DarkRoom-v0", tmp_path, backend="dask")
