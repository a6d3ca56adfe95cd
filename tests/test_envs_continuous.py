"""Device envs with Box actions (Pendulum-v1, MountainCarContinuous-v0) against gymnasium, on the current backend.

Tolerances (float32 device math vs gymnasium's, measured on both backends; the env modules' docstrings say why):

- one step from the same state: next observation within ``OBS_TOL`` absolute (measured: at most 4.8e-7 on
  Pendulum, 6e-8 on MountainCarContinuous); terminated and truncated exactly (MountainCarContinuous: except where
  gymnasium's position lies within ``BAND`` of the goal, at most 2 such steps allowed, none occur);
- rewards are not bit-exact (squares of float32 values that gymnasium sums in float64 and rounds once): within
  ``REWARD_RTOL`` relative (measured: Pendulum 3 float32 ulps, 2.4e-7; MountainCarContinuous' action cost 1 ulp,
  1.2e-7, on a fifth of the steps); MountainCarContinuous' +100 goal bonus lands on exactly the same steps;
- whole trajectories replaying the same actions, never re-synced: MountainCarContinuous driven to the goal stays
  within 1e-4 and terminates on the same step (measured 2e-6 over 64 episodes); Pendulum, unstable near the top,
  within ``PENDULUM_TRAJ_TOL`` for ``PENDULUM_TRAJ_STEPS`` steps (measured minimum over 64 episodes of random
  torques: 1e-4 held for >= 45 steps, 1e-5 for >= 32).
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import keras
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from keras import ops
from test_envs import DISCRETE_IDS, from_physics, gym_records, joined, rollout_compiled, rollout_eager

from core.envs import DEVICE_ENV_IDS, DeviceEnv, DeviceVectorEnv, make_device_env
from core.envs.base import uniform

BOX_IDS = ["Pendulum-v1", "MountainCarContinuous-v0"]
OBS_TOL = 2e-6
REWARD_RTOL = 1e-6
BAND = 1e-6
PENDULUM_TRAJ_TOL = 1e-4
PENDULUM_TRAJ_STEPS = 40


# --- actions on the gymnasium side: inside, beyond and exactly at the bounds ----------------------------------------


def draw_action(rng: np.random.Generator, low: float, high: float) -> float:
    """A fifth exactly at a bound, a twentieth 0, a fifth over twice the range (half of those beyond the bounds, to be
    clipped), the rest inside."""
    r = rng.random()
    if r < 0.2:
        return low if r < 0.1 else high
    if r < 0.25:
        return 0.0
    if r < 0.45:
        return float(rng.uniform(2 * low, 2 * high))
    return float(rng.uniform(low, high))


def random_box_policy(env_id: str) -> Callable:
    env = make_device_env(env_id)
    low, high = env.action_low, env.action_high
    return lambda obs, rng: np.array([draw_action(rng, low, high)], np.float32)


def mountain_car_pump(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Push along the velocity with a random magnitude (often beyond 1): reaches the goal in 85-170 steps."""
    return np.array([abs(draw_action(rng, -1.0, 1.0)) * (1.0 if obs[1] >= 0 else -1.0)], np.float32)


def to_physics(env_id: str, gym_state: np.ndarray) -> np.ndarray:
    """gymnasium's states as device physics: Pendulum's unbounded angle wrapped (in float64) as the device keeps it."""
    physics = np.array(gym_state, np.float64)
    if env_id == "Pendulum-v1":
        physics[..., 0] = (physics[..., 0] + np.pi) % (2 * np.pi) - np.pi
    return physics.astype(np.float32)


