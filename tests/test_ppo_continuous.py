"""PPO on Box actions (examples/rl_policy.py, examples/ppo.py): the Gaussian's and the categorical's
log-probabilities and entropies against NumPy, the running statistics against gymnasium's RunningMeanStd and a
plain reward-scaling loop, a compiled iteration against an eager one, exact resume with the normalisation state,
the gymnasium path with actions clipped only into the environment, the exported networks, bad environments."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import keras
import numpy as np
import pytest
from keras import ops

import core
from examples import ppo, reinforce, rl_policy
from examples.rl_env import RolloutCollector, make_same_step_env


def cfg(**kw) -> ppo.Config:
    return ppo.Config(**{"env": "Pendulum-v1", "eval_episodes": 0, "gif": False, **kw})


def numpy_of(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def test_gaussian_log_prob_and_entropy_match_numpy():
    rng = np.random.default_rng(0)
    head = rl_policy.Gaussian(3)
    mean = rng.normal(size=(64, 3)).astype("float32")
    log_std = rng.uniform(-7, 4, size=(64, 3)).astype("float32")  # beyond [-5, 2] on some rows: clipped
    params = np.concatenate([mean, log_std], axis=1)
    actions = (mean + rng.normal(size=(64, 3)) * 2).astype("float32")
    std = np.exp(np.clip(log_std.astype(np.float64), -5, 2))
    log_density = -0.5 * ((actions - mean) / std) ** 2 - np.log(std * math.sqrt(2 * math.pi))  # (exp underflows)
    np.testing.assert_allclose(numpy_of(head.log_prob(params, actions)), log_density.sum(-1), rtol=1e-5)
    entropy = np.sum(0.5 * np.log(2 * math.pi * math.e * std**2), axis=-1)  # of a diagonal Gaussian, per state
    np.testing.assert_allclose(numpy_of(head.entropy(params)), entropy, rtol=1e-5)
    np.testing.assert_array_equal(numpy_of(head.greedy(params)), mean)
    assert head.outputs == 6 and head.continuous


def test_categorical_log_prob_and_entropy_match_numpy():
    rng = np.random.default_rng(1)
    head = rl_policy.Categorical(4)
    logits = rng.normal(size=(32, 4)).astype("float32") * 3
    actions = rng.integers(0, 4, 32).astype("int32")
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(numpy_of(head.log_prob(logits, actions)), np.log(p[np.arange(32), actions]), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(head.entropy(logits)), -(p * np.log(p)).sum(-1), rtol=1e-5, atol=1e-6)
    assert head.outputs == 4 and not head.continuous


def test_gaussian_samples_have_the_distribution_and_prefix_rows():
    head = rl_policy.Gaussian(2)
    params = np.tile(np.array([[1.0, -3.0, math.log(0.5), math.log(2.0)]], "float32"), (20_000, 1))
    x = numpy_of(head.sample(params, keras.random.SeedGenerator(3)))
    np.testing.assert_allclose(x.mean(0), [1.0, -3.0], atol=0.03)
    np.testing.assert_allclose(x.std(0), [0.5, 2.0], rtol=0.02)
    # The first rows of a longer draw are the shorter draw: greedy monitors beside the training rows change nothing.
    short = numpy_of(rl_policy.standard_normal((5, 2), keras.random.SeedGenerator(7)))
    long = numpy_of(rl_policy.standard_normal((9, 2), keras.random.SeedGenerator(7)))
    np.testing.assert_array_equal(long[:5], short)


def test_standard_normal_is_finite_at_the_extreme_draws(monkeypatch):
    monkeypatch.setattr(keras.random, "randint", lambda shape, lo, hi, dtype, seed: np.array([lo, hi - 1], dtype))
    z = numpy_of(rl_policy.standard_normal((2,), None))
    assert np.all(np.isfinite(z)) and z[0] == -z[1] and 5.0 < z[1] < 5.5, z


def test_running_moments_match_gymnasiums_running_mean_std():
    from gymnasium.wrappers.utils import RunningMeanStd

    rng = np.random.default_rng(2)
    moments, reference = rl_policy.RunningMoments((3,), "test"), RunningMeanStd(shape=(3,))
    for size in (1, 7, 64, 500):
        batch = (rng.normal(size=(size, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]).astype("float32")
        moments.update(batch)
        reference.update(batch.astype(np.float64))
    np.testing.assert_allclose(numpy_of(moments.mean), reference.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(numpy_of(moments.var), reference.var, rtol=1e-4)
    assert float(numpy_of(moments.count)) == pytest.approx(reference.count)


def test_reward_scale_matches_a_plain_loop():
    """The per-environment discounted return restarts after an episode's end (SB3's VecNormalize); rewards are
    divided by the running standard deviation of those returns, including this rollout's, and clipped to 10."""
    rng = np.random.default_rng(3)
    t, n, gamma = 12, 3, 0.9
    norm = rl_policy.Normalizer(2, n, gamma)
    rewards = rng.normal(-5, 3, size=(t, n)).astype("float32")
    ended = (rng.random((t, n)) < 0.2).astype("float32")
    ret, seen = np.zeros(n), []
    for i in range(t):
        ret = ret * gamma + rewards[i]
        seen.append(ret.copy())
        ret = ret * (1 - ended[i])
    seen = np.concatenate(seen)
    count = rl_policy.START_COUNT + seen.size
    var = (seen.var() * seen.size + np.square(seen.mean()) * rl_policy.START_COUNT * seen.size / count) / count
    var += rl_policy.START_COUNT / count  # the starting variance 1, weighted by the starting count
    scaled = numpy_of(norm.rewards(rewards, ended))
    np.testing.assert_allclose(scaled, np.clip(rewards / np.sqrt(var + 1e-8), -10, 10), rtol=1e-4)
    np.testing.assert_allclose(numpy_of(norm.discounted), ret, rtol=1e-5)


