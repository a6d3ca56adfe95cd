"""PPO (examples/ppo.py, also ``python -m examples.reinforce`` without --algo): GAE and the clipped objective
against NumPy, update groups, looped minibatch updates against call-by-call ones, the stop rule
(examples/rl_run.py), short runs on both environment backends, exact resume, bad input, the command line."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest
from conftest import run_example
from keras import ops

import core
from examples import ppo, reinforce
from examples.rl_run import Scoreboard


def plain_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """The textbook reversed loop, one environment column at a time."""
    adv = np.zeros_like(rewards, dtype=np.float64)
    for n in range(rewards.shape[1]):
        following = 0.0
        for t in reversed(range(rewards.shape[0])):
            delta = rewards[t, n] + gamma * (1 - terminated[t, n]) * next_values[t, n] - values[t, n]
            done = max(terminated[t, n], truncated[t, n])
            following = delta + gamma * lam * (1 - done) * following
            adv[t, n] = following
    return adv, adv + values


def test_gae_hand_computed_case():
    # One env, 4 steps: terminated at t=1 (no bootstrap), cut by the time limit at t=3 (bootstraps from V(final)).
    r = np.array([[1.0], [1.0], [1.0], [1.0]], "float32")
    v = np.array([[0.5], [0.4], [0.3], [0.2]], "float32")
    nv = np.array([[0.4], [9.0], [0.2], [2.0]], "float32")  # t=1's 9.0 must be ignored (terminated)
    term = np.array([[0], [1], [0], [0]], "float32")
    trunc = np.array([[0], [0], [0], [1]], "float32")
    g, lam = 0.9, 0.5
    d3 = 1 + g * 2.0 - 0.2
    d2 = 1 + g * 0.2 - 0.3
    d1 = 1 - 0.4
    d0 = 1 + g * 0.4 - 0.5
    a3, a2, a1 = d3, d2 + g * lam * d3, d1
    a0 = d0 + g * lam * a1
    adv, ret = ppo.gae(r, v, nv, term, trunc, g, lam)
    np.testing.assert_allclose(ops.convert_to_numpy(adv)[:, 0], [a0, a1, a2, a3], rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(ret)[:, 0], np.array([a0, a1, a2, a3]) + v[:, 0], rtol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.8, 1.0])
def test_gae_matches_plain_loop_compiled(lam):
    rng = np.random.default_rng(0)
    shape = (40, 5)
    r, v, nv = (rng.normal(size=shape).astype("float32") for _ in range(3))
    term = (rng.random(shape) < 0.1).astype("float32")
    trunc = (rng.random(shape) < 0.05).astype("float32")
    expected, expected_ret = plain_gae(r, v, nv, term, trunc, 0.97, lam)
    spec = {k: core.InputSpec(shape) for k in ("r", "v", "nv", "te", "tr")}
    fn = core.make_forward(lambda b: ppo.gae(b["r"], b["v"], b["nv"], b["te"], b["tr"], 0.97, lam), spec, "xla")
    adv, ret = fn({"r": r, "v": v, "nv": nv, "te": term, "tr": trunc})
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, expected_ret, rtol=1e-5, atol=1e-5)


def test_clipped_surrogate_matches_numpy():
    rng = np.random.default_rng(1)
    logp_old = rng.normal(size=64).astype("float32") - 1
    logp = logp_old + rng.normal(scale=0.3, size=64).astype("float32")
    adv = rng.normal(size=64).astype("float32")
    ratio = np.exp(logp - logp_old)
    expected = -np.mean(np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv))
    loss, kl, frac = (float(ops.convert_to_numpy(x)) for x in ppo.clipped_surrogate(logp, logp_old, adv, 0.2))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert kl == pytest.approx(np.mean((ratio - 1) - np.log(ratio)), rel=1e-4)
    assert frac == pytest.approx(np.mean(np.abs(ratio - 1) > 0.2))


def cfg(**kw) -> ppo.Config:
    """A Discrete-action config with the flags left unset filled in, as a run fills them (examples/rl_defaults.py)."""
    config = ppo.Config(**{"eval_episodes": 0, "gif": False, **kw})
    return ppo.settled(config, "gymnasium" if config.env_backend == "gymnasium" else "device", continuous=False)


def rollout_batch(config, obs_dim=4, seed=0):
    rng = np.random.default_rng(seed)
    t, n = config.rollout_steps, config.num_envs
    return {
        "obs": rng.normal(size=(t, n, obs_dim)).astype("float32"),
        "actions": rng.integers(0, 2, (t, n)).astype("int32"),
        "rewards": np.ones((t, n), "float32"),
        "terminated": (rng.random((t, n)) < 0.05).astype("float32"),
        "truncated": np.zeros((t, n), "float32"),
        "next_obs": rng.normal(size=(t, n, obs_dim)).astype("float32"),
    }


def weights(model):
    return [np.array(w) for w in model.trainable_weights]


@pytest.mark.parametrize("frozen", ["policy", "value"])
def test_each_group_updates_only_its_own_variables(frozen):
    core.seed_everything(0)
    config = cfg()
    agent = ppo.PPO(config, 4, 2)  # no device env: the rollout comes in as inputs (the gymnasium path)
    (agent.policy_opt if frozen == "policy" else agent.value_opt).learning_rate = 1e-30  # one --lr for both
    before = {"policy": weights(agent.policy), "value": weights(agent.value)}
    logs = agent.step.train_step(rollout_batch(config))
    after = {"policy": weights(agent.policy), "value": weights(agent.value)}
    moved = "value" if frozen == "policy" else "policy"
    for b, a in zip(before[frozen], after[frozen]):
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert any(not np.allclose(a, b) for a, b in zip(before[moved], after[moved]))
    assert {"ppo/approx_kl", "ppo/clip_fraction", "losses/entropy"} <= set(logs)
    assert int(ops.convert_to_numpy(agent.policy_opt.iterations)) == config.epochs * config.minibatches


def test_looped_minibatch_updates_equal_call_by_call():
    """A group's repeats in one compiled loop (repeat_key) equal the same updates made one call at a time."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)).astype("float32")
    y = rng.normal(size=(12, 1)).astype("float32")
    order = rng.permutation(12).reshape(4, 3).astype("int32")

    def make(repeats, key_from_batch):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])

        def loss(batch):
            idx = batch["order"][batch["i"]]
            pred = model(ops.take(batch["x"], idx, axis=0))
            return ops.mean(ops.square(pred - ops.take(batch["y"], idx, axis=0)))

        group = core.UpdateGroup("g", loss, model.trainable_variables, keras.optimizers.Adam(0.05), repeats=repeats,
                                 repeat_key=None if key_from_batch else "i")  # fmt: skip
        inputs = {"x": core.InputSpec((12, 3)), "y": core.InputSpec((12, 1)), "order": core.InputSpec((4, 3), "int32")}
        if key_from_batch:
            inputs["i"] = core.InputSpec((), "int32")
        return model, core.make_step([group], inputs=inputs, mode="graph")

    looped_model, looped = make(4, key_from_batch=False)
    logs = looped.train_step({"x": x, "y": y, "order": order})
    single_model, single = make(1, key_from_batch=True)
    for i in range(4):
        last = single.train_step({"x": x, "y": y, "order": order, "i": np.int32(i)})
    for a, b in zip(weights(looped_model), weights(single_model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert logs["g/loss"] == pytest.approx(last["g/loss"], rel=1e-5)


@pytest.fixture(scope="module")
def device_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo")
    summary = ppo.train(ppo.Config(max_env_steps=20_000, eval_episodes=3, gif=False, out=str(out)))
    return out, summary


def test_short_device_run_beats_random(device_run):
    out, summary = device_run
    # A uniformly random CartPole policy averages about 22; greedy evaluation runs on gymnasium's own CartPole.
    assert summary["env_backend"] == "device" and summary["algo"] == "ppo" and summary["num_envs"] == 8
    assert summary["final_mean_return"] > 60, summary
    assert summary["eval_mean_return"] > 60, summary
    assert summary["env_steps"] >= 20_000 and summary["env_steps_per_second"] > 0
    assert summary["sampled_eval_mean_return"] > 60, summary  # the policy the stop rule measured
    # One compiled program for every call: the single-iteration one (--iterations-per-call 1), never the fused loop.
    assert (summary["tracing_counts"]["train_step"], summary["tracing_counts"]["train_steps"]) == (1, 0)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["eval_mean_return"] == summary["eval_mean_return"]


def test_device_run_resumes_exactly(tmp_path):
    """Environment state, seed generator, optimizers and counters all travel in the checkpoint."""
    full = ppo.train(cfg(max_env_steps=8192, out=str(tmp_path / "full")))
    ppo.train(cfg(max_env_steps=4096, out=str(tmp_path / "part")))
    resumed = ppo.train(cfg(max_env_steps=8192, out=str(tmp_path / "part"), resume=True))
    assert resumed["env_steps"] == full["env_steps"] and resumed["episodes"] == full["episodes"]
    # The last 100 returns stay a window of 100 across the resume (the stop rule's mean), as do the other counters.
    assert full["episodes"] > 100 and resumed["final_mean_return"] == full["final_mean_return"]
    with np.load(tmp_path / "full" / "checkpoint.npz") as a, np.load(tmp_path / "part" / "checkpoint.npz") as b:
        assert json.loads(str(a["__meta__"]))["state"] == json.loads(str(b["__meta__"]))["state"]
        assert set(a.files) == set(b.files)
        for key in a.files:
            if key != "__meta__":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_checkpoint_from_before_the_split_resumes(tmp_path):
    """examples.reinforce saved None for the per-algorithm defaults, and flags that went since: the same run."""
    out = str(tmp_path / "run")
    ppo.train(cfg(max_env_steps=1024, out=out))
    with np.load(tmp_path / "run" / "checkpoint.npz") as data:
        saved = {k: data[k] for k in data.files}
    meta = json.loads(str(saved.pop("__meta__")))
    meta["config"].update(algo="ppo", num_envs=None, gamma=None, lr=None, value_lr=None, clip_norm=None, mode=None)
    np.savez(tmp_path / "run" / "checkpoint.npz", __meta__=np.array(json.dumps(meta)), **saved)
    assert ppo.train(cfg(max_env_steps=2048, out=out, resume=True))["env_steps"] == 2048


def test_fused_iterations_equal_single_iteration_calls(tmp_path):
    """--iterations-per-call 4 (one fused program) trains as four single-iteration calls do."""
    single = ppo.train(cfg(max_env_steps=4096, out=str(tmp_path / "single")))
    fused = ppo.train(cfg(max_env_steps=4096, iterations_per_call=4, out=str(tmp_path / "fused")))
    assert fused["tracing_counts"]["train_steps"] == 1 and fused["episodes"] == single["episodes"]
    with np.load(tmp_path / "single" / "checkpoint.npz") as a, np.load(tmp_path / "fused" / "checkpoint.npz") as b:
        for key in a.files:
            if key != "__meta__":
                np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_greedy_monitors_do_not_change_learning(tmp_path):
    """The monitors step in the same batch as the training envs, yet a run learns exactly what it learns without
    them: same episodes, weights, optimizers, seed generator and training environments (Keras' random draws and
    the policy's rows are prefix-consistent on both backends)."""
    plain = ppo.train(cfg(env="Acrobot-v1", max_env_steps=4096, greedy_envs=0, out=str(tmp_path / "plain")))
    monitored = ppo.train(cfg(env="Acrobot-v1", max_env_steps=4096, greedy_envs=4, out=str(tmp_path / "mon")))
    assert (monitored["episodes"], monitored["final_mean_return"]) == (plain["episodes"], plain["final_mean_return"])
    assert monitored["env_steps"] == plain["env_steps"] == 4096  # training steps only
    assert monitored["greedy_monitor_env_steps"] == 4096 // 8 * 4 and plain["greedy_monitor_env_steps"] == 0
    assert monitored["greedy_monitor_episodes"] > 0 and monitored["greedy_monitor_mean_return"] is not None
    assert monitored["tracing_counts"]["train_step"] == 1 and monitored["devices"] == 1  # still one program
    with np.load(tmp_path / "plain" / "checkpoint.npz") as a, np.load(tmp_path / "mon" / "checkpoint.npz") as b:
        assert set(a.files) == set(b.files)
        for key in a.files:
            if key != "__meta__":  # env_state holds the monitors' rows after the training ones
                np.testing.assert_array_equal(a[key], b[key][: len(a[key])] if a[key].ndim else b[key], err_msg=key)


def test_greedy_monitors_act_with_the_argmax():
    """Replays the monitors of one compiled iteration step by step with the argmax of the policy before the
    update: their end states must be the ones the rollout left. Environments step row by row and the seed
    generator draws twice per step whatever the actions, so the training rows' actions do not matter here (zeros);
    what the training rows learn from is checked above."""
    core.seed_everything(0)
    n, g = 3, 2
    config = cfg(num_envs=n, greedy_envs=g, rollout_steps=24)
    env = core.make_device_env("CartPole-v1")
    agent = ppo.PPO(config, env.obs_dim, env.num_actions, env)
    # NumPy copies: on TensorFlow a variable's eager value can alias the buffer the call later assigns to.
    state = {k: ops.convert_to_numpy(v.value) for k, v in agent.env_state.items()}
    replay_seed = keras.random.SeedGenerator(0)
    replay_seed.state.assign(ops.convert_to_numpy(agent.seed_gen.state.value))
    greedy_taken = []
    for _ in range(config.rollout_steps):
        obs = env.observe(state["physics"])
        keras.random.uniform((n, env.num_actions), seed=replay_seed)  # the draw sample_actions makes
        greedy = ops.cast(ops.argmax(agent.policy(obs[n:]), axis=-1), "int32")
        greedy_taken.append(ops.convert_to_numpy(greedy))
        state, _ = env.step(state, ops.concatenate([ops.zeros((n,), "int32"), greedy], axis=0), replay_seed)
    logs = agent.step.train_step()
    for key, variable in agent.env_state.items():
        got, replayed = ops.convert_to_numpy(variable.value)[n:], ops.convert_to_numpy(state[key])[n:]
        np.testing.assert_allclose(got, replayed, rtol=1e-5, atol=1e-5, err_msg=key)  # compiled vs eager rounding
    assert np.shape(logs["greedy_ended"]) == (24, g) and np.shape(logs["ended"]) == (24, n)
    assert len(np.unique(greedy_taken)) == 2  # both actions occur: the argmax is not trivially constant


class FakeRun:
    def __init__(self):
        self.state = {}

    def elapsed(self):
        return 1.0


def test_stop_rule_waits_for_the_greedy_monitors():
    board = Scoreboard(FakeRun(), target=-100.0, greedy_window=4)
    board.add([-90.0] * 100, env_steps=1000, greedy_returns=[-80.0, -500.0])
    assert not board.solved and board.run.state["train_target_at"]["env_steps"] == 1000
    board.add([-90.0] * 8, env_steps=2000, greedy_returns=[-80.0, -85.0])  # a full window, mean -186.25
    assert not board.solved
    board.add([-90.0] * 8, env_steps=3000, greedy_returns=[-90.0, -150.0])  # last four -80 -85 -90 -150: -101.25
    assert not board.solved
    board.add([-90.0] * 8, env_steps=4000, greedy_returns=[-70.0])  # -85 -90 -150 -70: -98.75
    assert board.solved and board.run.state["solved_at"]["env_steps"] == 4000
    assert board.run.state["train_target_at"]["env_steps"] == 1000  # when the training mean alone got there


def test_stop_rule_without_monitors_is_the_training_mean():
    board = Scoreboard(FakeRun(), target=-100.0)
    board.add([-90.0] * 99, env_steps=1000, greedy_returns=[-500.0])  # ignored with no window
    assert not board.solved
    board.add([-90.0], env_steps=1100)
    assert board.solved and board.greedy_mean is None


def test_training_goes_on_for_train_on_env_steps_after_the_solve():
    board = Scoreboard(FakeRun(), target=-100.0)
    assert not board.done(5000, train_on=0)
    board.add([-90.0] * 100, env_steps=1000)
    assert board.solved and board.done(1000, train_on=0)
    assert not board.done(1000, train_on=30_000) and not board.done(30_999, train_on=30_000)
    assert board.done(31_000, train_on=30_000)
    assert board.run.state["solved_at"]["env_steps"] == 1000  # the solve stays dated to the rule's moment


def test_learning_rates_fall_to_zero_over_the_train_on_steps():
    board = Scoreboard(FakeRun(), target=-100.0)
    assert board.train_on_left(5000, 30_000) == 1.0  # full rate until the solve
    board.add([-90.0] * 100, env_steps=1000)
    assert board.train_on_left(16_000, 30_000) == pytest.approx(0.5)
    assert board.train_on_left(40_000, 30_000) == 0.0 and board.train_on_left(40_000, 0) == 1.0
    # the compiled iteration reads the rate: at 0 an iteration leaves both networks as they were
    config = cfg(env="Acrobot-v1", greedy_envs=0)
    env = core.make_device_env("Acrobot-v1")
    agent = ppo.PPO(config, env.obs_dim, env.num_actions, env)
    agent.iterate(1)
    before = weights(agent.policy) + weights(agent.value)
    agent.scale_learning_rates(0.0)
    agent.iterate(1)
    for a, b in zip(before, weights(agent.policy) + weights(agent.value)):
        np.testing.assert_array_equal(a, b)
    agent.scale_learning_rates(1.0)
    agent.iterate(1)
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights(agent.policy)))


