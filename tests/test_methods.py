"""Methods plug in at one place: a toy method defined here runs through the whole pipeline, and
each shipped method (AD, ED, AD-ε, DPT) trains and plays on a tiny budget."""

import dataclasses

import numpy as np
import pytest
import torch

from ad_gym.agents import ADAgent, load_agent
from ad_gym.checkpoints import load_checkpoint
from ad_gym.data.histories import load_histories
from ad_gym.envs.tasks import oracle_for
from ad_gym.methods import METHODS, Method, register
from ad_gym.methods.ad import AD
from ad_gym.methods.ad_eps import ADEps
from ad_gym.methods.dpt import DPT, QueryEpisodeSampler
from ad_gym.models.transformer import ADConfig, ADTransformer
from ad_gym.pipeline import run_pipeline
from ad_gym.presets import PRESETS, Preset
from ad_gym.sources.sb3 import SourceConfig, learn_task
from ad_gym.training import train
from tests.conftest import TINY_TRAIN

TINY_SOURCE = SourceConfig(n_streams=2, total_steps=1200)


def tiny_preset(*methods) -> Preset:
    return Preset(source=TINY_SOURCE, methods=methods, eval_episodes=6, eval_seeds=(0,), train_tasks=2, test_tasks=2)


@register
@dataclasses.dataclass
class Toy(Method):
    """A method the rest of the code has never heard of: AD's trainer for five updates."""

    name = "TOY"
    slug = "toy"

    def train(self, data, out, seed=0, progress=True, provenance=None):
        config = dataclasses.replace(TINY_TRAIN, updates=5, seed=seed)
        return train(data.source_train, out, config, val_path=data.source_test, progress=progress, method=self.name)


def test_a_toy_method_runs_through_the_pipeline_unchanged(tmp_path):
    result = run_pipeline("DarkRoom-v0", tiny_preset(Toy()), tmp_path, workers=1, progress=False)
    assert result.methods == ("TOY",) and result.curves["TOY"].shape == (2, 6)
    assert "| TOY |" in result.table
    meta, _ = load_checkpoint(tmp_path / "toy" / "checkpoint.pt")
    assert meta["method"] == "TOY"
    assert isinstance(load_agent(tmp_path / "toy"), ADAgent)


def test_method_names_are_unique_and_checkpoints_name_their_method(tiny_checkpoint):
    assert {"AD", "ED", "AD-ε", "DPT", "TOY"} <= set(METHODS)
    with pytest.raises(ValueError, match="registered already"):
        register(type("Other", (Method,), {"name": "AD", "slug": "other"}))
    assert load_checkpoint(tiny_checkpoint)[0]["method"] == "AD"
    assert isinstance(load_agent(tiny_checkpoint), ADAgent)
    with pytest.raises(ValueError, match="each method may appear once"):
        tiny_preset(AD(TINY_TRAIN), AD(TINY_TRAIN))
    with pytest.raises(TypeError, match="Method instances"):
        tiny_preset("AD")


def test_ad_eps_collects_noisy_oracle_histories_and_trains_on_them(tmp_path):
    noisy = SourceConfig(algo="oracle-eps", n_streams=2, total_steps=1200, hyperparams={"decay_episodes": 20})
    result = run_pipeline("DarkRoom-v0", tiny_preset(ADEps(TINY_TRAIN, source=noisy)), tmp_path, workers=1, progress=False)
    assert result.methods == ("AD-ε",) and "collect oracle-eps" in result.seconds
    histories = load_histories(tmp_path / "histories" / "oracle-eps-train")
    assert [h.metadata["source"]["algo"] for h in histories] == ["oracle-eps"] * 2
    returns = np.stack(histories[0].episode_returns())  # (streams, 30 episodes): noisy first, then the oracle's
    assert returns[:, -10:].mean() > returns[:, :5].mean() and returns[:, -5:].min() > 10
    meta, _ = load_checkpoint(tmp_path / "ad-eps" / "checkpoint.pt")
    assert meta["method"] == "AD-ε" and meta["source"]["algo"] == "oracle-eps"
    with pytest.raises(ValueError, match="oracle-eps"):
        ADEps(TINY_TRAIN, source=TINY_SOURCE)