def scattered_records(env_id: str, steps: int, seed: int) -> dict[str, np.ndarray]:
    """One gymnasium step from each of ``steps`` states drawn over the whole state box: reaches what episodes rarely
    do (MountainCarContinuous' speed limit, the goal approached from anywhere)."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    policy = random_box_policy(env_id)
    low, high = env.unwrapped.low_state, env.unwrapped.high_state
    rec = {k: [] for k in ("state", "t", "action", "next_obs", "reward", "terminated", "truncated", "next_state")}
    for _ in range(steps):
        env.reset()
        env.unwrapped.state = rng.uniform(low, high).astype(np.float32)  # gymnasium keeps float32 after a step
        rec["state"].append(np.array(env.unwrapped.state, np.float64))
        rec["t"].append(0)
        rec["action"].append(policy(None, rng))
        obs, reward, terminated, truncated, _ = env.step(rec["action"][-1])
        for key, value in zip(("next_obs", "reward", "terminated", "truncated"), (obs, reward, terminated, truncated)):
            rec[key].append(value)
        rec["next_state"].append(np.array(env.unwrapped.state, np.float64))
    env.close()
    return {k: np.array(v) for k, v in rec.items()}


def one_step_records(env_id: str) -> dict[str, np.ndarray]:
    """>= 10,000 gymnasium steps across episode ends (MountainCarContinuous: random forces, forces reaching the goal,
    and single steps from anywhere in the state box)."""
    if env_id == "Pendulum-v1":
        return gym_records(env_id, 10000, random_box_policy(env_id), 0)
    return joined(
        gym_records(env_id, 5000, random_box_policy(env_id), 0),
        gym_records(env_id, 5000, mountain_car_pump, 1),
        scattered_records(env_id, 2000, 2),
    )


def device_one_step(env: DeviceEnv, rec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every recorded step at once: one batched device step from gymnasium's states."""
    state = {
        "physics": ops.convert_to_tensor(to_physics(env.env_id, rec["state"])),
        "t": ops.convert_to_tensor(rec["t"].astype(np.int32)),
        "episode_return": ops.zeros((len(rec["t"]),), "float32"),
    }
    actions = ops.convert_to_tensor(rec["action"].astype(np.float32))
    _, transition = env.step(state, actions, keras.random.SeedGenerator(0))
    return {k: ops.convert_to_numpy(v) for k, v in transition.items()}


# --- the registry and the Box attributes ------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", BOX_IDS)
def test_box_env_matches_gymnasiums_spec(env_id):
    env = make_device_env(env_id)
    spec = gym.spec(env_id)
    ref = gym.make(env_id)
    assert env_id in DEVICE_ENV_IDS and env.env_id == env_id
    assert env.max_episode_steps == spec.max_episode_steps and env.reward_threshold == spec.reward_threshold
    assert env.continuous and env.num_actions == 0
    assert isinstance(ref.action_space, gym.spaces.Box) and ref.action_space.shape == (env.action_dim,)
    np.testing.assert_array_equal(ref.action_space.low, env.action_low)
    np.testing.assert_array_equal(ref.action_space.high, env.action_high)
    assert env.obs_dim == ref.observation_space.shape[0]
    assert make_device_env(env_id, max_episode_steps=7).max_episode_steps == 7
    ref.close()


def test_discrete_envs_are_not_continuous():
    for env_id in DISCRETE_IDS:
        env = make_device_env(env_id)
        assert not env.continuous and env.action_dim == 0 and env.num_actions > 0
        assert env.action_low is None and env.action_high is None


@pytest.mark.parametrize("env_id", BOX_IDS)
def test_start_states_cover_gymnasiums_range(env_id):
    physics = ops.convert_to_numpy(make_device_env(env_id).reset(4096, keras.random.SeedGenerator(1))["physics"])
    assert_start_states(env_id, physics)
    if env_id == "Pendulum-v1":
        assert np.ptp(physics[:, 0]) > 0.99 * 2 * np.pi and np.ptp(physics[:, 1]) > 0.99 * 2
    else:
        assert np.ptp(physics[:, 0]) > 0.19


def assert_start_states(env_id: str, physics: np.ndarray) -> None:
    """gymnasium's start-state ranges: Pendulum theta in [-pi, pi), theta_dot in [-1, 1); the car at rest."""
    if env_id == "Pendulum-v1":
        assert np.all((physics[:, 0] >= -np.pi) & (physics[:, 0] < np.pi))
        assert np.all((physics[:, 1] >= -1.0) & (physics[:, 1] < 1.0))
    else:
        assert np.all((physics[:, 0] >= -0.6) & (physics[:, 0] < -0.4)) and np.all(physics[:, 1] == 0.0)


