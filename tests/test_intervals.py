"""Intervals as the field reports them: interquartile mean and stratified bootstrap (rliable's)."""

import numpy as np
import pytest

from ad_gym.evaluation import interquartile_mean, iqm_table, stratified_bootstrap_ci


def test_interquartile_mean_is_the_mean_of_the_middle_half():
    assert interquartile_mean(np.arange(8.0)) == pytest.approx(3.5)
    assert interquartile_mean([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 100.0]) == pytest.approx(0.5)  # the outlier is cut
    np.testing.assert_allclose(interquartile_mean(np.array([[0.0, 1, 2, 3], [4, 5, 6, 70]])), [1.5, 5.5])


def test_the_bootstrap_resamples_runs_within_each_task():
    # Runs agree within each task: every resample has the same scores, so the interval is a point
    # (a bootstrap over all rows would mix the tasks' shares and spread).
    assert stratified_bootstrap_ci(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])) == (0.5, 0.5)
    noisy = np.random.default_rng(0).normal(size=(10, 4))
    low, high = stratified_bootstrap_ci(noisy)
    assert low < interquartile_mean(noisy.reshape(-1)) < high
    assert stratified_bootstrap_ci(noisy, seed=3) == stratified_bootstrap_ci(noisy, seed=3)
    wide = stratified_bootstrap_ci(noisy, level=0.99)
    assert wide[0] <= low and wide[1] >= high


def test_one_run_per_task_resamples_the_tasks():
    low, high = stratified_bootstrap_ci(np.arange(20.0)[:, None], statistic=np.mean)
    assert low < 9.5 < high


def test_iqm_table_groups_task_major_rows():
    returns = np.repeat(np.array([[0.0, 1.0], [2.0, 3.0]]), 2, axis=0)  # 2 tasks x 2 seeds, 2 episodes
    table = iqm_table({"AD": returns}, n_tasks=2, episodes=(1, 2))
    assert "| AD | 1.00 [1.00, 1.00] | 2.00 [2.00, 2.00] |" in table
    with pytest.raises(ValueError, match="divide"):
        iqm_table({"AD": returns[:3]}, n_tasks=2, episodes=(1,))


def test_episodes_to_reach_a_level_uses_a_trailing_mean():
    from ad_gym.evaluation import episodes_to_reach

    curve = np.array([[0.0, 0, 10, 0, 0, 5, 5, 5, 5, 5, 5]])
    assert episodes_to_reach(curve, 5.0, window=1) == 3  # the lucky episode counts without averaging
    assert episodes_to_reach(curve, 5.0, window=5) == 10  # not with it: the last 5 episodes must average 5
    assert episodes_to_reach(curve, 6.0) is None
    assert episodes_to_reach(np.full((2, 3), 7.0), 7.0) == 1