def test_ad_ps_trains_on_a_searching_explorers_histories(tmp_path):
    from ad_gym.methods.ad_ps import EXPLORER, ADPS

    explorer = SourceConfig(algo="oracle-eps", n_streams=2, total_steps=2 * 20 * 20, hyperparams=EXPLORER)
    result = run_pipeline("DarkRoom-v0", tiny_preset(ADPS(TINY_TRAIN, source=explorer)), tmp_path, workers=1, progress=False)
    assert result.methods == ("AD-PS",) and "collect explorer" in result.seconds
    history = load_histories(tmp_path / "histories" / "explorer-train")[0]
    returns = np.stack(history.episode_returns())  # (streams, 20 episodes): searching, then straight to the goal
    assert returns[:, -5:].mean() > 12 and (returns > 0).any(axis=1).all()
    meta, _ = load_checkpoint(tmp_path / "ad-ps" / "checkpoint.pt")
    assert meta["method"] == "AD-PS"
    with pytest.raises(ValueError, match="remember"):
        ADPS(TINY_TRAIN, source=SourceConfig(algo="oracle-eps", n_streams=2, total_steps=800))


def test_dpt_trains_on_oracle_queries_after_exploration_contexts(tmp_path):
    dpt = DPT(dataclasses.replace(TINY_TRAIN, seq_len=40),
              context_source=SourceConfig(algo="oracle-eps", n_streams=2, total_steps=400, hyperparams={"decoy": True}))
    result = run_pipeline("DarkRoom-v0", tiny_preset(dpt), tmp_path, workers=1, progress=False)
    assert result.methods == ("DPT",) and result.curves["DPT"].shape == (2, 6)
    meta, _ = load_checkpoint(tmp_path / "dpt" / "checkpoint.pt")
    assert meta["method"] == "DPT" and meta["query_source"]["hyperparams"]["resample"]
    assert (tmp_path / "histories" / "dpt-queries-test").is_dir()  # the validation loss's queries


def test_query_episodes_are_labelled_by_the_oracle_and_see_only_the_context_before_them():
    goals = [(0, 1), (3, 3)]
    decoy = SourceConfig(algo="oracle-eps", n_streams=2, total_steps=200, hyperparams={"decoy": True})
    context = [learn_task("DarkRoom-v0", {"goal": g}, decoy) for g in goals]
    queries = [learn_task("DarkRoom-v0", {"goal": g}, SourceConfig(algo="oracle", n_streams=1, total_steps=40)) for g in goals]
    sampler = QueryEpisodeSampler(context, queries, n_actions=5, length=50, generator=torch.Generator().manual_seed(0),
                                  queries_per_row=3)
    batch = sampler.sample(64)
    seen_empty = seen_full = False
    for row in range(64):
        mask, positions, allowed = batch["loss_mask"][row].numpy(), batch["positions"][row].numpy(), batch["allowed"][row].numpy()
        starts = [t for t in np.flatnonzero(mask) if batch["steps"][row, t] == 0]
        assert 1 <= len(starts) <= 3 and mask.sum() == 20 * len(starts)  # whole 20-step oracle episodes
        context = np.flatnonzero(allowed.any(axis=0) & ~mask)  # tokens of the context window
        for start in starts:
            episode = np.arange(start, start + 20)
            obs = batch["obs"][row, episode].numpy()
            goal = next(g for g in goals if (obs[-1] == g).all())  # the oracle ends on its goal
            expected, _ = oracle_for("DarkRoom-v0", [{"goal": goal}] * 20).predict(obs)
            np.testing.assert_array_equal(batch["actions"][row, episode].numpy(), expected)
            np.testing.assert_array_equal(positions[episode], positions[start] + np.arange(20))
            sees = context[allowed[start, context]]  # the context this query was played after
            np.testing.assert_array_equal(positions[sees], np.arange(positions[start]))
            assert not allowed[episode][:, mask & ~np.isin(np.arange(len(mask)), episode)].any()  # no other query
            if len(sees) == 0:
                seen_empty = True
                assert batch["prev_actions"][row, start] == 5  # follows nothing
            else:
                seen_full = True
                assert batch["steps"][row, sees[-1]] == 19  # cut after a whole episode
    assert seen_empty and seen_full