# --- one step from gymnasium's state ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", BOX_IDS)
def test_one_step_matches_gymnasium(env_id):
    """10,000 steps across episode ends, actions inside, beyond and exactly at the bounds (see module doc)."""
    rec = one_step_records(env_id)
    bound = make_device_env(env_id).action_high
    a = rec["action"][:, 0]
    assert (np.abs(a) > bound).sum() > 500 and (np.abs(a) == bound).sum() > 1000, "clipping must be exercised"
    assert rec["truncated"].sum() >= 5
    out = device_one_step(make_device_env(env_id), rec)
    np.testing.assert_allclose(out["next_obs"], rec["next_obs"], rtol=0, atol=OBS_TOL)
    np.testing.assert_allclose(out["reward"], rec["reward"].astype(np.float32), rtol=REWARD_RTOL, atol=0)
    np.testing.assert_array_equal(out["truncated"], rec["truncated"].astype(np.float32))
    margin = np.abs(rec["next_state"][:, 0] - 0.45) if env_id != "Pendulum-v1" else np.full(len(a), np.inf)
    in_band = margin < BAND
    assert in_band.sum() <= 2, f"{in_band.sum()} steps within {BAND} of the goal"
    np.testing.assert_array_equal(out["terminated"][~in_band], rec["terminated"][~in_band].astype(np.float32))
    ended = rec["terminated"] | rec["truncated"]
    np.testing.assert_array_equal(out["episode_length"], np.where(ended, rec["t"] + 1, 0))
    if env_id == "Pendulum-v1":
        assert not rec["terminated"].any()
    else:
        assert rec["terminated"].sum() > 20
        assert (rec["next_state"][:, 0] <= -1.2).sum() > 5, "the left wall (velocity zeroed) must be exercised"
        assert (np.abs(rec["next_state"][:, 1]) >= np.float32(0.07)).sum() > 5, "and the speed limit"
        # gymnasium charges the raw action, not the clipped force: the cost tells them apart beyond the bounds.
        np.testing.assert_array_equal(out["reward"] > 50, rec["terminated"])
        cost = np.where(rec["terminated"], 100.0, 0.0) - rec["reward"]
        np.testing.assert_allclose(cost, 0.1 * a.astype(np.float64) ** 2, rtol=1e-5)


# --- time limit, termination, autoreset, episode statistics ---------------------------------------------------------


def box_state(physics: np.ndarray, t: list[int], episode_return: list[float]) -> dict:
    return {
        **from_physics(physics),
        "t": ops.convert_to_tensor(np.array(t, np.int32)),
        "episode_return": ops.convert_to_tensor(np.array(episode_return, np.float32)),
    }


@pytest.mark.parametrize("env_id", BOX_IDS)
def test_autoreset_and_episode_statistics(env_id):
    """Env 0 truncates (one step short of the limit), env 1 ends otherwise (MountainCarContinuous: reaches the goal;
    Pendulum never terminates: two steps short of the limit), envs 2-3 go on. Actions beyond the bounds."""
    env = make_device_env(env_id)
    limit = env.max_episode_steps
    gen = keras.random.SeedGenerator(7)
    start = ops.convert_to_numpy(env.reset(4, gen)["physics"])
    goal = env_id == "MountainCarContinuous-v0"
    if goal:
        start[1] = [0.44, 0.07]  # at full speed just short of the goal
    state = box_state(start, [limit - 1, 41 if goal else limit - 2, 10, 0], [7.0, 5.0, 3.0, 0.0])
    actions = ops.convert_to_tensor(np.array([[1.5], [1.5], [-3.0], [env.action_high]], np.float32))
    new, tr = env.step(state, actions, gen)
    new, tr = ({k: ops.convert_to_numpy(v) for k, v in d.items()} for d in (new, tr))
    reward = tr["reward"]
    np.testing.assert_array_equal(tr["truncated"], [1, 0, 0, 0])
    np.testing.assert_array_equal(tr["terminated"], [0, 1 if goal else 0, 0, 0])
    length_1 = 42 if goal else 0
    np.testing.assert_array_equal(tr["episode_length"], [limit, length_1, 0, 0])
    np.testing.assert_allclose(tr["episode_return"], [7.0 + reward[0], 5.0 + reward[1] if goal else 0, 0, 0])
    np.testing.assert_array_equal(new["t"], [0, 0 if goal else limit - 1, 11, 1])
    np.testing.assert_allclose(
        new["episode_return"], [0.0, 0.0 if goal else 5.0 + reward[1], 3.0 + reward[2], reward[3]]
    )
    if goal:  # the goal bonus minus the cost of the raw (unclipped) action
        np.testing.assert_allclose(reward[1], 100.0 - 0.1 * 1.5**2, rtol=1e-6)
    ended = np.array([True, goal, False, False])
    assert_start_states(env_id, new["physics"][ended])
    assert not np.allclose(new["physics"][0], start[0])
    np.testing.assert_allclose(tr["obs"], ops.convert_to_numpy(env.observe(new["physics"])))
    np.testing.assert_allclose(tr["obs"][~ended], tr["next_obs"][~ended])
    assert not np.allclose(tr["obs"][0], tr["next_obs"][0])


# --- compiled loops ---------------------------------------------------------------------------------------------------


def device_box_policy(env: DeviceEnv, pump: bool) -> Callable:
    """``policy(obs, gen, i) -> (N, 1)`` float32 in keras.ops: uniform over twice the bounds (so half the actions get
    clipped); ``pump`` pushes along the car's velocity. Draws through ``base.uniform``: the same numbers compiled."""

    def policy(obs, gen, i):
        draws = uniform((ops.shape(obs)[0], env.action_dim), 2 * env.action_low, 2 * env.action_high, gen)
        return ops.where(obs[:, 1:2] >= 0, 1.0, -1.0) * ops.abs(draws) if pump else draws

    return policy


