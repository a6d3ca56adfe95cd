"""Device envs (core/envs) against gymnasium's own classic-control envs, on the current Keras backend.

Tolerances (float32 device math vs gymnasium's float64, measured on both backends):

- one step from the same state: next observation within ``ONE_STEP_TOL`` absolute or relative (measured: at most
  2.4e-7 on CartPole, 1e-6 on Acrobot); reward, terminated and truncated exactly, except where gymnasium's value lies
  within ``BAND`` of a termination threshold (counted, at most 2 allowed; none occur in these records);
- whole trajectories replaying the same actions, never re-synced: the rounding difference grows (CartPole: the
  inverted pendulum, e-fold about every 12 steps; Acrobot: chaos), so they agree within ``*_TRAJ_TOL`` only for the
  first ``*_TRAJ_STEPS`` steps. Measured minimum over 64 episodes: CartPole within 1e-4 for 96 steps (1e-3: 126),
  Acrobot under random torques within 1e-4 for 268 steps;
- across episode ends (``test_vector_env_matches_gymnasium_same_step``): only the random start states are copied
  from gymnasium; 300 CartPole steps agree within 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import keras
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from keras import ops

from core.envs import DEVICE_ENV_IDS, DeviceEnv, DeviceVectorEnv, make_device_env

DISCRETE_IDS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")  # the Box-action envs: tests/test_envs_continuous.py
ONE_STEP_TOL = 1e-5
BAND = 1e-6
CARTPOLE_TRAJ_TOL = 1e-4
CARTPOLE_TRAJ_STEPS = 70
ACROBOT_TRAJ_TOL = 1e-4
ACROBOT_TRAJ_STEPS = 150


# --- policies on one NumPy observation (gymnasium side) -------------------------------------------------------------


def random_policy(num_actions: int) -> Callable:
    return lambda obs, rng: int(rng.integers(num_actions))


def cartpole_lean(obs: np.ndarray, rng: np.random.Generator) -> int:
    """Push toward the pole's lean (with 5% random pushes): reaches the 500-step limit, sometimes falls."""
    return int(rng.integers(2)) if rng.random() < 0.05 else int(obs[2] + obs[3] > 0)


def acrobot_swing(obs: np.ndarray, rng: np.random.Generator) -> int:
    """Torque along the second joint's velocity: pumps energy, reaches the goal height in ~100 steps."""
    return int(rng.integers(3)) if rng.random() < 0.05 else (2 if obs[5] > 0 else 0)


def mountain_car_pump(obs: np.ndarray, rng: np.random.Generator) -> int:
    """Accelerate along the velocity (with 5% random actions): reaches the goal, and sometimes hits the left wall."""
    return int(rng.integers(3)) if rng.random() < 0.05 else (2 if obs[1] > 0 else 0)


# --- gymnasium records and one batched device step -----------------------------------------------------------------


def gym_records(env_id: str, steps: int, policy: Callable, seed: int) -> dict[str, np.ndarray]:
    """``steps`` gymnasium steps across episode ends: the state and step count before each, and what came out."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    t = 0
    rec = {k: [] for k in ("state", "t", "action", "next_obs", "reward", "terminated", "truncated", "next_state")}
    for _ in range(steps):
        action = policy(obs, rng)
        rec["state"].append(np.array(env.unwrapped.state, np.float64))
        rec["t"].append(t)
        rec["action"].append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        t += 1
        for key, value in zip(("next_obs", "reward", "terminated", "truncated"), (obs, reward, terminated, truncated)):
            rec[key].append(value)
        rec["next_state"].append(np.array(env.unwrapped.state, np.float64))
        if terminated or truncated:
            obs, _ = env.reset()
            t = 0
    env.close()
    return {k: np.array(v) for k, v in rec.items()}


def device_one_step(env: DeviceEnv, rec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every recorded step at once: one batched device step from gymnasium's states (rounded to float32)."""
    state = {
        "physics": ops.convert_to_tensor(rec["state"].astype(np.float32)),
        "t": ops.convert_to_tensor(rec["t"].astype(np.int32)),
        "episode_return": ops.zeros((len(rec["t"]),), "float32"),
    }
    actions = ops.convert_to_tensor(rec["action"].astype(np.int32))
    _, transition = env.step(state, actions, keras.random.SeedGenerator(0))
    return {k: ops.convert_to_numpy(v) for k, v in transition.items()}


