"""The AD transformer: causality, the banded context, and cached inference."""

import pytest
import torch

from ad_gym.models import transformer
from ad_gym.models.transformer import ADConfig, ADTransformer


def make_model(context_len=12, n_layer=3, **kwargs):
    torch.manual_seed(0)
    config = ADConfig(obs_nvec=(9, 9), n_actions=5, max_episode_steps=20, context_len=context_len, n_layer=n_layer,
                      n_head=2, n_embd=32, ffn_dim=64, dropout=0.0, attn_dropout=0.0, **kwargs)
    model = ADTransformer(config).eval()
    with torch.no_grad():  # non-zero distance biases, so the test exercises them
        for block in model.blocks:
            block.distance_bias.normal_()
    return model


def random_tokens(batch=3, length=40, seed=1, final_obs=False):
    """Episodes of 20 steps; ``final_obs`` adds the views episodes ended on (read at steps 0)."""
    g = torch.Generator().manual_seed(seed)
    tokens = {
        "obs": torch.randint(0, 9, (batch, length, 2), generator=g),
        "prev_actions": torch.randint(0, 5, (batch, length), generator=g),
        "prev_rewards": torch.randint(0, 2, (batch, length), generator=g).float(),
        "steps": torch.arange(length).remainder(20).expand(batch, length),
    }
    tokens["prev_actions"][:, 0] = 5  # the first token follows nothing
    if final_obs:
        tokens["final_obs"] = torch.randint(0, 9, (batch, length, 2), generator=g)
    return tokens


def test_later_tokens_never_change_earlier_predictions():
    model, tokens = make_model(), random_tokens()
    logits = model(**tokens)
    changed = {k: v.clone() for k, v in tokens.items()}
    changed["obs"][:, 25:] = 0
    changed["prev_rewards"][:, 25:] = 5.0
    torch.testing.assert_close(model(**changed)[:, :25], logits[:, :25])
    assert not torch.allclose(model(**changed)[:, 25:], logits[:, 25:])


def test_attention_reaches_exactly_context_len_tokens_per_layer():
    # One layer: token t sees tokens t-c+1..t. Changing token t-c must not matter, t-c+1 must.
    model, tokens = make_model(context_len=8, n_layer=1), random_tokens()
    logits = model(**tokens)[:, 30]
    outside, inside = ({k: v.clone() for k, v in tokens.items()} for _ in range(2))
    outside["obs"][:, 30 - 8] = (outside["obs"][:, 30 - 8] + 1) % 9
    inside["obs"][:, 30 - 7] = (inside["obs"][:, 30 - 7] + 1) % 9
    torch.testing.assert_close(model(**outside)[:, 30], logits)
    assert not torch.allclose(model(**inside)[:, 30], logits)


@pytest.mark.parametrize("options", [{}, {"prev_obs": True}, {"final_obs": True}, {"prev_obs": True, "final_obs": True}])
@pytest.mark.parametrize("context_len", [1, 5, 12])
def test_cached_steps_equal_full_recompute(context_len, options):
    model = make_model(context_len=context_len, **options)
    tokens = random_tokens(length=50, final_obs=options.get("final_obs", False))
    full = model(**tokens)
    cache = model.new_cache(batch_size=3)
    stepped = torch.stack([model.step(cache, **{k: v[:, t] for k, v in tokens.items()}) for t in range(50)], dim=1)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-5)
    assert cache.length == context_len - 1


def packed_row(length: int, n_context: int, cut: int):
    """A DPT-style packed row: context tokens, then a query episode played after the first ``cut``
    of them; the query sees its own earlier tokens and the context before the cut."""
    segment = torch.tensor([0] * n_context + [1] * (length - n_context))
    position = torch.cat([torch.arange(n_context), torch.arange(length - n_context) + cut])
    own = (segment[:, None] == segment[None, :]) & (position[None, :] <= position[:, None])
    context = (segment[None, :] == 0) & (segment[:, None] == 1) & (position[None, :] < cut)
    return position, own | context