def test_packed_rows_give_the_logits_of_the_plain_sequence():
    torch.manual_seed(0)
    model = ADTransformer(ADConfig(obs_nvec=(9, 9), n_actions=5, max_episode_steps=20, context_len=16, n_layer=2,
                                   n_head=2, n_embd=16, ffn_dim=32)).eval()
    T, pad = 12, 7
    tokens = {"obs": torch.randint(9, (1, T, 2)), "prev_actions": torch.randint(6, (1, T)),
              "prev_rewards": torch.rand(1, T), "steps": torch.randint(20, (1, T))}
    padded = {k: torch.cat([torch.randint_like(v[:, :pad], 5) if v.dtype != torch.float32 else torch.rand(1, pad), v], dim=1)
              for k, v in tokens.items()}
    real = torch.arange(pad + T) >= pad
    allowed = (real[None, :] & real[:, None])[None]  # (1, T, T): padding is seen by nothing
    positions = (torch.arange(pad + T) - pad)[None]
    with torch.no_grad():
        plain = model(**tokens)
        masked = model(**padded, positions=positions, allowed=allowed)[:, pad:]
    torch.testing.assert_close(plain, masked)


@pytest.mark.parametrize("env_id", ["DarkKeyToDoor-v1", "AdversarialBandit-v0", "Watermaze-v1"])
def test_dpt_and_ad_eps_train_and_play_on_every_family_with_an_oracle(env_id, tmp_path):
    from ad_gym.envs.tasks import tasks

    horizon = {"DarkKeyToDoor-v1": 50, "AdversarialBandit-v0": 100, "Watermaze-v1": 50}[env_id]
    config = dataclasses.replace(TINY_TRAIN, context_len=2 * horizon + 20, seq_len=3 * horizon, updates=3)
    dpt = DPT(config,
              context_source=SourceConfig(algo="oracle-eps", n_streams=2, total_steps=8 * horizon, hyperparams={"decoy": True}),
              query_source=SourceConfig(algo="oracle", n_streams=1, total_steps=2 * horizon))
    ad_eps = ADEps(dataclasses.replace(config, every_k=1, max_episodes=None),
                   source=SourceConfig(algo="oracle-eps", n_streams=2, total_steps=8 * horizon, hyperparams={"decay_episodes": 4}))
    preset = Preset(source=SourceConfig(algo="oracle", n_streams=1, total_steps=4 * horizon), methods=(dpt, ad_eps),
                    eval_episodes=2, eval_seeds=(0,), train_tasks=2, test_tasks=1)
    result = run_pipeline(env_id, preset, tmp_path, workers=1, progress=False)
    assert result.methods == ("DPT", "AD-ε")
    assert result.curves["DPT"].shape == result.curves["AD-ε"].shape == (len(tasks(env_id, "test")[:1]), 2)


def test_a_method_may_record_its_oracle_histories_on_more_train_tasks_than_the_source(tmp_path):
    ad_eps = ADEps(dataclasses.replace(TINY_TRAIN, every_k=1, max_episodes=None, updates=2),
                   source=SourceConfig(algo="oracle-eps", n_streams=2, total_steps=400), train_tasks=3)
    run_pipeline("DarkRoom-v0", tiny_preset(ad_eps), tmp_path, workers=1, progress=False)
    histories = tmp_path / "histories"
    assert len(load_histories(histories / "train")) == 2  # the preset's train_tasks bound the RL source
    assert len(load_histories(histories / "oracle-eps-train")) == 3
    assert len(load_histories(histories / "oracle-eps-test")) == 2  # held-out tasks are the preset's
    meta, _ = load_checkpoint(tmp_path / "ad-eps" / "checkpoint.pt")
    assert len(meta["train_tasks"]) == 3
    with pytest.raises(ValueError, match="train_tasks"):
        ADEps(train_tasks=0).collections()


@pytest.mark.parametrize("bad, message", [
    ({"queries_per_row": 0}, "queries_per_row"),
    ({"config": dataclasses.replace(TINY_TRAIN, prev_obs=True)}, "prev_obs"),
    ({"query_source": SourceConfig(algo="a2c")}, "oracle"),
])
def test_dpt_settings_that_cannot_work_are_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        DPT(**bad)


