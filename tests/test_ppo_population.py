"""PPO's --population: every member equals its own run (seed, learning rate, entropy coefficient, clip range), the
settings crossed into members, one summary row and TensorBoard run per member, and its bad input."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
from conftest import one_line_exit_2

import core
from core.checkpoint import keyed_variables
from examples import ppo
from examples.rl_population import Member, build_population, members_of

MEMBERS = [
    Member(1, {"lr": 0.003, "entropy_coef": 0.0, "clip_coef": 0.2}),
    Member(2, {"lr": 0.001, "entropy_coef": 0.01, "clip_coef": 0.3}),
]
ITERATIONS = 3
# TensorFlow runs the members one after another in one graph: the same kernels, the same numbers. JAX vmaps them:
# its batched matrix products round differently (measured: weights within 3e-7 after 3 iterations).
TOLERANCE = {"tensorflow": 0.0, "jax": 1e-5}


def config(**kw) -> ppo.Config:
    return ppo.settled(ppo.Config(eval_episodes=0, gif=False, **kw), "device", continuous=False)


def own_run(cfg: ppo.Config, member: Member, fused: bool) -> tuple[list, dict]:
    """The member's run as train() builds it: its seed first, then its agent; its logs of ITERATIONS iterations."""
    core.seed_everything(member.seed)
    agent = ppo.device_agent(dataclasses.replace(cfg, seed=member.seed, **member.hyper), entropy_term=True)
    logs = agent.iterate(ITERATIONS) if fused else [agent.step.train_step() for _ in range(ITERATIONS)][-1]
    return keyed_variables(agent.member_objects()), logs


@pytest.mark.parametrize(
    "fused", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["one iteration per call", "fused"]
)  # fused: core.Population's own tests run fused calls in the quick suite
def test_every_ppo_member_equals_its_own_run(fused):
    cfg = config(env="Acrobot-v1", greedy_envs=2)
    _, population = build_population(cfg, MEMBERS, ppo.device_agent)
    if fused:
        logs = population.train_steps(num_steps=ITERATIONS)
    else:
        logs = [population.train_step() for _ in range(ITERATIONS)][-1]
    tol = TOLERANCE[keras.backend.backend()]
    for i, member in enumerate(MEMBERS):
        variables, own_logs = own_run(cfg, member, fused)
        values = population.member_values(i)
        assert set(values) == set(variables)
        for key, variable in variables.items():
            np.testing.assert_allclose(values[key], keras.ops.convert_to_numpy(variable), atol=tol, err_msg=key)
        for key, value in own_logs.items():
            np.testing.assert_allclose(logs[key][i], value, rtol=tol, atol=tol, err_msg=key)
    # the hyperparameters are the members' own, read inside the one compiled call
    coefs = population.values(_agent_variable(population, "entropy_coef"))
    np.testing.assert_allclose(coefs, [0.0, 0.01], rtol=1e-6)


def _agent_variable(population: core.Population, name: str):
    return next(v for v in population.variables if v.path.endswith(name))


def test_lists_are_crossed_into_settings_each_on_the_same_seeds():
    cfg = config(lr=(0.003, 0.001), clip_coef=(0.1, 0.2), population=8, seed=7)
    members = members_of(cfg, on_device=True)
    assert [m.seed for m in members] == [7, 8] * 4
    assert [(m.hyper["lr"], m.hyper["clip_coef"]) for m in members[::2]] == [
        (0.003, 0.1), (0.003, 0.2), (0.001, 0.1), (0.001, 0.2)
    ]  # fmt: skip
    assert len(members_of(config(lr=(0.003, 0.001)), on_device=True)) == 2  # --population 1: one per setting
    assert members_of(config(), on_device=False) == [Member(0, {"lr": 0.003, "entropy_coef": 0.0, "clip_coef": 0.2})]


def test_population_run_has_a_row_and_a_tensorboard_run_per_member(tmp_path, capsys):
    argv = ["--population", "4", "--lr", "0.003,0.001", "--max-env-steps", "1024", "--eval-episodes", "2"]
    assert ppo.main([*argv, "--no-gif", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = summary["population"]
    assert [(r["seed"], r["lr"]) for r in rows] == [(0, 0.003), (1, 0.003), (0, 0.001), (1, 0.001)]
    assert summary["members"] == 4 and summary["members_solved"] == 0 and summary["varied"] == ["lr"]
    assert summary["worst_env_steps_to_solve"] is None and summary["eval_mean_return"] is not None
    assert 0 <= summary["best_member"] < 4 and summary["env_steps"] == 1024
    runs = sorted(p.name for p in (tmp_path / "tb").iterdir() if p.is_dir())
    assert runs == ["seed0_lr0.001", "seed0_lr0.003", "seed1_lr0.001", "seed1_lr0.003"]
    assert all(list((tmp_path / "tb" / r).glob("events*")) for r in runs)
    out = capsys.readouterr().out
    assert "member" in out and "0 of 4 members solved" in out
    assert keras.saving.load_model(tmp_path / "policy.keras") is not None  # the best member's networks


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--population", "0"], "--population"),
        (["--population", "4", "--lr", "1e-3,2e-3,3e-3"], "not a multiple of the 3 settings of --lr (3 values)"),
        (["--population", "4", "--gamma", "0.9,0.99"], "lists of values are for --clip-coef, --entropy-coef and --lr"),
        (["--population", "4", "--hidden", "8,16"], "takes one value"),
        (["--population", "2", "--env-backend", "gymnasium"], "device environments in one compiled call"),
        (["--lr", "1e-3,2e-3", "--anneal-lr"], "--anneal-lr holds one learning rate"),
        (["--population", "65536", "--num-envs", "2048", "--rollout-steps", "2048"], "GiB of memory is available"),
    ],
)
def test_bad_population_input_is_one_line_exit_2(argv, needle, capsys):
    one_line_exit_2(ppo.main, [*argv, "--no-gif", "--max-env-steps", "256"], capsys, needle)


def test_a_population_run_resumes_exactly(tmp_path):
    """The stacked members, their counters and stop rules travel in the checkpoint: stopped at 2,048 env steps
    and resumed to 4,096, a population equals the one that ran 4,096 at once."""
    argv = ["--population", "2", "--lr", "0.003,0.001", "--eval-episodes", "0", "--no-gif"]
    assert ppo.main([*argv, "--max-env-steps", "4096", "--out", str(tmp_path / "full")]) == 0
    assert ppo.main([*argv, "--max-env-steps", "2048", "--out", str(tmp_path / "part")]) == 0
    assert ppo.main([*argv, "--max-env-steps", "4096", "--out", str(tmp_path / "part"), "--resume"]) == 0
    full, part = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("full", "part"))
    assert [r["episodes"] for r in full["population"]] == [r["episodes"] for r in part["population"]]
    with np.load(tmp_path / "full" / "checkpoint.npz") as a, np.load(tmp_path / "part" / "checkpoint.npz") as b:
        assert json.loads(str(a["__meta__"]))["state"] == json.loads(str(b["__meta__"]))["state"]
        for key in a.files:
            if key != "__meta__":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