def assert_one_step_matches(env_id: str, rec: dict[str, np.ndarray], margin: np.ndarray) -> None:
    """Device vs gymnasium on every record; ``margin``: gymnasium's distance to the nearest termination threshold."""
    out = device_one_step(make_device_env(env_id), rec)
    np.testing.assert_allclose(out["next_obs"], rec["next_obs"], rtol=ONE_STEP_TOL, atol=ONE_STEP_TOL)
    np.testing.assert_array_equal(out["reward"], rec["reward"].astype(np.float32))
    np.testing.assert_array_equal(out["truncated"], rec["truncated"].astype(np.float32))
    in_band = margin < BAND
    assert in_band.sum() <= 2, f"{in_band.sum()} steps within {BAND} of a termination threshold"
    np.testing.assert_array_equal(out["terminated"][~in_band], rec["terminated"][~in_band].astype(np.float32))
    ended = rec["terminated"] | rec["truncated"]
    np.testing.assert_array_equal(out["episode_length"], np.where(ended, rec["t"] + 1, 0))


# --- compiled and eager rollouts on the device ----------------------------------------------------------------------


def device_policy(kind: str, env: DeviceEnv) -> Callable:
    """``policy(obs, gen, i) -> (N,) int32`` in keras.ops at step ``i``: "random" draws from ``gen``; "lean" pushes
    toward the pole's lean; an array ``(T, N)`` replays those actions."""
    if isinstance(kind, np.ndarray):
        actions = ops.convert_to_tensor(kind.astype(np.int32))
        return lambda obs, gen, i: ops.take(actions, i, axis=0)
    if kind == "random":
        return lambda obs, gen, i: keras.random.randint((ops.shape(obs)[0],), 0, env.num_actions, seed=gen)
    if kind == "lean":
        return lambda obs, gen, i: ops.cast(ops.greater(obs[:, 2] + obs[:, 3], 0.0), "int32")
    raise ValueError(kind)


def rollout_eager(env: DeviceEnv, state: dict, gen, steps: int, policy: Callable) -> tuple[dict, dict]:
    """``steps`` steps one call at a time; returns the last state and the transitions stacked on axis 0."""
    out = []
    for i in range(steps):
        actions = policy(env.observe(state["physics"]), gen, i)
        state, transition = env.step(state, actions, gen)
        out.append({k: ops.convert_to_numpy(v) for k, v in transition.items()})
    return state, {k: np.stack([o[k] for o in out]) for k in out[0]}


def rollout_compiled(env: DeviceEnv, state: dict, gen, steps: int, policy: Callable) -> tuple[dict, dict]:
    """The same loop in one compiled call: XLA ``tf.while_loop`` on TensorFlow, ``jax.jit`` + ``lax.scan`` on JAX."""
    if keras.backend.backend() == "jax":
        return _rollout_jax(env, state, gen, steps, policy)
    return _rollout_tf(env, state, gen, steps, policy)


def _rollout_tf(env, state, gen, steps, policy):
    import tensorflow as tf

    dtypes = {"episode_length": tf.int32}

    @tf.function(jit_compile=True)
    def run(state):
        def body(i, state, arrays):
            actions = policy(env.observe(state["physics"]), gen, i)
            state, transition = env.step(state, actions, gen)
            return i + 1, state, {k: arrays[k].write(i, v) for k, v in transition.items()}

        keys = ("next_obs", "obs", "reward", "terminated", "truncated", "episode_return", "episode_length")
        arrays = {k: tf.TensorArray(dtypes.get(k, tf.float32), size=steps) for k in keys}
        _, state, arrays = tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(0), state, arrays))
        return state, {k: a.stack() for k, a in arrays.items()}

    state, stacked = run(state)
    return state, {k: ops.convert_to_numpy(v) for k, v in stacked.items()}


def _rollout_jax(env, state, gen, steps, policy):
    import jax

    @jax.jit
    def run(seed_state, state):
        def body(carry, i):
            seed_state, state = carry
            # The generator's state is a Keras variable: carry its value through the scan, never assign it.
            with keras.StatelessScope(state_mapping=[(gen.state, seed_state)]) as scope:
                actions = policy(env.observe(state["physics"]), gen, i)
                state, transition = env.step(state, actions, gen)
                seed_state = scope.get_current_value(gen.state)
            return (seed_state, state), transition

        return jax.lax.scan(body, (seed_state, state), jax.numpy.arange(steps))

    (seed_state, state), stacked = run(gen.state.value, state)
    gen.state.assign(seed_state)
    return state, {k: np.asarray(v) for k, v in stacked.items()}


