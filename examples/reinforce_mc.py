"""REINFORCE: Monte-Carlo policy gradient on the returns of whole episodes, with a learned value baseline.

    python -m examples.reinforce_mc --out runs/reinforce                     # CartPole-v1 on gymnasium
    python -m examples.reinforce_mc --env Acrobot-v1 --out runs/reinforce-acrobot

(``python -m examples.reinforce --algo reinforce`` runs this program too; without ``--algo`` that command runs
PPO, examples.ppo.)

The host steps gymnasium's vector environments and keeps each environment's transitions in a window until its
episode ends (``examples.rl_env``); every ``--rollout-steps`` vector steps, one train call learns from every
episode finished since the last one. Two update groups in one ``core.make_step``: the policy (its own Adam,
gradient clipping, entropy bonus) and the value baseline (its own Adam and clipping); the reward-to-go of every
transition is computed once per call, before both, in the step's ``prepare_fn``. Greedy evaluation and the GIF
run on gymnasium at the end (examples/rl_run.py).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below, which take seconds (examples/command.py)
    from examples.command import guard_start_up

    guard_start_up()

import sys
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
from keras import ops

import core
from examples import PROGRAMS
from examples.rl_common import log_probs, mlp, sample_actions
from examples.rl_env import Collector, EnvInfo, EpisodeWindow, make_vector_env
from examples.rl_run import (
    Scoreboard,
    check_gif_copy,
    check_sizes,
    defaults_of_old_checkpoints,
    finish,
    gymnasium_seed,
    open_run,
    report,
)

# Flags a resumed run may change: its budget and stop rule, the final evaluation and GIF, checkpoint cadence.
RESUME_MAY_CHANGE = ("max_env_steps", "target_return", "eval_episodes", "gif", "gif_copy", "checkpoint_every")


@dataclass
class Config(core.RunConfig):
    """Train a REINFORCE agent with a value baseline on a discrete-action gymnasium environment."""

    env: str = "CartPole-v1"
    """gymnasium environment id (discrete actions, flat Box observations)"""
    num_envs: int = core.arg(32, min=1, max=65_536)
    """environments stepped together"""
    rollout_steps: int = core.arg(16, min=1, max=100_000)
    """vector steps between updates"""
    gamma: float = core.arg(0.99, above=0, max=1)
    """discount of the returns"""
    entropy_coef: float = core.arg(0.0, min=0, max=100)
    """weight of the entropy bonus in the policy loss"""
    lr: float = core.arg(0.004, above=0, max=10)
    """policy Adam learning rate"""
    value_lr: float = core.arg(0.005, above=0, max=10)
    """value Adam learning rate (with --baseline)"""
    clip_norm: float = core.arg(1.0, min=0)
    """clip the policy gradient to this global norm (0: no clipping)"""
    value_clip_norm: float = core.arg(1.0, min=0)
    """clip the value gradient to this global norm (0: no clipping; with --baseline)"""
    hidden: int = core.arg(64, min=1, max=8192)
    """units of each of the two hidden layers of both networks"""
    update_size: int = core.arg(1024, min=1, max=1_000_000)
    """transitions per train call (finished ones padded to it, or split over several calls)"""
    vectorization: Literal["auto", "vector", "sync"] = "auto"
    """gymnasium's numpy-vectorised env (vector), SyncVectorEnv (sync), or vector if available"""
    normalize: Literal["advantages", "returns", "none"] = "advantages"
    """standardise the advantages, the returns, or nothing, over each batch"""
    baseline: bool = True
    """learn a value baseline and subtract it from the returns"""
    bootstrap_truncated: Literal["auto", "on", "off"] = "auto"
    """end a time-limit-cut episode's return with gamma * V(next obs) (needs --baseline, not --normalize returns);
    auto: on if most of the first --num-envs episodes were cut by the time limit (Acrobot-v1, MountainCar-v0),
    off if most ended themselves"""
    window: int | None = core.arg(None, min=2)
    """rows kept per environment (default: max episode steps, at most 1000, + rollout steps)"""
    max_env_steps: int = core.arg(500_000, min=1, max=10**12)
    """bound on the run, in environment transitions"""
    target_return: float | None = core.arg(None, infinite=True)
    """stop once the mean return of the last 100 episodes reaches this (default: the env's reward_threshold;
    inf: never, train for the whole --max-env-steps)"""
    eval_episodes: int = core.arg(100, min=0, max=10_000)
    """episodes on gymnasium's own environment at the end, for the greedy and for the sampling policy (0: skip)"""
    gif: bool = True
    """save one greedy episode as out/episode.gif (classic-control rendering needs pygame-ce)"""
    gif_copy: str | None = None
    """also copy the GIF there"""
    checkpoint_every: int = core.arg(50_000, min=1)
    """environment steps between checkpoints (with --out)"""
    mode: Literal["eager", "graph", "xla"] = "xla"
    """how calls are compiled: eager, graph (tf.function; jax.jit on JAX) or xla (jit_compile); xla by default
    for the acting call (the train step stays a graph on TensorFlow, whose XLA compile of it costs more than it
    saves)"""

    def validate(self) -> None:
        if self.gif_copy:
            check_gif_copy(self.gif_copy, self.gif, self.out)
        if self.window is not None and self.window <= self.rollout_steps:
            raise core.UsageError(f"--window {self.window} must exceed --rollout-steps {self.rollout_steps}")
        check_sizes(self.num_envs, self.rollout_steps, on_gymnasium=True)


