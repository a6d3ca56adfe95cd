"""PPO's settings that depend on the environment: where it is stepped (``--env-backend``), the defaults of the flags
left unset (``None``) by kind of action space and then per environment, as rl-baselines3-zoo keeps per-environment
hyperparameters, and what a saved config's flags stand for on resume. docs/reinforce.md lists the table.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import core
from examples.rl_run import check_sizes, defaults_of_old_checkpoints

# By kind of action space, for the flags a user left unset. Discrete: the settings tuned on CartPole-v1 and
# Acrobot-v1 (docs/benchmarks.md). Box: CleanRL's ppo_continuous_action.py (MuJoCo: one environment, 2048 steps,
# 32 minibatches, annealed 3e-4, normalisation on).
KIND_DEFAULTS: dict[bool, dict[str, Any]] = {
    False: {"num_envs": 8, "rollout_steps": 32, "gamma": 0.98, "gae_lambda": 0.8, "minibatches": 1, "epochs": 10,
            "lr": 0.003, "anneal_lr": False, "entropy_coef": 0.0, "clip_coef": 0.2, "normalize": False},
    True: {"num_envs": 1, "rollout_steps": 2048, "gamma": 0.99, "gae_lambda": 0.95, "minibatches": 32, "epochs": 10,
           "lr": 3e-4, "anneal_lr": True, "entropy_coef": 0.0, "clip_coef": 0.2, "normalize": True},
}  # fmt: skip
# The device's Box environments, over the Box row: many environments for one compiled call, tuned on Pendulum-v1
# seeds 100-106 (docs/reinforce.md); Pendulum-v1's target, which gymnasium does not register, as the issue set it.
DEVICE_BOX = {"num_envs": 16, "rollout_steps": 64, "minibatches": 16, "lr": 1e-3, "anneal_lr": False}
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "Pendulum-v1": {**DEVICE_BOX, "gamma": 0.97, "target_return": -200.0},
    "MountainCarContinuous-v0": DEVICE_BOX,
    # rl-baselines3-zoo's PPO settings for LunarLander (16 x 1024, minibatches of 64, 4 epochs, entropy 0.01): the
    # Discrete row, tuned on CartPole, ended seed 4000 at a 100-episode mean of 6.3 after 1M env steps.
    "LunarLander-v3": {"num_envs": 16, "rollout_steps": 1024, "minibatches": 256, "epochs": 4, "gamma": 0.999,
                       "gae_lambda": 0.98, "lr": 3e-4, "entropy_coef": 0.01},
}  # fmt: skip


def defaults(env: str, continuous: bool) -> dict[str, Any]:
    """The table's values for ``env``: its kind's row, then its own."""
    return {**KIND_DEFAULTS[continuous], **ENV_DEFAULTS.get(env, {})}


def settled(cfg: Any, backend: str, continuous: bool) -> Any:
    """``cfg`` with the defaults of its environment filled in where unset, and the sizes they make checked (one
    line each, exit code 2, before anything is built)."""
    unset = {k: v for k, v in defaults(cfg.env, continuous).items() if getattr(cfg, k) is None}
    cfg = dataclasses.replace(cfg, **unset)
    if cfg.num_envs * cfg.rollout_steps < cfg.minibatches:
        raise core.UsageError(
            f"--minibatches {cfg.minibatches} exceeds the {cfg.num_envs * cfg.rollout_steps} "
            "transitions of a rollout (--num-envs x --rollout-steps)"
        )
    monitors = cfg.greedy_envs if backend == "device" else 0
    check_sizes(cfg.num_envs, cfg.rollout_steps, backend == "gymnasium", monitors)
    return cfg


def env_backend(env: str, choice: str) -> str:
    """Where ``--env`` is stepped: ``device`` or ``gymnasium`` (``auto``: device where there is a device version)."""
    ids = core.DEVICE_ENV_IDS
    if choice == "device" and env not in ids:
        raise core.UsageError(
            f"--env-backend device: no device version of {env!r}; there is one of {', '.join(sorted(ids))}"
        )
    if choice == "auto":
        return "device" if env in ids else "gymnasium"
    return choice


def resolved(config_cls: type, config: dict) -> dict:
    """What a saved config's flags stand for on resume: ``--env-backend auto`` resolved, and the Nones of a
    checkpoint from before the split or of the table. A run saves its settled config, so Nones come only from
    checkpoints of older versions, whose environments all had Discrete actions (a device Box env says so itself)."""
    env = config["env"]
    backend = env_backend(env, config["env_backend"])
    continuous = env in core.DEVICE_ENV_IDS and core.make_device_env(env).continuous
    unset = {k: v for k, v in defaults(env, continuous).items() if config.get(k) is None}
    return {**defaults_of_old_checkpoints(config_cls, config), **unset, "env_backend": backend}


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("examples.rl_defaults"))