@pytest.mark.parametrize("env_id", BOX_IDS)
def test_compiled_scan_equals_eager(env_id):
    """Random Box actions (half of them clipped) in one compiled call (XLA while_loop / jit + lax.scan) equal the same
    steps run eagerly, across autoresets: short time limits, and the car also reaches the goal.

    XLA's sin and cos and its fused arithmetic round differently from the eager kernels (by an ulp or so), and the
    pendulum amplifies that like any float32-vs-float64 difference, so its episodes are kept to 25 steps (measured:
    within 4.1e-6 on either backend; 50-step episodes drift up to 1.9e-4 apart on JAX).
    """
    pendulum = env_id == "Pendulum-v1"
    env = make_device_env(env_id, max_episode_steps=25 if pendulum else 100)
    policy = device_box_policy(env, pump=not pendulum)
    steps = 100 if pendulum else 300
    results = []
    for run in (rollout_eager, rollout_compiled):
        gen = keras.random.SeedGenerator(11)
        state = env.reset(32, gen)
        state, out = run(env, state, gen, steps, policy)
        results.append((ops.convert_to_numpy(state["physics"]), out, ops.convert_to_numpy(gen.state)))
    (p_eager, eager, g_eager), (p_comp, comp, g_comp) = results
    np.testing.assert_array_equal(g_eager, g_comp)
    assert eager["truncated"].sum() > 0 and (pendulum or eager["terminated"].sum() > 0)
    for key in ("terminated", "truncated", "episode_length"):
        np.testing.assert_array_equal(comp[key], eager[key], err_msg=key)
    for key in ("next_obs", "obs", "reward", "episode_return"):
        np.testing.assert_allclose(comp[key], eager[key], rtol=1e-5, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(p_comp, p_eager, rtol=1e-5, atol=1e-5)


# --- whole trajectories without re-syncing --------------------------------------------------------------------------


def gym_box_batch(env_id: str, n: int, steps: int, policy: Callable):
    """``n`` gymnasium episodes side by side: start states, actions (T, n, 1), next observations (T, n), alive."""
    envs = [gym.make(env_id) for _ in range(n)]
    obs = [e.reset(seed=100 + i)[0] for i, e in enumerate(envs)]
    start = np.array([e.unwrapped.state for e in envs], np.float64)
    rng = np.random.default_rng(0)
    live = np.ones(n, bool)
    acts, next_obs, alive = [], [], []
    for _ in range(steps):
        a = np.array([policy(o, rng) for o in obs], np.float32)
        alive.append(live.copy())
        for i, e in enumerate(envs):
            if live[i]:
                obs[i], _, terminated, truncated, _ = e.step(a[i])
                live[i] = not (terminated or truncated)
        acts.append(a)
        next_obs.append(np.array(obs))
    return start, np.array(acts), np.array(next_obs), np.array(alive)


def replay(actions: np.ndarray) -> Callable:
    actions = ops.convert_to_tensor(actions.astype(np.float32))
    return lambda obs, gen, i: ops.take(actions, i, axis=0)


def test_mountain_car_continuous_episodes_follow_gymnasium():
    """Not chaotic: whole episodes replaying gymnasium's actions (beyond the bounds too) stay within 1e-4 and end on
    the same step."""
    env_id = "MountainCarContinuous-v0"
    start, actions, next_obs, alive = gym_box_batch(env_id, 16, 300, mountain_car_pump)
    assert not alive[-1].any(), "every car should reach the goal within 300 steps"
    env = make_device_env(env_id)
    gen = keras.random.SeedGenerator(0)
    _, out = rollout_compiled(env, from_physics(to_physics(env_id, start)), gen, 300, replay(actions))
    err = np.abs(out["next_obs"] - next_obs).max(axis=-1)
    assert err[alive].max() < 1e-4
    ends = np.argmax(out["terminated"] > 0, axis=0)
    np.testing.assert_array_equal(ends, alive.sum(axis=0) - 1)


def test_pendulum_trajectories_follow_gymnasium_while_float32_allows():
    """Unstable near the top: replaying the same random torques, float32 follows float64 within 1e-4 for >= 45 steps
    (measured minimum over 64 episodes), so PENDULUM_TRAJ_STEPS are checked, not whole 200-step episodes."""
    env_id = "Pendulum-v1"
    steps = PENDULUM_TRAJ_STEPS
    start, actions, next_obs, alive = gym_box_batch(env_id, 16, steps, random_box_policy(env_id))
    assert alive.all()
    env = make_device_env(env_id)
    gen = keras.random.SeedGenerator(0)
    _, out = rollout_compiled(env, from_physics(to_physics(env_id, start)), gen, steps, replay(actions))
    np.testing.assert_allclose(out["next_obs"], next_obs, rtol=0, atol=PENDULUM_TRAJ_TOL)


# --- the gymnasium-facing wrapper -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", BOX_IDS)
def test_vector_env_matches_gymnasium_same_step(env_id):
    """Box actions through DeviceVectorEnv against gymnasium's own SAME_STEP vector env, time limit 120, 250 steps.

    Fresh start states are copied from gymnasium at every reset; Pendulum's whole physics is re-synced every step
    (it drifts apart within ~50 steps, see module doc), MountainCarContinuous' never.
    """
    n, limit, pendulum = 8, 120, env_id == "Pendulum-v1"
    vector_kwargs = {"autoreset_mode": AutoresetMode.SAME_STEP}
    ref = gym.make_vec(env_id, n, vectorization_mode="sync", vector_kwargs=vector_kwargs, max_episode_steps=limit)
    dev = DeviceVectorEnv(env_id, n, max_episode_steps=limit)
    assert dev.observation_space == ref.observation_space and dev.action_space == ref.action_space
    ref_obs, _ = ref.reset(seed=5)
    dev.reset(seed=5)
    gym_physics = lambda: to_physics(env_id, np.array([e.unwrapped.state for e in ref.envs]))  # noqa: E731
    np.testing.assert_allclose(dev.set_physics(gym_physics()), ref_obs, atol=1e-6)
    rng = np.random.default_rng(0)
    returns, ends = np.zeros(n), {"terminated": 0, "truncated": 0}
    for _ in range(250):
        actions = np.array([[draw_action(rng, dev.env.action_low, dev.env.action_high)] for _ in range(n)])
        if not pendulum:
            actions = np.abs(actions) * np.where(ref_obs[:, 1:2] >= 0, 1.0, -1.0)
        ref_obs, r_rew, r_term, r_trunc, r_info = ref.step(actions.astype(np.float32))
        d_obs, d_rew, d_term, d_trunc, d_info = dev.step(actions)
        np.testing.assert_array_equal(d_term, r_term)
        np.testing.assert_array_equal(d_trunc, r_trunc)
        np.testing.assert_allclose(d_rew, r_rew, rtol=REWARD_RTOL, atol=0)
        returns += r_rew
        ended = r_term | r_trunc
        if ended.any():
            ends["terminated"] += r_term.sum()
            ends["truncated"] += r_trunc.sum()
            np.testing.assert_array_equal(d_info["_final_obs"], r_info["_final_obs"])
            np.testing.assert_allclose(
                np.stack(d_info["final_obs"][ended]), np.stack(r_info["final_obs"][ended]), atol=1e-5
            )
            np.testing.assert_allclose(d_info["episode"]["r"][ended], returns[ended], rtol=1e-5)
            returns[ended] = 0.0
        if ended.any() or pendulum:
            physics = dev.physics
            resync = slice(None) if pendulum else ended
            physics[resync] = gym_physics()[resync]
            d_obs = dev.set_physics(physics)
        np.testing.assert_allclose(d_obs, ref_obs, rtol=0, atol=1e-5)
    assert ends["truncated"] >= (n if pendulum else 1) and (pendulum or ends["terminated"] >= n), ends
    ref.close()
    dev.close()


def test_vector_env_box_actions_are_checked():
    dev = DeviceVectorEnv("Pendulum-v1", 4)
    obs, _ = dev.reset(seed=3)
    assert obs.shape == (4, 3) and obs.dtype == np.float32 and dev.observation_space.contains(obs)
    assert dev.action_space == gym.spaces.Box(-2.0, 2.0, (4, 1), np.float32)
    for bad in (np.zeros(4), np.zeros((4, 2)), np.zeros((3, 1)), np.array([[0.0], [np.nan], [0.0], [0.0]])):
        with pytest.raises(ValueError, match="actions"):
            dev.step(bad)
    with pytest.raises(ValueError, match="actions"):
        dev.step(np.full((4, 1), "1"))
    dev.step(dev.action_space.sample())
    dev.step(np.array([[-9.0], [2.0], [-2.0], [3]]))  # beyond and at the bounds: clipped by the env
    obs, rew, term, trunc, _ = dev.step(np.ones((4, 1), np.int64))
    assert obs.shape == (4, 3) and rew.dtype == np.float32 and term.dtype == bool and trunc.dtype == bool
    assert not term.any()