def from_physics(physics: np.ndarray) -> dict:
    n = len(physics)
    return {
        "physics": ops.convert_to_tensor(np.asarray(physics, np.float32)),
        "t": ops.zeros((n,), "int32"),
        "episode_return": ops.zeros((n,), "float32"),
    }


def joined(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Several recordings' arrays end to end, key by key."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# --- one step from gymnasium's state ----------------------------------------------------------------------------------


def test_cartpole_one_step_matches_gymnasium():
    """12,000 steps across ~470 terminations and ~15 truncations: random pushes, then a policy that balances."""
    rec = joined(
        gym_records("CartPole-v1", 5000, random_policy(2), 0),
        gym_records("CartPole-v1", 7000, cartpole_lean, 1),
    )
    assert rec["terminated"].sum() > 100 and rec["truncated"].sum() >= 5
    x, theta = rec["next_state"][:, 0], rec["next_state"][:, 2]
    theta_limit = 12 * 2 * np.pi / 360
    margin = np.minimum(np.abs(np.abs(x) - 2.4), np.abs(np.abs(theta) - theta_limit))
    assert_one_step_matches("CartPole-v1", rec, margin)


def test_acrobot_one_step_matches_gymnasium():
    """10,000 steps: random torques (which run into the time limit) and an energy-pumping policy (which terminates)."""
    rec = joined(
        gym_records("Acrobot-v1", 5000, random_policy(3), 0),
        gym_records("Acrobot-v1", 5000, acrobot_swing, 1),
    )
    assert rec["terminated"].sum() > 20 and rec["truncated"].sum() >= 5
    s = rec["next_state"]
    margin = np.abs(-np.cos(s[:, 0]) - np.cos(s[:, 1] + s[:, 0]) - 1.0)
    assert_one_step_matches("Acrobot-v1", rec, margin)


def test_mountain_car_one_step_matches_gymnasium():
    """10,000 steps: random actions (which run into the time limit) and energy pumping (goal and left wall)."""
    rec = joined(
        gym_records("MountainCar-v0", 5000, random_policy(3), 0),
        gym_records("MountainCar-v0", 5000, mountain_car_pump, 0),
    )
    assert rec["terminated"].sum() > 20 and rec["truncated"].sum() >= 5
    assert (rec["next_state"][:, 0] <= -1.2).sum() > 5, "the left wall (velocity zeroed) must be exercised"
    position = rec["next_state"][:, 0]
    margin = np.abs(position - 0.5)  # the goal; the velocity test (>= 0) is exact at the wall's clip to 0
    assert_one_step_matches("MountainCar-v0", rec, margin)


# --- whole trajectories without re-syncing --------------------------------------------------------------------------


def gym_batch(env_id: str, n: int, steps: int, policy: Callable, actions: np.ndarray | None = None):
    """``n`` gymnasium episodes side by side: start states, actions (T, n), next observations (T, n), alive (T, n)."""
    envs = [gym.make(env_id) for _ in range(n)]
    obs = [e.reset(seed=100 + i)[0] for i, e in enumerate(envs)]
    start = np.array([e.unwrapped.state for e in envs], np.float64)
    rng = np.random.default_rng(0)
    live = np.ones(n, bool)
    acts, next_obs, alive = [], [], []
    for t in range(steps):
        a = actions[t] if actions is not None else np.array([policy(o, rng) for o in obs])
        alive.append(live.copy())
        for i, e in enumerate(envs):
            if live[i]:
                obs[i], _, terminated, truncated, _ = e.step(int(a[i]))
                live[i] = not (terminated or truncated)
        acts.append(a)
        next_obs.append(np.array(obs))
    return start, np.array(acts), np.array(next_obs), np.array(alive)


def test_cartpole_trajectories_follow_gymnasium():
    """16 episodes replaying gymnasium's actions (a balancing policy's), compiled, never re-synced.

    The inverted pendulum amplifies the float32-vs-float64 rounding about e-fold every 12 steps, so the two follow
    each other within CARTPOLE_TRAJ_TOL for CARTPOLE_TRAJ_STEPS steps (measured over 64 episodes: 1e-5 held for
    >= 66 steps, 1e-4 for >= 96, 1e-3 for >= 126), not for whole 500-step episodes.
    """
    steps = CARTPOLE_TRAJ_STEPS
    start, actions, next_obs, alive = gym_batch("CartPole-v1", 16, steps, lambda o, rng: int(o[2] + o[3] > 0))
    assert alive.all()
    env = make_device_env("CartPole-v1")
    gen = keras.random.SeedGenerator(0)
    _, out = rollout_compiled(env, from_physics(start), gen, steps, device_policy(actions, env))
    np.testing.assert_allclose(out["next_obs"], next_obs, rtol=0, atol=CARTPOLE_TRAJ_TOL)
    assert not out["terminated"].any()


def test_acrobot_trajectories_follow_gymnasium_while_float32_allows():
    """Chaotic: replaying the same random torques, float32 follows float64 within 1e-4 for >= 268 steps (measured)."""
    steps = ACROBOT_TRAJ_STEPS
    actions = np.random.default_rng(3).integers(3, size=(steps, 16))
    start, _, next_obs, alive = gym_batch("Acrobot-v1", 16, steps, None, actions=actions)
    assert alive.all()
    env = make_device_env("Acrobot-v1")
    gen = keras.random.SeedGenerator(0)
    _, out = rollout_compiled(env, from_physics(start), gen, steps, device_policy(actions, env))
    np.testing.assert_allclose(out["next_obs"], next_obs, rtol=0, atol=ACROBOT_TRAJ_TOL)


def test_mountain_car_episodes_follow_gymnasium():
    """Not chaotic: whole episodes replaying gymnasium's actions stay within 1e-4 and end on the same step."""
    start, actions, next_obs, alive = gym_batch("MountainCar-v0", 16, 200, mountain_car_pump)
    env = make_device_env("MountainCar-v0")
    _, out = rollout_compiled(env, from_physics(start), keras.random.SeedGenerator(0), 200, device_policy(actions, env))
    err = np.abs(out["next_obs"] - next_obs).max(axis=-1)
    assert err[alive].max() < 1e-4
    ends = np.argmax(out["terminated"] + out["truncated"] > 0, axis=0)
    np.testing.assert_array_equal(ends, alive.sum(axis=0) - 1)


def test_time_limit_in_a_compiled_run():
    """A balancing policy, 501 steps: episodes still up truncate exactly at step 500, record 500, start afresh."""
    env = make_device_env("CartPole-v1")
    gen = keras.random.SeedGenerator(2)
    state = env.reset(16, gen)
    _, out = rollout_compiled(env, state, gen, 501, device_policy("lean", env))
    up = out["terminated"][:500].sum(axis=0) == 0
    assert up.sum() >= 8, "the balancing policy should keep most poles up for 500 steps"
    assert not out["truncated"][:499].any()
    np.testing.assert_array_equal(out["truncated"][499], up.astype(np.float32))
    np.testing.assert_array_equal(out["terminated"][499][up], 0.0)
    np.testing.assert_array_equal(out["episode_length"][499][up], 500)
    np.testing.assert_array_equal(out["episode_return"][499][up], 500.0)
    assert np.all(np.abs(out["obs"][499][up]) < 0.05), "fresh start states after the time limit"
    np.testing.assert_array_equal(out["truncated"][500], 0.0)


# --- time limit, autoreset, episode statistics ----------------------------------------------------------------------


def assert_start_states(env_id: str, physics: np.ndarray) -> None:
    """gymnasium's start-state ranges."""
    if env_id == "MountainCar-v0":
        assert np.all((physics[:, 0] >= -0.6) & (physics[:, 0] < -0.4)) and np.all(physics[:, 1] == 0.0)
    else:
        bound = 0.05 if env_id == "CartPole-v1" else 0.1
        assert np.all((physics >= -bound) & (physics < bound))


def test_start_states_cover_gymnasiums_range():
    for env_id in DISCRETE_IDS:
        physics = ops.convert_to_numpy(make_device_env(env_id).reset(4096, keras.random.SeedGenerator(1))["physics"])
        assert_start_states(env_id, physics)
        spread = np.ptp(physics[:, 0])
        assert spread > (0.19 if env_id == "MountainCar-v0" else 0.095 if env_id == "CartPole-v1" else 0.19)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"])
def test_time_limit_autoreset_and_episode_statistics(env_id):
    env = make_device_env(env_id)
    limit = env.max_episode_steps
    gen = keras.random.SeedGenerator(7)
    state = env.reset(4, gen)
    start = ops.convert_to_numpy(state["physics"])
    assert_start_states(env_id, start)
    # Env 0 is one step short of the limit, env 1 two steps short, envs 2-3 mid-episode.
    state["t"] = ops.convert_to_tensor(np.array([limit - 1, limit - 2, 10, 0], np.int32))
    state["episode_return"] = ops.convert_to_tensor(np.array([7.0, 5.0, 3.0, 0.0], np.float32))
    actions = ops.convert_to_tensor(np.array([1, 1, 1, 1], np.int32))
    new, tr = env.step(state, actions, gen)
    new, tr = ({k: ops.convert_to_numpy(v) for k, v in d.items()} for d in (new, tr))
    reward = tr["reward"]
    np.testing.assert_array_equal(tr["truncated"], [1, 0, 0, 0])
    np.testing.assert_array_equal(tr["terminated"], [0, 0, 0, 0])
    np.testing.assert_array_equal(tr["episode_length"], [limit, 0, 0, 0])
    np.testing.assert_allclose(tr["episode_return"], [7.0 + reward[0], 0, 0, 0])
    np.testing.assert_array_equal(new["t"], [0, limit - 1, 11, 1])
    np.testing.assert_allclose(new["episode_return"], [0.0, 5.0 + reward[1], 3.0 + reward[2], reward[3]])
    # Env 0 starts afresh: a new start state in range, observed in "obs"; "next_obs" keeps the final observation.
    assert_start_states(env_id, new["physics"][:1])
    assert not np.allclose(new["physics"][0], start[0])
    np.testing.assert_allclose(tr["obs"], ops.convert_to_numpy(env.observe(new["physics"])))
    np.testing.assert_allclose(tr["obs"][1:], tr["next_obs"][1:])
    assert not np.allclose(tr["obs"][0], tr["next_obs"][0])


def test_termination_records_the_episode_and_resets():
    env = make_device_env("CartPole-v1")
    physics = np.array([[2.39, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    state = {**from_physics(physics), "t": ops.convert_to_tensor(np.array([41, 41], np.int32))}
    state["episode_return"] = ops.convert_to_tensor(np.array([41.0, 41.0], np.float32))
    new, tr = env.step(state, ops.convert_to_tensor(np.array([1, 1], np.int32)), keras.random.SeedGenerator(0))
    tr = {k: ops.convert_to_numpy(v) for k, v in tr.items()}
    np.testing.assert_array_equal(tr["terminated"], [1, 0])
    np.testing.assert_array_equal(tr["truncated"], [0, 0])
    np.testing.assert_array_equal(tr["episode_length"], [42, 0])
    np.testing.assert_array_equal(tr["episode_return"], [42.0, 0.0])
    np.testing.assert_allclose(tr["next_obs"][0, 0], 2.41, rtol=1e-6)
    assert np.all(np.abs(ops.convert_to_numpy(new["physics"])[0]) < 0.05)
    np.testing.assert_array_equal(ops.convert_to_numpy(new["t"]), [0, 42])


# --- compiled loops ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"])
def test_compiled_loop_equals_eager(env_id):
    """200 random-policy steps in one compiled call (XLA while_loop / jit + scan) equal the same steps run eagerly."""
    env = make_device_env(env_id, max_episode_steps=50)  # short episodes: the autoreset runs inside the loop
    policy = device_policy("random", env)
    steps = 120 if env_id == "Acrobot-v1" else 200
    results = []
    for run in (rollout_eager, rollout_compiled):
        gen = keras.random.SeedGenerator(11)
        state = env.reset(32, gen)
        state, out = run(env, state, gen, steps, policy)
        results.append((ops.convert_to_numpy(state["physics"]), out, ops.convert_to_numpy(gen.state)))
    (p_eager, eager, g_eager), (p_comp, comp, g_comp) = results
    np.testing.assert_array_equal(g_eager, g_comp)
    assert eager["truncated"].sum() > 0 and (env_id != "CartPole-v1" or eager["terminated"].sum() > 0)
    for key in ("reward", "terminated", "truncated", "episode_length"):
        np.testing.assert_array_equal(comp[key], eager[key], err_msg=key)
    for key in ("next_obs", "obs", "episode_return"):
        np.testing.assert_allclose(comp[key], eager[key], rtol=1e-5, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(p_comp, p_eager, rtol=1e-5, atol=1e-5)


# --- the gymnasium-facing wrapper -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id,steps", [("CartPole-v1", 300), ("Acrobot-v1", 60), ("MountainCar-v0", 210)])
def test_vector_env_matches_gymnasium_same_step(env_id, steps):
    """Stepped as gymnasium code would, against gymnasium's own vector env in SAME_STEP mode.

    Start states come from gymnasium (set_physics) at every reset; everything else is the device env's.
    """
    n = 8
    ref = gym.make_vec(
        env_id, num_envs=n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}
    )
    dev = DeviceVectorEnv(env_id, n)
    assert dev.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert dev.observation_space == ref.observation_space and dev.action_space == ref.action_space
    ref_obs, _ = ref.reset(seed=5)
    dev.reset(seed=5)
    obs = dev.set_physics(np.array([e.unwrapped.state for e in ref.envs]))
    np.testing.assert_allclose(obs, ref_obs, atol=1e-6)
    rng = np.random.default_rng(0)
    ended_total = 0
    for _ in range(steps):
        actions = rng.integers(dev.env.num_actions, size=n)
        r_obs, r_rew, r_term, r_trunc, r_info = ref.step(actions)
        d_obs, d_rew, d_term, d_trunc, d_info = dev.step(actions)
        np.testing.assert_array_equal(d_term, r_term)
        np.testing.assert_array_equal(d_trunc, r_trunc)
        np.testing.assert_array_equal(d_rew, r_rew)
        ended = r_term | r_trunc
        if ended.any():
            ended_total += ended.sum()
            np.testing.assert_array_equal(d_info["_final_obs"], r_info["_final_obs"])
            np.testing.assert_allclose(
                np.stack(d_info["final_obs"][ended]), np.stack(r_info["final_obs"][ended]), atol=1e-5
            )
            assert np.all(d_info["episode"]["l"][ended] > 0)
            # Re-sync only the fresh start states: gymnasium's own random numbers.
            physics = dev.physics
            physics[ended] = np.array([ref.envs[i].unwrapped.state for i in np.flatnonzero(ended)])
            d_obs = dev.set_physics(physics)
        np.testing.assert_allclose(d_obs, r_obs, rtol=1e-5, atol=1e-5)
    assert ended_total >= {"CartPole-v1": 20, "Acrobot-v1": 0, "MountainCar-v0": n}[env_id]
    ref.close()
    dev.close()


def test_vector_env_api():
    dev = DeviceVectorEnv("CartPole-v1", 4)
    with pytest.raises(RuntimeError, match="reset"):
        dev.step(np.zeros(4, int))
    a, _ = dev.reset(seed=3)
    b, _ = dev.reset(seed=3)
    c, _ = dev.reset()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and a.dtype == np.float32 and a.shape == (4, 4)
    assert dev.observation_space.contains(a)
    with pytest.raises(ValueError, match="actions"):
        dev.step(np.array([0, 1, 2, 0]))
    obs, rew, term, trunc, info = dev.step(np.ones(4, np.int64))
    assert obs.shape == (4, 4) and rew.dtype == np.float32 and term.dtype == bool and trunc.dtype == bool


# --- the registry -----------------------------------------------------------------------------------------------------


def test_registry():
    assert set(DEVICE_ENV_IDS) == {*DISCRETE_IDS, "MountainCarContinuous-v0", "Pendulum-v1"}
    for env_id in DISCRETE_IDS:
        env = make_device_env(env_id)
        spec = gym.spec(env_id)
        assert env.env_id == env_id and env.max_episode_steps == spec.max_episode_steps
        assert env.reward_threshold == spec.reward_threshold
        ref = gym.make(env_id)
        assert env.obs_dim == ref.observation_space.shape[0] and env.num_actions == ref.action_space.n
    with pytest.raises(ValueError) as info:
        make_device_env("LunarLander-v3")
    assert "LunarLander-v3" in str(info.value)
    for env_id in DEVICE_ENV_IDS:
        assert env_id in str(info.value)