def resolved_flags(config: dict) -> dict:
    """What a saved config's flags stand for on resume (the Nones of a checkpoint from before the split)."""
    return defaults_of_old_checkpoints(Config, config)


# ----- the math (keras.ops only) -----


def discounted_returns(rewards, ends, gamma: float):
    """Reward-to-go ``G_t = r_t + gamma * (1 - end_t) * G_{t+1}`` along axis 0 of (T, N) arrays.

    ``end_t = 1`` marks the last transition of an episode, so the return restarts there and nothing leaks
    across an episode boundary. A loop over rows costs T iterations; this is a doubling scan instead: after
    round k, ``a_t`` sums the discounted rewards of rows ``[t, t + 2^k)`` and ``b_t`` is their discount, so
    log2(T) rounds of elementwise operations finish it -- and no matrix product, whose float32 precision a
    GPU may lower, is involved.
    """
    a = rewards
    b = gamma * (1.0 - ends)
    rows = rewards.shape[0]
    rounds = max(1, int(rows - 1).bit_length()) if rows is not None else 16  # 16 rounds: up to 65,536 rows

    def later(x, d):  # x shifted up by d rows, zeros below (rows past the end contribute nothing)
        return ops.concatenate([x[d:], ops.zeros_like(x)], axis=0)[: ops.shape(x)[0]]

    d = 1
    for _ in range(rounds):
        a, b = a + b * later(a, d), b * later(b, d)
        d *= 2
    return a


def masked_mean(x, mask):
    return ops.sum(x * mask) / ops.maximum(ops.sum(mask), 1.0)


def standardize(x, mask):
    mean = masked_mean(x, mask)
    std = ops.sqrt(masked_mean(ops.square(x - mean), mask) + 1e-8)
    return (x - mean) / std


