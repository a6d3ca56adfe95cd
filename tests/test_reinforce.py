"""REINFORCE (examples/reinforce_mc.py, also ``python -m examples.reinforce --algo reinforce``; gymnasium): returns,
autoreset boundaries, update groups, sampling, a short run, checkpoints, CLI, and the dispatcher
examples/reinforce.py. PPO and the device path: tests/test_ppo.py."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
from conftest import run_example
from gymnasium.vector import AutoresetMode

import core
from examples import ppo, reinforce, reinforce_mc
from examples.reinforce_mc import Reinforce, discounted_returns
from examples.rl_env import Collector, EnvInfo, EpisodeWindow


def rcfg(**kw) -> reinforce_mc.Config:
    return reinforce_mc.Config(**kw)


CARTPOLE = EnvInfo("CartPole-v1", 4, 2, 0, 475.0, 500, AutoresetMode.NEXT_STEP, "vector")


def plain_returns(rewards, ends, gamma):
    """The textbook loop, one environment column at a time."""
    out = np.zeros_like(rewards, dtype=np.float64)
    for n in range(rewards.shape[1]):
        g = 0.0
        for t in reversed(range(rewards.shape[0])):
            g = rewards[t, n] + gamma * (1.0 - ends[t, n]) * g
            out[t, n] = g
    return out


@pytest.mark.parametrize("rows,gamma", [(1, 0.9), (15, 0.99), (16, 0.5), (17, 1.0), (130, 0.97)])
def test_returns_match_plain_loop(rows, gamma):
    rng = np.random.default_rng(rows)
    rewards = rng.normal(size=(rows, 6)).astype("float32")
    ends = (rng.random((rows, 6)) < 0.15).astype("float32")
    expected = plain_returns(rewards, ends, gamma)
    eager = np.asarray(discounted_returns(rewards, ends, gamma))
    compiled = core.make_forward(
        lambda b: discounted_returns(b["r"], b["e"], gamma),
        {"r": core.InputSpec((None, 6)), "e": core.InputSpec((None, 6))},
    )({"r": rewards, "e": ends})
    np.testing.assert_allclose(eager, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(compiled, expected, rtol=1e-5, atol=1e-4)


class Scripted(gym.Env):
    """Episodes of fixed ``length``; obs = (episode number, t); reward = 10 * episode + t."""

    def __init__(self, length: int):
        self.length = length
        self.observation_space = gym.spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.episode = -1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return np.array([self.episode, 0], np.float32), {}

    def step(self, action):
        reward = 10.0 * self.episode + self.t
        self.t += 1
        return np.array([self.episode, self.t], np.float32), reward, self.t >= self.length, False, {}


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_autoreset_boundaries(mode):
    lengths = [3, 5]
    env = gym.vector.SyncVectorEnv([lambda n=n: Scripted(n) for n in lengths], autoreset_mode=mode)
    info = EnvInfo("scripted", 2, 2, 0, None, None, mode, "sync")
    window = EpisodeWindow(2, 64, 2)
    collector = Collector(env, info, window, lambda obs: np.zeros(len(obs), np.int32), seed=0)
    stored, returns, ep_lengths = collector.collect(17)
    if mode == AutoresetMode.NEXT_STEP:  # one reset step after each finished episode is not a transition
        assert stored < 34
    else:
        assert stored == 34
    # Every stored transition belongs to an episode and starts where the previous one ended: no reset step stored.
    for col, length in enumerate(lengths):
        fill = window.fill[col]
        episode, t = window.obs[:fill, col, 0], window.obs[:fill, col, 1]
        np.testing.assert_array_equal(t, np.arange(fill) % length)
        np.testing.assert_array_equal(episode, np.arange(fill) // length)
        np.testing.assert_array_equal(window.rewards[:fill, col], 10 * episode + t)
        np.testing.assert_array_equal(window.ends[:fill, col], (t == length - 1).astype(np.float32))
        assert window.done_upto[col] == fill // length * length
    finished = [(e, n) for n, col in zip(lengths, range(2)) for e in range(window.done_upto[col] // n)]
    assert sorted(ep_lengths) == sorted(n for _, n in finished)
    assert sorted(returns) == sorted(sum(10 * e + t for t in range(n)) for e, n in finished)
    # The trainable batch: returns restart at every episode end, padding is inert.
    (batch,) = window.batches(update_size=64)
    returns_tl = plain_returns(batch["rewards"], batch["ends"], 0.9)
    got = np.asarray(discounted_returns(batch["rewards"], batch["ends"], 0.9)).ravel()[batch["index"]]
    m = int(batch["weight"].sum())
    assert m == window.trainable()
    np.testing.assert_allclose(got[:m], returns_tl.ravel()[batch["index"][:m]], rtol=1e-5)
    for i in range(m):  # each value is its own episode's reward-to-go, by hand
        e, t = batch["obs"][i]
        length = lengths[batch["index"][i] % 2]
        expected = sum(0.9 ** (k - t) * (10 * e + k) for k in range(int(t), length))
        assert got[i] == pytest.approx(expected, rel=1e-5)
    # After training, the running episodes move to the top and keep going seamlessly.
    tails = window.fill - window.done_upto
    window.drop_finished()
    np.testing.assert_array_equal(window.fill, tails)
    window.make_room(10)
    collector.collect(10)
    for col, length in enumerate(lengths):
        t = window.obs[: window.fill[col], col, 1]
        assert np.all((np.diff(t) == 1) | ((t[:-1] == length - 1) & (t[1:] == 0)))
    env.close()


def test_make_room_splits_overlong_episodes():
    window = EpisodeWindow(1, 6, 1)
    for _ in range(5):
        window.add(np.zeros((1, 1)), np.zeros(1, np.int32), np.ones(1), np.zeros(1), None)
    assert window.trainable() == 0
    assert window.make_room(2) == 1
    assert window.trainable() == 5 and window.ends[4, 0] == 1.0


def test_batches_have_one_shape_and_split_evenly():
    rng = np.random.default_rng(3)
    window = EpisodeWindow(8, 40, 3)
    shapes = set()
    for _ in range(6):
        window.make_room(6)
        for _ in range(6):
            window.add(
                rng.normal(size=(8, 3)).astype("float32"),
                rng.integers(0, 2, 8).astype("int32"),
                rng.normal(size=8).astype("float32"),
                (rng.random(8) < 0.2).astype("float32"),
                None,
            )
        expected = np.flatnonzero(np.arange(40)[:, None] < window.done_upto[None, :])
        batches = window.batches(update_size=16)
        assert len(batches) == max(1, -(-expected.size // 16))
        got = np.concatenate([b["index"][b["weight"] > 0] for b in batches])
        np.testing.assert_array_equal(np.sort(got), expected)  # every finished transition once
        for b in batches:
            shapes.add(tuple((k, v.shape) for k, v in sorted(b.items())))
            m = int(b["weight"].sum())
            assert np.all(b["weight"][:m] == 1) and np.all(b["weight"][m:] == 0)
            np.testing.assert_array_equal(b["obs"][:m], window.obs.reshape(-1, 3)[b["index"][:m]])
        if len(batches) > 1:  # strided: each part spans the whole window, not a block of rows
            sizes = [int(b["weight"].sum()) for b in batches]
            assert max(sizes) - min(sizes) <= 1
        window.drop_finished()
    assert len(shapes) == 1, shapes


def _fake_batch(rows=40, n=32, seed=0):
    rng = np.random.default_rng(seed)
    window = EpisodeWindow(n, 64, 4)
    for _ in range(rows):
        window.add(
            rng.normal(size=(n, 4)).astype("float32"),
            rng.integers(0, 2, n).astype("int32"),
            np.ones(n, "float32"),
            (rng.random(n) < 0.1).astype("float32"),
            None,
        )
    return window.batches()[0]


def _weights(model):
    return [np.array(w) for w in model.trainable_weights]


@pytest.mark.parametrize("frozen", ["policy", "value"])
def test_each_group_updates_only_its_own_variables(frozen):
    core.seed_everything(0)
    config = rcfg(**{"lr" if frozen == "policy" else "value_lr": 1e-30})
    agent = Reinforce(config, CARTPOLE, 32)
    groups = {g.name: {id(v) for v in g.variables} for g in agent.step.groups}
    assert groups["policy"] == {id(v) for v in agent.policy.trainable_variables}
    assert groups["value"] == {id(v) for v in agent.value.trainable_variables}
    before = {"policy": _weights(agent.policy), "value": _weights(agent.value)}
    logs = agent.step.train_step(_fake_batch())
    after = {"policy": _weights(agent.policy), "value": _weights(agent.value)}
    moved = "value" if frozen == "policy" else "policy"
    for b, a in zip(before[frozen], after[frozen]):
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert any(not np.allclose(a, b) for a, b in zip(before[moved], after[moved]))
    assert logs["policy/grad_norm"] > 0 and logs["value/grad_norm"] > 0
    assert logs["policy/grad_norm_applied"] <= config.clip_norm + 1e-5


def test_sampling_matches_policy_probabilities():
    core.seed_everything(1)
    info = EnvInfo("x", 4, 3, 0, None, None, AutoresetMode.NEXT_STEP, "vector")
    agent = Reinforce(rcfg(), info, 8)
    probs = np.array([0.1, 0.3, 0.6])
    out = agent.policy.get_layer("out")
    out.kernel.assign(np.zeros(out.kernel.shape, "float32"))
    out.bias.assign(np.log(probs).astype("float32"))
    obs = np.random.default_rng(0).normal(size=(2000, 4)).astype("float32")
    counts = np.zeros(3)
    for _ in range(10):
        counts += np.bincount(agent.act(obs), minlength=3)
    n = counts.sum()
    chi2 = float((((counts - n * probs) ** 2) / (n * probs)).sum())
    assert chi2 < 13.8, (counts / n, chi2)  # p = 0.001 for 2 degrees of freedom
    assert agent.sample.tracing_count() == 1
    assert set(np.unique(agent.greedy({"obs": obs}))) == {2}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reinforce")
    config = rcfg(max_env_steps=25_000, eval_episodes=3, gif=False, out=str(out), checkpoint_every=5000)
    return out, config, reinforce_mc.train(config)


def test_short_cartpole_run_beats_random(short_run):
    out, config, summary = short_run
    # A uniformly random CartPole policy averages about 22.
    assert summary["final_mean_return"] > 80, summary
    assert summary["eval_mean_return"] > 80, summary
    assert summary["env_steps"] >= config.max_env_steps
    on_disk = json.loads((out / "summary.json").read_text())
    for key in (
        "env_id",
        "solved",
        "env_steps_to_solve",
        "episodes_to_solve",
        "wall_seconds_to_solve",
        "env_steps",
        "final_mean_return",
        "eval_mean_return",
        "train_seconds",
    ):
        assert key in on_disk
    assert on_disk["env_id"] == "CartPole-v1" and on_disk["solved"] is False
    assert on_disk["env_steps_to_solve"] is None and on_disk["wall_seconds_to_solve"] is None
    # Fixed batch shapes (and None dims on TensorFlow): each compiled call traced once, on either backend.
    assert summary["tracing_counts"]["train_step"] == 1
    assert summary["bootstrap_truncated"] is False  # auto: CartPole's first episodes end by themselves
    assert summary["tracing_counts"]["sample"] == 1
    assert (out / "tb").is_dir()


def test_checkpoint_round_trip_and_resume(short_run):
    out, config, summary = short_run
    core.seed_everything(123)
    agent = Reinforce(config, CARTPOLE, config.num_envs)
    ckpt = core.Checkpointer(out, agent.checkpoint_objects())
    meta = ckpt.load()
    assert meta["step"] == summary["env_steps"] and meta["state"]["episodes"] == summary["episodes"]
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    # Same weights as the trained agent: the greedy actions of a fresh, restored agent match the saved run's.
    fresh = Reinforce(config, CARTPOLE, config.num_envs)
    core.Checkpointer(out, fresh.checkpoint_objects()).load()
    for a, b in zip(_weights(agent.policy), _weights(fresh.policy)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(agent.greedy({"obs": obs}), fresh.greedy({"obs": obs}))
    # More than 500 steps of each of the 32 environments, restarted on resume: every one ends an episode by
    # CartPole's time limit (with 8000, a policy whose episodes last about 450 steps could end none).
    more = 32 * 501
    resumed = reinforce_mc.train(
        reinforce_mc.Config(**{**vars(config), "resume": True, "max_env_steps": summary["env_steps"] + more})
    )
    assert resumed["env_steps"] >= summary["env_steps"] + more
    assert resumed["episodes"] > summary["episodes"]


def test_same_seed_repeats_exactly():
    config = rcfg(max_env_steps=4000, eval_episodes=0, gif=False)
    a, b = reinforce_mc.train(config), reinforce_mc.train(config)
    for key in ("env_steps", "episodes", "final_mean_return", "updates"):
        assert a[key] == b[key]


def test_non_finite_loss_stops_with_one_line_and_no_checkpoint(tmp_path, monkeypatch, capsys):
    original = Reinforce.policy_loss

    def broken(self, batch):
        loss, aux = original(self, batch)
        return loss * float("nan"), aux

    monkeypatch.setattr(Reinforce, "policy_loss", broken)
    argv = ["--algo", "reinforce", "--max-env-steps", "3000", "--out", str(tmp_path), "--checkpoint-every", "1"]
    rc = reinforce.main([*argv, "--no-gif"])
    assert rc == 1
    err = capsys.readouterr().err
    # The first non-finite log named (jax.jit returns its dict sorted by key, so it may be policy/grad_norm).
    assert "became nan" in err and "policy/" in err, err
    assert not (tmp_path / "checkpoint.npz").exists()  # no state saved past the last good one (there was none)
    assert "non-finite" in json.loads((tmp_path / "summary.json").read_text())["stopped"]


@pytest.mark.parametrize(
    "env_id,needle",
    [("NoSuchEnv-v0", "NoSuchEnv"), ("Pendulum-v1", "Discrete actions only"), ("CartPole-v999", "CartPole")],
)
def test_bad_env_is_one_line_exit_2(env_id, needle, capsys):
    assert reinforce.main(["--algo", "reinforce", "--env", env_id, "--no-gif"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def _run(args, tmp_path, timeout=240):
    return run_example("reinforce", *args, timeout=timeout)


def test_cli_bad_env_subprocess(tmp_path):
    proc = _run(["--algo", "reinforce", "--env", "Pendulum-v1"], tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_cli_smoke(tmp_path):
    out = tmp_path / "run"
    proc = run_example(
        "reinforce_mc", "--max-env-steps", "3000", "--eval-episodes", "2", "--out", str(out), timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    assert "stepping on" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "reinforce" and summary["env_backend"] == "gymnasium"
    assert summary["env_steps"] >= 3000 and summary["eval_mean_return"] is not None
    assert (out / "checkpoint.npz").exists()
    try:
        import pygame  # noqa: F401
    except ImportError:
        return
    assert (out / "episode.gif").stat().st_size > 1000


def test_cli_smoke_of_the_dispatcher(tmp_path):
    """``python -m examples.reinforce --algo reinforce`` as the docs write it runs REINFORCE."""
    out = tmp_path / "run"
    argv = ["--algo", "reinforce", "--max-env-steps", "1000", "--eval-episodes", "0", "--no-gif", "--out", str(out)]
    proc = _run(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "reinforce" and summary["env_steps"] >= 1000 and "algo" not in summary["config"]


def help_flags(main, argv, capsys) -> set[str]:
    """The flags a command's --help lists: its options' column (the lines indented by two spaces)."""
    assert main([*argv, "--help"]) == 0
    options = re.findall(r"^  (-\S.*?)(?:  |$)", capsys.readouterr().out, re.M)
    return {flag for column in options for flag in re.findall(r"--[a-z][a-z-]*", column)}


def test_help_lists_only_reinforces_own_flags(capsys):
    flags = help_flags(reinforce_mc.main, [], capsys)
    own = {"--" + f.replace("_", "-") for f in reinforce_mc.Config.__dataclass_fields__}
    bools = {"--no-baseline", "--no-gif", "--no-resume"}
    assert flags == own | bools | {"--help", "--verbose"}, flags ^ (own | bools)
    for other in ("--algo", "--env-backend", "--epochs", "--clip-coef", "--train-on", "--greedy-envs"):
        assert other not in flags
    assert help_flags(reinforce.main, ["--algo", "reinforce"], capsys) == flags  # the dispatcher hands --help on


def test_dispatcher_help_names_the_programs_and_no_flag_of_theirs(capsys):
    assert help_flags(reinforce.main, [], capsys) == {"--algo"}
    assert reinforce.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "examples.ppo" in out and "examples.reinforce_mc" in out


@pytest.mark.parametrize(
    "argv, program, rest",
    [
        ([], "ppo", []),
        (["--seed", "3"], "ppo", ["--seed", "3"]),
        (["--algo", "ppo", "--seed", "3"], "ppo", ["--seed", "3"]),
        (["--seed", "3", "--algo", "reinforce"], "reinforce_mc", ["--seed", "3"]),
        (["--algo=reinforce", "--out", "d"], "reinforce_mc", ["--out", "d"]),
    ],
)
def test_dispatcher_runs_the_program_of_algo_without_the_flag(monkeypatch, argv, program, rest):
    called = []
    for module in (ppo, reinforce_mc):
        monkeypatch.setattr(module, "main", lambda a, name=module.__name__: called.append((name, a)) or 7)
    assert reinforce.main(argv) == 7
    assert called == [(f"examples.{program}", rest)]


def test_dispatcher_refuses_an_unknown_algorithm(capsys):
    assert reinforce.main(["--algo", "dqn"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice: 'dqn'" in err, err


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solves_cartpole(seed):
    summary = reinforce_mc.train(rcfg(seed=seed, max_env_steps=200_000, eval_episodes=5, gif=False))
    assert summary["solved"], summary
    assert summary["eval_mean_return"] > 400


def test_acrobot_learns_with_the_same_command(tmp_path):
    # The docs' command with only --env changed (about 35k-130k steps, 5-15 s). A random policy scores about -500:
    # nearly every episode is cut at 500 steps, so --bootstrap-truncated auto turns bootstrapping on.
    # Not every seed learns within 150k steps: on TensorFlow seeds 0-4 solved 3 of 5 (0 and 2 did not) with the
    # gymnasium resets seeded by core.derive_seed, 4 of 5 (2 did not) with the earlier seed + episodes. Seed 1
    # solves with both (35k and 94k steps); seed 0, used here before the change of the reset seeds, no longer does.
    args = [
        "--algo",
        "reinforce",
        "--env",
        "Acrobot-v1",
        "--seed",
        "1",
        "--max-env-steps",
        "150000",
        "--eval-episodes",
        "5",
        "--no-gif",
    ]
    rc = reinforce.main([*args, "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 0 and summary["bootstrap_truncated"] is True
    assert summary["final_mean_return"] > -150, summary
    # Greedy can be weaker than sampling here (README, REINFORCE section): some greedy episodes get stuck until the
    # limit (-500 each); with the earlier reset seeds TensorFlow's seed-0 run solved in 44k steps, greedy mean -413.
    assert summary["eval_mean_return"] > -480, summary


def test_bootstrap_at_time_limit_only():
    core.seed_everything(0)
    agent = Reinforce(rcfg(bootstrap_truncated="on", gamma=0.9), CARTPOLE, 2)
    window = EpisodeWindow(2, 16, 4)
    rng = np.random.default_rng(0)
    final = rng.normal(size=(2, 4)).astype("float32")
    for t in range(3):  # column 0: cut by the time limit after 3 steps; column 1: terminated after 3 steps
        end = np.array([t == 2, t == 2], np.float32)
        window.add(
            rng.normal(size=(2, 4)).astype("float32"),
            np.zeros(2, np.int32),
            np.ones(2, np.float32),
            end,
            None,
            np.array([t == 2, False]),
            final,
        )
    (batch,) = window.batches()
    got = np.asarray(agent.returns(batch)["returns"])[:6]
    v = float(np.asarray(agent.value(final[:1]))[0, 0]) * agent.value_scale
    g_cut = [1 + 0.9 + 0.81 + 0.729 * v, 1 + 0.9 + 0.81 * v, 1 + 0.9 * v]
    g_term = [2.71, 1.9, 1.0]
    expected = np.array([g for pair in zip(g_cut, g_term) for g in pair])  # flat index = row * envs + env
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_reinforce_exports_its_networks_and_they_load_on_both_backends(tmp_path):
    """policy.keras and value.keras, written with the checkpoint, reproduce the trained networks' outputs."""
    import keras
    from test_export import assert_reproduces

    from examples.rl_env import make_vector_env

    out = tmp_path / "run"
    config = reinforce_mc.Config(max_env_steps=2000, eval_episodes=0, gif=False, out=str(out))
    reinforce_mc.train(config)
    env, info = make_vector_env("CartPole-v1", 2)
    env.close()
    agent = Reinforce(config, info, config.num_envs)
    core.load_checkpoint(out / "checkpoint.npz", agent.checkpoint_objects())
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    for name, network in (("policy", agent.policy), ("value", agent.value)):
        loaded = keras.saving.load_model(out / f"{name}.keras")
        np.testing.assert_allclose(loaded(obs), keras.ops.convert_to_numpy(network(obs)), rtol=1e-6, atol=1e-6)
        assert_reproduces(loaded, out / f"{name}.keras", obs, tmp_path)
