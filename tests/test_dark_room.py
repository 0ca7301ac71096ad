"""Dark Room and Dark Room Hard, held against the paper's rules through their registered ids.

Every behaviour is checked against the rules as written out independently in `tests/rules.py`.
"""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ad_gym  # noqa: F401  (importing ad_gym registers the ids)
from tests.rules import HORIZON, MOVES, RULES, rules_of

ENV_IDS = list(RULES)
# Every id is registered twice: plain and in the ad_gym namespace.
REGISTERED_IDS = [*ENV_IDS, *(f"ad_gym/{env_id}" for env_id in ENV_IDS)]


def cell(obs):
    return tuple(int(v) for v in obs)


def walk(env, actions):
    """Take `actions` from a fresh episode; return the (obs, reward, terminated, truncated) of each step."""
    env.reset()
    return [env.step(a)[:4] for a in actions]


# -- spaces, start, moves, walls --------------------------------------------------------------


@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_spaces_and_start_at_the_centre(env_id):
    rules = rules_of(env_id)
    env = gym.make(env_id)
    assert env.observation_space == gym.spaces.MultiDiscrete([rules.size, rules.size])
    assert env.action_space == gym.spaces.Discrete(5)
    obs, info = env.reset(seed=0)
    assert cell(obs) == rules.start == {9: (4, 4), 17: (8, 8)}[rules.size]
    assert obs in env.observation_space and info == {}


@pytest.mark.parametrize("action", MOVES)
@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_each_action_moves_one_cell(env_id, action):
    rules = rules_of(env_id)
    env = gym.make(env_id, goal=(0, 0))
    (obs, *_), = walk(env, [action])
    dx, dy = MOVES[action]
    assert cell(obs) == (rules.start[0] + dx, rules.start[1] + dy)