# ----- the agent -----
class Reinforce:
    """REINFORCE: policy and value networks, their update groups in one compiled step, and the compiled acting calls."""

    def __init__(self, config: Config, info: EnvInfo, num_envs: int):
        self.config, self.info = config, info
        self.policy = mlp(info.obs_dim, info.num_actions, config.hidden, "policy", 0.01)
        self.value = mlp(info.obs_dim, 1, config.hidden, "value", 1.0)
        # The value net predicts returns in units of 1 / (1 - gamma): per-step rewards of size 1 give outputs of size 1.
        self.value_scale = min(1.0 / max(1.0 - config.gamma, 1e-6), float(info.max_episode_steps or 1000))
        self.policy_opt = keras.optimizers.Adam(config.lr)
        self.value_opt = keras.optimizers.Adam(config.value_lr)
        self.seed_gen = keras.random.SeedGenerator(config.seed)
        # The step holds the bootstrap path unless it can never be used; the batches switch it off (auto).
        self.can_bootstrap = config.bootstrap_truncated != "off" and config.baseline and config.normalize != "returns"
        mode = config.mode
        # TensorFlow's XLA compile of this train step takes seconds more than the whole run saves: a graph there.
        train_mode = "graph" if mode == "xla" and keras.backend.backend() == "tensorflow" else mode
        d = info.obs_dim
        groups = [
            core.UpdateGroup(
                "policy",
                self.policy_loss,
                self.policy.trainable_variables,
                self.policy_opt,
                core.clip_by_global_norm(config.clip_norm) if config.clip_norm > 0 else None,
            )
        ]
        if config.baseline:
            groups.append(
                core.UpdateGroup(
                    "value",
                    self.value_loss,
                    self.value.trainable_variables,
                    self.value_opt,
                    core.clip_by_global_norm(config.value_clip_norm) if config.value_clip_norm > 0 else None,
                )
            )
        # Returns need the time layout (window rows x envs), the networks only the finished transitions (flat,
        # padded or split to --update-size). The batch shapes are fixed by the config (EpisodeWindow.batches):
        # None dims keep TensorFlow from retracing, fixed shapes keep jax.jit from recompiling.
        self.step = core.make_step(
            groups,
            inputs={
                "rewards": core.InputSpec((None, num_envs)),
                "ends": core.InputSpec((None, num_envs)),
                "obs": core.InputSpec((None, d)),
                "actions": core.InputSpec((None,), "int32"),
                "index": core.InputSpec((None,), "int32"),
                "weight": core.InputSpec((None,)),
                "trunc_index": core.InputSpec((None,), "int32"),
                "trunc_obs": core.InputSpec((None, d)),
                "trunc_weight": core.InputSpec((None,)),
            },
            mode=train_mode,
            prepare_fn=self.returns,
        )
        self.sample = core.make_forward(self._sample, {"obs": core.InputSpec((None, d))}, mode)
        self.greedy = core.make_forward(self._greedy, {"obs": core.InputSpec((None, d))}, mode)

    # acting
    def _sample(self, batch):
        return sample_actions(self.policy(batch["obs"]), self.seed_gen)

    def _greedy(self, batch):
        return ops.cast(ops.argmax(self.policy(batch["obs"]), axis=-1), "int32")

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.sample({"obs": obs})

    # losses
    def returns(self, batch) -> dict:
        """Reward-to-go of every finished transition (flat layout): the step's ``prepare_fn``, computed once
        per update for both losses, outside their gradients."""
        rewards = batch["rewards"]
        cfg = self.config
        if self.can_bootstrap:
            # A time limit is not a terminal state: the return goes on as the value of the next observation.
            tail = ops.stop_gradient(self.value(batch["trunc_obs"])[:, 0]) * self.value_scale * batch["trunc_weight"]
            extra = ops.scatter(batch["trunc_index"][:, None], cfg.gamma * tail, (ops.size(rewards),))
            rewards = rewards + ops.reshape(extra, ops.shape(rewards))
        returns = discounted_returns(rewards, batch["ends"], cfg.gamma)
        returns = ops.take(ops.reshape(returns, (-1,)), batch["index"], axis=0)
        if self.config.normalize == "returns":
            returns = standardize(returns, batch["weight"])
        return {"returns": returns}

    def policy_loss(self, batch):
        weight, cfg, returns = batch["weight"], self.config, batch["returns"]
        logits = self.policy(batch["obs"])
        logp_all = ops.log_softmax(logits, axis=-1)
        logp = log_probs(logits, batch["actions"])
        advantages = returns
        if cfg.baseline:
            scale = 1.0 if cfg.normalize == "returns" else self.value_scale
            advantages = returns - ops.stop_gradient(self.value(batch["obs"])[:, 0] * scale)
        if cfg.normalize == "advantages":
            advantages = standardize(advantages, weight)
        pg_loss = -masked_mean(logp * ops.stop_gradient(advantages), weight)
        entropy = masked_mean(-ops.sum(ops.exp(logp_all) * logp_all, axis=-1), weight)
        loss = pg_loss - cfg.entropy_coef * entropy if cfg.entropy_coef > 0 else pg_loss
        return loss, {"losses/entropy": entropy, "charts/batch_transitions": ops.sum(weight)}

    def value_loss(self, batch):
        returns = batch["returns"]
        if self.config.normalize != "returns":
            returns = returns / self.value_scale
        return 0.5 * masked_mean(ops.square(self.value(batch["obs"])[:, 0] - returns), batch["weight"])

    def exported(self) -> dict:
        """The networks as .keras files at every checkpoint: the policy's logits, and the value network's output
        (returns in units of value_scale, as it is trained)."""
        return {"policy": self.policy, **({"value": self.value} if self.config.baseline else {})}

    def checkpoint_objects(self) -> dict:
        objs = {"policy": self.policy, "policy_opt": self.policy_opt, "seed_gen": self.seed_gen}
        if self.config.baseline:
            objs.update(value=self.value, value_opt=self.value_opt)
        return objs