def test_queries_that_tried_wrong_hypotheses_first_are_labelled_on_their_oracle_tail():
    from ad_gym.methods.dpt import oracle_actions

    goals = [(0, 1), (7, 6)]
    ps_like = SourceConfig(algo="oracle-eps", n_streams=2, total_steps=200,
                           hyperparams={"decoy": True, "resample": True, "eps_start": 0.0, "eps_end": 0.0, "true_prob": 0.5})
    context = [learn_task("DarkRoom-v0", {"goal": g}, ps_like) for g in goals]
    queries = [learn_task("DarkRoom-v0", {"goal": g}, ps_like) for g in goals]
    oracle_histories = [learn_task("DarkRoom-v0", {"goal": g}, SourceConfig(algo="oracle", n_streams=1, total_steps=40)) for g in goals]
    assert all((oracle_actions(h, "DarkRoom-v0") == h.actions).all() for h in oracle_histories)
    labels = [oracle_actions(h, "DarkRoom-v0") for h in queries]
    assert 0 < np.mean([(l == h.actions).mean() for l, h in zip(labels, queries)]) < 1  # some episodes head for decoys first
    sampler = QueryEpisodeSampler(context, queries, n_actions=5, length=50, generator=torch.Generator().manual_seed(0),
                                  queries_per_row=2, oracle=labels)
    batch = sampler.sample(64)
    partial = False
    for row in range(64):
        mask = batch["loss_mask"][row].numpy()
        for start in (t for t in range(mask.size) if batch["steps"][row, t] == 0 and batch["allowed"][row, t, t]):
            episode = np.arange(start, start + 20)
            if not (batch["positions"][row, episode].numpy() == batch["positions"][row, start] + np.arange(20)).all():
                continue  # a context episode cut short by the window
            m = mask[episode]
            if m.any():  # labelled on a tail only, and there the actions are the oracle's
                assert m[np.argmax(m):].all()
                partial |= not m.all()
                obs, actions = batch["obs"][row, episode].numpy(), batch["actions"][row, episode].numpy()
                oracles = [oracle_for("DarkRoom-v0", [{"goal": g}] * 20).predict(obs)[0] for g in goals]
                assert any((actions[m] == expected[m]).all() for expected in oracles)
    assert partial


def test_all_steps_of_exploring_queries_can_carry_the_oracles_label():
    from ad_gym.envs.tasks import tasks
    from ad_gym.methods.dpt import oracle_actions

    bandits = tasks("AdversarialBandit-v0", "train")[:2]
    random_pulls = SourceConfig(algo="oracle-eps", n_streams=2, total_steps=400, hyperparams={"eps_start": 1.0, "eps_end": 1.0})
    context = [learn_task("AdversarialBandit-v0", b, random_pulls) for b in bandits]
    queries = [learn_task("AdversarialBandit-v0", b, random_pulls) for b in bandits]
    labels = [oracle_actions(h, "AdversarialBandit-v0") for h in queries]
    sampler = QueryEpisodeSampler(context, queries, n_actions=10, length=250, generator=torch.Generator().manual_seed(0),
                                  queries_per_row=1, oracle=labels, label_steps="all")
    batch = sampler.sample(8)
    mask = batch["loss_mask"].numpy()
    assert (mask.sum(axis=1) == 100).all()  # one whole 100-pull query per row, every pull labelled
    best = {int(np.argmax(b["means"])) for b in bandits}
    assert set(batch["actions"].numpy()[mask].tolist()) <= best  # the label is the best arm, not the pull
    with pytest.raises(ValueError, match="label_steps"):
        DPT(label_steps="some")


@pytest.mark.parametrize("env_id, name", [(env_id, name) for env_id, presets in PRESETS.items() for name in presets])
def test_every_presets_collections_can_be_recorded_for_its_family(env_id, name):
    """A method's data settings that its family cannot run (e.g. resampling decoys with an oracle
    that cannot tell where it is) fail here, not minutes into a run."""
    from ad_gym.envs.tasks import tasks

    task = tasks(env_id, "train")[0]
    for method in PRESETS[env_id][name].methods:
        for collection in method.collections():
            source = collection.source
            short = dataclasses.replace(source, total_steps=min(source.total_steps, 2 * source.n_streams * 100))
            assert learn_task(env_id, task, short).n_streams == source.n_streams


def test_each_method_states_its_training_budget():
    from ad_gym.methods.rl2 import RL2, RL2Config

    assert AD(dataclasses.replace(TINY_TRAIN, updates=2000)).budget() == "2,000 updates"
    assert RL2(RL2Config(total_steps=1_000_000)).budget() == "1,000,000 env steps of meta-training"
    assert Method().budget() == ""  # a method without updates says nothing rather than something wrong
