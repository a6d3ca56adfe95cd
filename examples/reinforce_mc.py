"""REINFORCE (Monte-Carlo policy gradient) with a learned value baseline: the returns of whole episodes.

Two update groups in one ``core.make_step``: the policy (its own optimizer, gradient clipping, entropy bonus)
and the value baseline (its own optimizer and clipping). The host collects whole episodes from gymnasium
(``examples.reinforce_env``); each train call gets every episode finished since the last one.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

import core
from examples.reinforce_env import EnvInfo
from examples.rl_common import log_probs, mlp, sample_actions

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


class Reinforce:
    """REINFORCE: policy and value networks, their update groups in one compiled step, and the compiled acting calls."""

    def __init__(self, config: Any, info: EnvInfo, num_envs: int):
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

    def checkpoint_objects(self) -> dict:
        objs = {"policy": self.policy, "policy_opt": self.policy_opt, "seed_gen": self.seed_gen}
        if self.config.baseline:
            objs.update(value=self.value, value_opt=self.value_opt)
        return objs


LOG_KEYS = {
    "policy/loss": "losses/policy",
    "value/loss": "losses/value",
    "policy/grad_norm": "grad_norm/policy",
    "policy/grad_norm_applied": "grad_norm/policy_applied",
    "value/grad_norm": "grad_norm/value",
    "value/grad_norm_applied": "grad_norm/value_applied",
}