def device_agent(mode: str, seed: int = 0, **kw) -> ppo.PPO:
    core.seed_everything(seed)
    env = core.make_device_env("Pendulum-v1")
    config = ppo.settled(cfg(mode=mode, seed=seed, rollout_steps=16, num_envs=4, greedy_envs=2, **kw), "device", True)
    return ppo.PPO(config, env.obs_dim, env.action_dim, env)


def test_a_compiled_iteration_equals_an_eager_one():
    """Rollout, normalisation, GAE and the updates as one graph call and as plain eager Keras: the same weights,
    statistics and environments, within the float rounding of compiled sin and cos (core/envs/pendulum.py)."""
    agents = [device_agent(mode, epochs=2, minibatches=4) for mode in ("eager", "graph")]  # eager: few updates
    for agent in agents:
        for _ in range(2):
            agent.step.train_step()
    eager, graph = ([*a.policy.weights, *a.value.weights, *a.norm.variables] for a in agents)
    for a, b in zip(eager, graph, strict=True):
        np.testing.assert_allclose(numpy_of(a), numpy_of(b), rtol=1e-4, atol=1e-5, err_msg=a.path)
    assert float(numpy_of(agents[1].norm.obs.count)) == pytest.approx(rl_policy.START_COUNT + 2 * 16 * 4)


def test_device_run_with_normalisation_resumes_exactly(tmp_path):
    full = ppo.train(cfg(max_env_steps=4096, checkpoint_every=10**6, out=str(tmp_path / "full")))
    ppo.train(cfg(max_env_steps=2048, out=str(tmp_path / "part")))
    resumed = ppo.train(cfg(max_env_steps=4096, out=str(tmp_path / "part"), resume=True))
    assert resumed["env_steps"] == full["env_steps"] and resumed["config"]["normalize"] is True
    with np.load(tmp_path / "full" / "checkpoint.npz") as a, np.load(tmp_path / "part" / "checkpoint.npz") as b:
        assert {"normalizer/obs_mean", "normalizer/discounted_return", "env_state/env_physics"} <= set(a.files)
        assert set(a.files) == set(b.files)
        for key in a.files:
            if key != "__meta__":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_cartpole_keeps_its_discrete_defaults():
    settled = ppo.settled(ppo.Config(), "device", continuous=False)
    assert settled.normalize is False and (settled.gamma, settled.num_envs) == (0.98, 8)
    assert ppo.settled(cfg(), "device", continuous=True).normalize is True
    assert ppo.settled(cfg(normalize=False), "device", continuous=True).normalize is False  # the flag wins