# ----- training -----
def train(config: Config) -> dict:
    """Collect rollouts into per-environment episode windows; train on every finished episode; evaluate."""
    core.seed_everything(config.seed)
    print(f"stepping on {core.describe_device()}")
    env, info = make_vector_env(config.env, config.num_envs, config.vectorization)
    if info.continuous:
        env.close()
        raise core.UsageError(
            f"--env {config.env!r} has Box actions; REINFORCE here samples Discrete actions only (PPO, "
            "--algo ppo, trains Box actions)"
        )
    agent = Reinforce(config, info, config.num_envs)
    target = config.target_return if config.target_return is not None else info.reward_threshold
    rows = config.window or (min(info.max_episode_steps or 1000, 1000) + config.rollout_steps)
    print(f"{info.env_id} on gymnasium ({info.vectorization}): {config.num_envs} envs, target mean return {target}")
    run = open_run(config, agent, info.env_id, RESUME_MAY_CHANGE, resolved_flags)
    try:
        with run:
            board = Scoreboard(run, target)
            window = EpisodeWindow(config.num_envs, rows, info.obs_dim)
            collector = Collector(env, info, window, agent.act, seed=gymnasium_seed(run))
            while run.running and not board.solved:
                window.make_room(config.rollout_steps)
                n, returns, _ = collector.collect(config.rollout_steps)
                board.add(returns, run.step + n)
                logs = {}
                if window.trainable():
                    bootstrap = decide_bootstrap(run, window, agent, config)
                    for batch in window.batches(config.update_size, bootstrap):
                        logs = agent.step.train_step(batch)
                        run.state["updates"] += 1
                    window.drop_finished()
                run.advance(n, logs, show={"mean_return_100": board.mean or 0.0, **logs})
                if logs:
                    report(run, board, logs)
    finally:
        env.close()
    return finish(run, board, agent, target, algo="reinforce", env_backend="gymnasium")


def decide_bootstrap(run: core.Run, window: EpisodeWindow, agent: Reinforce, cfg: Config) -> bool:
    """--bootstrap-truncated: on / off as given; auto decides once --num-envs episodes have finished (off until
    then): on if most of them were cut by the time limit."""
    state = run.state
    if not agent.can_bootstrap:
        return False
    if cfg.bootstrap_truncated != "auto":
        return cfg.bootstrap_truncated == "on"
    if state.get("bootstrap_truncated") is None:
        finished, cut = window.finished_episodes()
        state["first_episodes"] = state.get("first_episodes", 0) + finished
        state["first_cut"] = state.get("first_cut", 0) + cut
        if state["first_episodes"] < cfg.num_envs:
            return False
        state["bootstrap_truncated"] = 2 * state["first_cut"] > state["first_episodes"]
        run.write(
            f"--bootstrap-truncated auto: {state['first_cut']} of the first {state['first_episodes']} "
            f"episodes were cut by the time limit -> {'on' if state['bootstrap_truncated'] else 'off'}"
        )
    return bool(state["bootstrap_truncated"])


def main(argv: list[str] | None = None) -> int:
    return core.run_main(train, Config, argv, PROGRAMS)


if __name__ == "__main__":
    sys.exit(main())