@pytest.mark.parametrize("wall, action", [("left", 0), ("right", 1), ("top", 2), ("bottom", 3)])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_moving_into_a_wall_stays_in_place(env_id, wall, action):
    rules = rules_of(env_id)
    env = gym.make(env_id, goal=(0, 0))
    to_wall = rules.size // 2  # steps from the centre to the wall
    positions = [cell(obs) for obs, *_ in walk(env, [action] * (to_wall + 3))]  # then bump 3 times
    wall_cell = {"left": (0, rules.start[1]), "right": (rules.size - 1, rules.start[1]),
                 "top": (rules.start[0], 0), "bottom": (rules.start[0], rules.size - 1)}[wall]
    assert positions[to_wall - 1] == wall_cell
    assert positions[to_wall:] == [wall_cell] * 3


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_corners_are_walls_on_both_sides(env_id):
    last = rules_of(env_id).size - 1
    env = gym.make(env_id, goal=(0, 0))
    for (horizontal, vertical), corner in (((0, 2), (0, 0)), ((1, 2), (last, 0)), ((0, 3), (0, last)), ((1, 3), (last, last))):
        steps = walk(env, [horizontal, vertical] * (HORIZON // 2))  # a diagonal walk, bumping into the corner
        assert cell(steps[-1][0]) == corner and cell(steps[-3][0]) == corner


# -- rewards and horizon ----------------------------------------------------------------------


@pytest.mark.parametrize("env_id, expected", [("DarkRoom-v0", [1, 1, 1, 0, 1]), ("DarkRoomHard-v0", [1, 0, 0, 0, 0])])
def test_reward_on_arrival_staying_leaving_and_returning(env_id, expected):
    start = rules_of(env_id).start
    env = gym.make(env_id, goal=(start[0] + 1, start[1]))  # one step right of the start
    rewards = [r for _, r, *_ in walk(env, [1, 4, 4, 0, 1])]  # arrive, stay, stay, leave, come back
    assert rewards == expected
    # A new episode pays again, in both families.
    assert [r for _, r, *_ in walk(env, [1])] == [1]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_goal_on_the_start_cell(env_id):
    rules = rules_of(env_id)
    env = gym.make(env_id, goal=rules.start)
    rewards = [r for _, r, *_ in walk(env, [4] * HORIZON)]  # stay on the goal the whole episode
    assert rewards == ([1] + [0] * (HORIZON - 1) if rules.reward_once else [1] * HORIZON)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_truncated_exactly_at_step_20_and_never_terminated(env_id):
    start = rules_of(env_id).start
    env = gym.make(env_id, goal=start)  # sitting on the goal must not end the episode either
    for episode in range(2):
        steps = walk(env, [4] * HORIZON)
        assert [truncated for *_, truncated in steps] == [False] * (HORIZON - 1) + [True]
        assert not any(terminated for _, _, terminated, _ in steps)


# -- the goal: given, reset with options, drawn from the seed -----------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_goal_given_to_make_is_kept_through_every_reset(env_id):
    env = gym.make(env_id, goal=(2, 1))
    for kwargs in ({}, {"seed": 5}, {}, {"seed": 6}):
        env.reset(**kwargs)
        assert env.unwrapped.goal == (2, 1)
    assert env.unwrapped.task == {"goal": (2, 1)}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_options_change_the_goal_and_it_persists(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    env.reset(options={"goal": (1, 2)})
    assert env.unwrapped.goal == (1, 2)
    env.reset()
    assert env.unwrapped.goal == (1, 2)  # plain reset keeps it
    env.reset(seed=99)
    assert env.unwrapped.goal == (1, 2)  # an explicit goal survives seeded resets
    env.reset(options={"goal": (3, 0)})
    assert env.unwrapped.goal == (3, 0)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_resets_draw_the_goal(env_id):
    size = rules_of(env_id).size

    def goal_after(seed, env=None):
        env = env or gym.make(env_id)
        env.reset(seed=seed)
        return env.unwrapped.goal

    env = gym.make(env_id)
    drawn = goal_after(3, env)
    assert all(0 <= v < size for v in drawn)
    env.reset()
    assert env.unwrapped.goal == drawn  # plain reset keeps the drawn goal
    assert goal_after(3, env) == drawn == goal_after(3)  # same seed, same goal, in any env
    assert len({goal_after(seed) for seed in range(20)}) > 5  # seeds really draw different goals
    # Drawn from the env's np_random: the generator Gymnasium makes for that seed gives the same pair.
    np_random, _ = gym.utils.seeding.np_random(3)
    assert tuple(int(v) for v in np_random.integers(size, size=2)) == drawn


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unseeded_first_reset_draws_a_goal(env_id):
    env = gym.make(env_id)
    env.reset()
    goal = env.unwrapped.goal
    assert goal is not None and all(0 <= v < rules_of(env_id).size for v in goal)
    env.reset()
    assert env.unwrapped.goal == goal


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_gives_identical_rollouts(env_id):
    def rollout(seed):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        trace = [cell(obs)]
        for _ in range(200):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            trace.append((cell(obs), reward, terminated, truncated))
            if truncated:
                trace.append(cell(env.reset()[0]))
        return env.unwrapped.goal, trace

    assert rollout(7) == rollout(7)
    assert rollout(7) != rollout(8)


# -- the key test: a long random rollout against the rules --------------------------------------


@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_long_random_rollout_follows_the_rules(env_id):
    """5000 random steps with every kind of reset, each step checked against the rules in tests/rules.py."""
    rules = rules_of(env_id)
    rng = np.random.default_rng(12345)
    env = gym.make(env_id)
    env.action_space.seed(0)

    def random_goal():
        # Half the goals near the start, so a random walk reaches them often.
        if rng.random() < 0.5:
            return tuple(int(v) for v in np.clip(np.array(rules.start) + rng.integers(-2, 3, size=2), 0, rules.size - 1))
        return tuple(int(v) for v in rng.integers(rules.size, size=2))

    goal, goal_fixed = None, False
    n_rewards = n_truncations = 0
    bumps = {0: 0, 1: 0, 2: 0, 3: 0}  # steps into the left, right, top, bottom wall

    def do_reset(kind):
        nonlocal goal, goal_fixed
        if kind == "options":
            goal, goal_fixed = random_goal(), True
            obs, _ = env.reset(options={"goal": goal})
        elif kind == "seed":
            seed = int(rng.integers(1000))
            obs, _ = env.reset(seed=seed)
            if not goal_fixed:  # the drawn goal is the one a fresh env draws from that seed
                fresh = gym.make(env_id)
                fresh.reset(seed=seed)
                goal = fresh.unwrapped.goal
        else:
            obs, _ = env.reset()
        assert cell(obs) == rules.start and env.unwrapped.goal == goal
        return rules.start

    position, steps, reached = do_reset("seed"), 0, False  # the first reset draws the goal

    preferred = 0
    for t in range(5000):
        # Random actions drifting one way per episode, so that every wall is hit, even in the big room.
        action = preferred if rng.random() < 0.5 else int(env.action_space.sample())
        obs, reward, terminated, truncated, _ = env.step(action)
        moved = rules.move(position, action)
        if action != 4 and moved == position:
            bumps[action] += 1
        position, steps = moved, steps + 1
        expected = rules.reward(position, goal, reached)
        reached |= position == goal
        assert cell(obs) == position, f"step {t}: observation"
        assert obs in env.observation_space
        assert reward == expected, f"step {t}: reward {reward}, expected {expected}"
        assert not terminated and truncated == (steps == HORIZON), f"step {t}: episode end"
        n_rewards += reward > 0
        n_truncations += truncated
        # Reset at every episode end, and now and then in mid-episode, in one of three ways.
        if truncated or rng.random() < 0.02:
            kind = rng.choice(["plain", "plain", "options", "seed"])
            position, steps, reached = do_reset(kind), 0, False
            preferred = int(rng.integers(5))

    # The rollout really exercised the rules: many episodes, rewards paid, every wall bumped into.
    assert n_truncations > 100 and n_rewards > 10 and min(bumps.values()) > 10, (n_rewards, bumps)


# -- checkers, rendering, optimal return -------------------------------------------------------


@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_gymnasium_and_sb3_env_checkers_pass_without_warnings(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(env_id).unwrapped)
        sb3_check_env(gym.make(env_id).unwrapped, warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_ansi_marks_the_agent_and_the_goal(env_id):
    rules = rules_of(env_id)
    env = gym.make(env_id, goal=(0, 0), render_mode="ansi")
    env.reset(seed=0)

    def grid():
        text = env.render()
        assert isinstance(text, str)
        rows = [row.split() for row in text.strip().split("\n")]
        assert len(rows) == rules.size and all(len(row) == rules.size for row in rows)
        return rows

    rows = grid()
    assert rows[rules.start[1]][rules.start[0]] == "A" and rows[0][0] == "G"
    assert sum(row.count("A") for row in rows) == 1
    env.step(1)  # one right: the mark moves with the agent
    assert grid()[rules.start[1]][rules.start[0] + 1] == "A"
    env.reset(options={"goal": rules.start})
    assert grid()[rules.start[1]][rules.start[0]] == "*"  # the agent stands on the goal


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_rgb_array(env_id):
    rules = rules_of(env_id)
    env = gym.make(env_id, goal=(0, 0), render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3 and image.shape[0] == image.shape[1]
    px = image.shape[0] // rules.size  # pixels per cell

    def centre(c):
        return tuple(int(v) for v in image[c[1] * px + px // 2, c[0] * px + px // 2])

    # The agent's cell and the goal's cell differ from each other and from an empty cell.
    agent_colour, goal_colour, empty_colour = centre(rules.start), centre((0, 0)), centre((1, 0))
    assert len({agent_colour, goal_colour, empty_colour}) == 3
    env.step(0)  # one left: the agent's colour moves with it
    image = env.render()
    assert centre((rules.start[0] - 1, rules.start[1])) == agent_colour and centre(rules.start) == empty_colour


def optimal_play_return(env, goal, start):
    """Walk a shortest path to the goal, then wait on it: the best an agent that knows the goal can do."""
    env.reset(options={"goal": goal})
    position, total = start, 0.0
    for _ in range(HORIZON):
        dx, dy = goal[0] - position[0], goal[1] - position[1]
        action = 1 if dx > 0 else 0 if dx < 0 else 3 if dy > 0 else 2 if dy < 0 else 4
        obs, reward, *_ = env.step(action)
        position, total = cell(obs), total + reward
    return total


@pytest.mark.parametrize(
    "env_id, goal, expected",
    [("DarkRoom-v0", (4, 4), 20), ("DarkRoom-v0", (4, 3), 20), ("DarkRoom-v0", (0, 0), 13), ("DarkRoom-v0", (8, 8), 13),
     ("DarkRoom-v0", (8, 4), 17), ("DarkRoomHard-v0", (0, 16), 1), ("DarkRoomHard-v0", (8, 8), 1), ("DarkRoomHard-v0", (0, 0), 1)],
)
def test_optimal_return_values(env_id, goal, expected):
    assert gym.make(env_id, goal=goal).unwrapped.optimal_return() == expected


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_optimal_return_is_what_optimal_play_earns_on_every_goal(env_id):
    rules = rules_of(env_id)
    env = gym.make(env_id)
    env.reset(seed=0)
    for task in ad_gym.tasks(env_id, "all"):
        played = optimal_play_return(env, task["goal"], rules.start)
        assert env.unwrapped.optimal_return() == played, task


def test_dark_room_mean_optimal_return_is_the_papers():
    returns = [gym.make("DarkRoom-v0", **t).unwrapped.optimal_return() for t in ad_gym.tasks("DarkRoom-v0", "all")]
    assert np.mean(returns) == pytest.approx(16.54, abs=0.01)  # the paper's ~16.5