@pytest.mark.parametrize("rows", ["default", "packed"])
@pytest.mark.parametrize("context_len, length", [(8, 40), (12, 13), (12, 6), (1, 7)])
def test_chunked_attention_equals_whole_sequence_attention(context_len, length, rows, monkeypatch):
    model, tokens = make_model(context_len=context_len), random_tokens(length=length)
    model.train()
    if rows == "packed":
        position, allowed = packed_row(length, n_context=length // 2, cut=length // 4)
        tokens |= {"positions": position.expand(3, length), "allowed": allowed.expand(3, length, length)}
    chunked = model(**tokens)
    monkeypatch.setattr(transformer, "attention_chunks", lambda T, *args, **kwargs: [(0, T, 0)])
    whole = model(**tokens)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    grads = [torch.autograd.grad(out.square().sum(), list(model.parameters())) for out in (chunked, whole)]
    for chunked_grad, whole_grad in zip(*grads):
        torch.testing.assert_close(chunked_grad, whole_grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("banded, causal, chunks", [
    (True, True, [(0, 100, 0), (100, 200, 0), (200, 300, 1)]),
    (False, True, [(0, 100, 0), (100, 200, 0), (200, 300, 0)]),
    (False, False, [(0, 300, 0)]),
])
def test_attention_chunks(banded, causal, chunks):
    assert transformer.attention_chunks(300, 200, banded=banded, causal=causal) == chunks


@pytest.mark.parametrize("prev_obs", [False, True])
def test_clearing_one_row_of_the_cache_is_a_fresh_start_for_that_row(prev_obs):
    model, tokens = make_model(prev_obs=prev_obs), random_tokens(length=30)
    cache = model.new_cache(batch_size=3)
    for t in range(20):
        model.step(cache, **{k: v[:, t] for k, v in tokens.items()})
    cache.clear(torch.tensor([False, True, False]))
    fresh_cache = model.new_cache(batch_size=3)
    for t in range(20, 30):
        token = {k: v[:, t] for k, v in tokens.items()}
        cleared, fresh = model.step(cache, **token), model.step(fresh_cache, **token)
    torch.testing.assert_close(cleared[1], fresh[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cleared[0], fresh[0])


def test_prev_obs_puts_the_previous_observation_in_each_token():
    # A context of one token: only the token itself is seen, so o_{t-1} matters only through prev_obs.
    tokens = random_tokens()
    changed = {k: v.clone() for k, v in tokens.items()}
    changed["obs"][:, 29] = (changed["obs"][:, 29] + 1) % 9
    plain, with_prev = make_model(context_len=1), make_model(context_len=1, prev_obs=True)
    torch.testing.assert_close(plain(**changed)[:, 30], plain(**tokens)[:, 30])
    assert not torch.allclose(with_prev(**changed)[:, 30], with_prev(**tokens)[:, 30])
    torch.testing.assert_close(with_prev(**changed)[:, 31:], with_prev(**tokens)[:, 31:])
    with pytest.raises(TypeError, match="prev_obs must be a bool"):
        make_model(prev_obs=1)


def test_final_obs_is_read_only_where_an_episode_follows_another():
    tokens = random_tokens(final_obs=True)  # episodes start at tokens 0 (the first: follows nothing) and 20
    model = make_model(context_len=1, final_obs=True)
    logits = model(**tokens)
    elsewhere = {k: v.clone() for k, v in tokens.items()}
    elsewhere["final_obs"][:, [0, *range(1, 20), *range(21, 40)]] = 0
    torch.testing.assert_close(model(**elsewhere), logits)
    at_start = {k: v.clone() for k, v in tokens.items()}
    at_start["final_obs"][:, 20] = (at_start["final_obs"][:, 20] + 1) % 9
    changed = model(**at_start)
    assert not torch.allclose(changed[:, 20], logits[:, 20])
    torch.testing.assert_close(changed[:, 21:], logits[:, 21:])  # context of one token
    plain = make_model(context_len=1)
    torch.testing.assert_close(plain(**at_start), plain(**tokens))
    with pytest.raises(ValueError, match="pass final_obs"):
        model(**{k: v for k, v in tokens.items() if k != "final_obs"})
    with pytest.raises(TypeError, match="final_obs must be a bool"):
        make_model(final_obs="yes")


def test_token_masking_only_in_training():
    model, tokens = make_model(token_mask_prob=0.5), random_tokens()
    torch.testing.assert_close(model(**tokens), model(**tokens))  # eval: deterministic
    model.train()
    torch.manual_seed(0)
    a = model(**tokens)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(**tokens))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n_embd": 30, "n_head": 4}, "multiple of n_head"), ({"context_len": 0}, "context_len"), ({"dropout": 1.5}, "dropout")],
)
def test_bad_config_is_refused(kwargs, message):
    base = dict(obs_nvec=(9, 9), n_actions=5, max_episode_steps=20)
    with pytest.raises(ValueError, match=message):
        ADConfig(**{**base, **kwargs})