def test_gymnasium_path_learns():
    summary = ppo.train(cfg(env_backend="gymnasium", max_env_steps=12_000))
    assert summary["env_backend"] == "gymnasium" and summary["final_mean_return"] > 40, summary


def test_non_finite_environment_state_stops_the_run(monkeypatch, capsys):
    cartpole = type(core.make_device_env("CartPole-v1"))
    dynamics = cartpole._dynamics

    def exploding(self, physics, actions):
        new, reward, terminated = dynamics(self, physics, actions)
        return new * float("inf"), reward, ops.zeros_like(terminated)

    monkeypatch.setattr(cartpole, "_dynamics", exploding)
    assert ppo.main(["--max-env-steps", "2000", "--no-gif", "--eval-episodes", "0"]) == 1
    err = capsys.readouterr().err
    assert "the environment returned a non-finite observation" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "main, argv, needle",
    [
        (ppo.main, ["--env-backend", "device", "--env", "LunarLander-v3"], "CartPole-v1"),
        # REINFORCE has no device path: the flag is PPO's, named by argparse's line.
        (reinforce.main, ["--env-backend", "device", "--algo", "reinforce"], "--env-backend is a flag of python -m "
         "examples.ppo"),
        (ppo.main, ["--minibatches", "100000", "--num-envs", "2", "--rollout-steps", "2"], "--minibatches"),
        (ppo.main, ["--gae-lambda", "1.5"], "--gae-lambda"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2(main, argv, needle, capsys):
    assert main([*argv, "--no-gif"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err


def help_flags(main, argv, capsys) -> set[str]:
    """The flags a command's --help lists: its options' column (the lines indented by two spaces)."""
    assert main([*argv, "--help"]) == 0
    options = re.findall(r"^  (-\S.*?)(?:  |$)", capsys.readouterr().out, re.M)
    return {flag for column in options for flag in re.findall(r"--[a-z][a-z-]*", column)}


def test_help_lists_only_ppos_own_flags(capsys):
    flags = help_flags(ppo.main, [], capsys)
    own = {"--" + f.replace("_", "-") for f in ppo.Config.__dataclass_fields__}
    bools = {"--no-anneal-lr", "--no-gif", "--no-resume", "--no-normalize"}
    assert flags == own | bools | {"--help", "--verbose"}, flags ^ (own | bools)
    for other in ("--algo", "--update-size", "--value-lr", "--shared-optimizer", "--value-clip", "--greedy-window"):
        assert other not in flags
    assert help_flags(reinforce.main, ["--algo", "ppo"], capsys) == flags  # the dispatcher hands --help on


def test_cli_smoke_device_default(tmp_path):
    out = tmp_path / "run"
    proc = run_example("ppo", "--max-env-steps", "3000", "--eval-episodes", "2", "--out", str(out), timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "on the device" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("env_backend", "num_envs", "env_steps_per_second", "solved", "eval_mean_return", "env_steps_to_solve"):
        assert key in summary
    assert summary["env_backend"] == "device" and summary["algo"] == "ppo" and (out / "checkpoint.npz").exists()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5000, 5001, 5002])
def test_default_command_solves_cartpole(seed):
    summary = ppo.train(ppo.Config(seed=seed, max_env_steps=200_000, eval_episodes=10, gif=False))
    assert summary["solved"] and summary["eval_mean_return"] > 400, summary