class BoxScripted(gym.Env):
    """Records the actions it gets; observations count steps, rewards are 1; ends after 5 steps."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 3.0], np.float32))
    received: list = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        BoxScripted.received.append(np.array(action))
        self.t += 1
        return np.full(2, self.t, np.float32), 1.0, False, self.t >= 5, {}


def test_gymnasium_rollouts_keep_the_sampled_actions_and_clip_only_into_the_environment():
    gym.register("BoxScripted-v0", entry_point=BoxScripted)
    try:
        env, info = make_same_step_env("BoxScripted-v0", 2)
        assert info.continuous and info.action_dim == 2 and info.num_actions == 0
        drawn = np.array([[-3.0, 1.0], [0.5, 9.0]], np.float32)
        BoxScripted.received.clear()
        batch, returns, _ = RolloutCollector(env, info, lambda obs: drawn, seed=0).collect(6)
        env.close()
    finally:
        gym.registry.pop("BoxScripted-v0")
    np.testing.assert_array_equal(batch["actions"], np.broadcast_to(drawn, (6, 2, 2)))  # as drawn: their log-prob
    np.testing.assert_array_equal(BoxScripted.received[0], [-1.0, 1.0])  # the environment's are clipped
    np.testing.assert_array_equal(BoxScripted.received[1], [0.5, 3.0])
    assert returns == [5.0, 5.0] and batch["truncated"][4].all()


def test_gymnasium_path_trains_box_actions_and_exports_networks_on_raw_observations(tmp_path):
    from test_export import assert_reproduces

    out = tmp_path / "run"
    summary = ppo.train(cfg(env_backend="gymnasium", num_envs=2, rollout_steps=64, max_env_steps=512, out=str(out)))
    assert summary["env_backend"] == "gymnasium" and summary["env_steps"] == 512 and summary["config"]["normalize"]
    core.seed_everything(0)
    config = ppo.settled(cfg(env_backend="gymnasium", num_envs=2, rollout_steps=64), "gymnasium", True)
    agent = ppo.PPO(config, 3, 1, continuous=True)
    core.load_checkpoint(out / "checkpoint.npz", agent.checkpoint_objects())
    obs = np.array([[1.0, 0.0, 0.0], [-0.6, 0.8, 7.5], [0.0, -1.0, -300.0]], "float32")  # the last one clipped
    policy = keras.saving.load_model(out / "policy.keras")
    np.testing.assert_allclose(np.asarray(policy(obs)), agent.greedy({"obs": obs}), rtol=1e-5, atol=1e-6)
    value = keras.saving.load_model(out / "value.keras")
    np.testing.assert_allclose(np.asarray(value(obs))[:, 0], numpy_of(agent.value(agent.observe(obs)))[:, 0], rtol=1e-5)
    assert_reproduces(policy, out / "policy.keras", obs, tmp_path)
    assert_reproduces(value, out / "value.keras", obs, tmp_path)


def test_discrete_runs_export_their_networks_unchanged(tmp_path):
    out = tmp_path / "run"
    ppo.train(ppo.Config(max_env_steps=512, eval_episodes=0, gif=False, out=str(out)))
    core.seed_everything(0)
    agent = ppo.PPO(ppo.settled(ppo.Config(), "device", False), 4, 2, core.make_device_env("CartPole-v1"))
    core.load_checkpoint(out / "checkpoint.npz", agent.checkpoint_objects())
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    logits = np.asarray(keras.saving.load_model(out / "policy.keras")(obs))
    np.testing.assert_allclose(logits, numpy_of(agent.policy(obs)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(logits.argmax(-1), agent.greedy({"obs": obs}))


class NanPendulum(gym.Wrapper):
    def __init__(self):
        super().__init__(gym.make("Pendulum-v1"))
        self.t = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return obs, (float("nan") if self.t == 40 else reward), terminated, truncated, info


def test_a_non_finite_reward_from_gymnasium_stops_the_run(tmp_path, capsys):
    gym.register("NanPendulum-v0", entry_point=NanPendulum, max_episode_steps=200)
    try:
        argv = ["--env", "NanPendulum-v0", "--num-envs", "1", "--rollout-steps", "32", "--max-env-steps", "512"]
        assert ppo.main([*argv, "--no-gif", "--out", str(tmp_path)]) == 1
    finally:
        gym.registry.pop("NanPendulum-v0")
    err = capsys.readouterr().err
    assert "non-finite reward" in err and "Traceback" not in err, err
    assert "non-finite reward" in json.loads((tmp_path / "summary.json").read_text())["stopped"]


def test_a_non_finite_reward_on_the_device_stops_the_run(monkeypatch, tmp_path, capsys):
    pendulum = type(core.make_device_env("Pendulum-v1"))
    dynamics = pendulum._dynamics

    def broken(self, physics, actions):
        new, reward, terminated = dynamics(self, physics, actions)
        return new, reward * float("inf"), terminated

    monkeypatch.setattr(pendulum, "_dynamics", broken)
    assert ppo.main(["--env", "Pendulum-v1", "--max-env-steps", "512", "--no-gif", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "the environment returned a non-finite reward" in err and "Traceback" not in err, err
    assert "non-finite" in json.loads((tmp_path / "summary.json").read_text())["stopped"]


class InfiniteBox(BoxScripted):
    action_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)


class DictObs(BoxScripted):
    observation_space = gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,), np.float32)})


class MultiDiscreteActions(BoxScripted):
    action_space = gym.spaces.MultiDiscrete([2, 3])


class ImageObs(BoxScripted):
    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)


@pytest.mark.parametrize(
    "env_class, needle",
    [(InfiniteBox, "infinite bounds"), (DictObs, "supported: a flat Box observation space and a Discrete or a flat "
     "Box action space"), (MultiDiscreteActions, "supported: a flat Box"), (ImageObs, "supported: a flat Box")],
)  # fmt: skip
def test_unsupported_spaces_are_one_line_exit_2(env_class, needle, capsys):
    gym.register("Unsupported-v0", entry_point=env_class, max_episode_steps=5)
    try:
        assert ppo.main(["--env", "Unsupported-v0", "--no-gif"]) == 2
    finally:
        gym.registry.pop("Unsupported-v0")
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err


def test_reinforce_refuses_box_actions_in_one_line(capsys):
    assert reinforce.main(["--algo", "reinforce", "--env", "Pendulum-v1", "--no-gif"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Box actions" in err and "--algo ppo" in err, err


@pytest.mark.parametrize(
    "env_id, module, extra",
    [("LunarLander-v3", "Box2D", "box2d"), ("LunarLanderContinuous-v3", "Box2D", "box2d"), ("Hopper-v5", "mujoco",
     "mujoco")],
)  # fmt: skip
def test_simulator_extras_train_on_the_host_path(env_id, module, extra):
    pytest.importorskip(module, reason=f'{env_id} needs the {extra} extra: pip install -e ".[{extra}]"')
    sizes = {"num_envs": 2, "rollout_steps": 32, "minibatches": 2}  # LunarLander-v3's own 16 x 1024 would take long
    config = ppo.Config(env=env_id, **sizes, max_env_steps=256, eval_episodes=1, gif=False)
    summary = ppo.train(config)
    assert summary["env_backend"] == "gymnasium" and summary["env_steps"] == 256
    assert summary["config"]["normalize"] == (env_id != "LunarLander-v3")  # on for Box actions
    assert np.isfinite(summary["eval_mean_return"])


def test_resume_compares_the_per_environment_defaults_as_filled_in(tmp_path, capsys):
    argv = [
        "--env",
        "Pendulum-v1",
        "--max-env-steps",
        "1024",
        "--eval-episodes",
        "0",
        "--no-gif",
        "--out",
        str(tmp_path),
    ]
    assert ppo.main(argv) == 0
    saved = json.loads((tmp_path / "summary.json").read_text())["config"]
    assert (saved["gamma"], saved["num_envs"], saved["minibatches"], saved["target_return"]) == (0.97, 16, 16, -200.0)
    assert ppo.main([*argv, "--resume", "--gamma", "0.97", "--num-envs", "16", "--max-env-steps", "2048"]) == 0
    capsys.readouterr()
    assert ppo.main([*argv, "--resume", "--gamma", "0.9", "--max-env-steps", "4096"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--gamma 0.97, not 0.9" in err and len(err.splitlines()) == 1, err
