"""PPO: clipped policy updates on GAE advantages, epochs of shuffled minibatches, all inside one compiled call.

One train step of ``core.make_step`` is one PPO iteration:

1. ``prepare`` (once, outside every gradient): the rollout -- T steps of N environments, run inside the
   call on a device environment (``core.envs``), or handed in as inputs from gymnasium -- then the old
   log-probabilities, the values, GAE(lambda) advantages and returns, and a fresh shuffled minibatch order
   for every epoch;
2. the ``policy`` group: epochs x minibatches clipped-surrogate updates, with its own optimizer;
3. the ``value`` group: as many value-regression updates, with its own optimizer.

``train_steps(num_steps=K)`` fuses K iterations into one call; only losses and episode statistics come back.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

import core
from examples.rl_common import log_probs, mlp, sample_actions

# What the device path sends back to the host besides the losses: episode statistics and the non-finite guard.
EPISODE_KEYS = ("ended", "episode_return", "obs_max", "greedy_ended", "greedy_return")


def gae(rewards, values, next_values, terminated, truncated, gamma: float, lam: float):
    """GAE(lambda) advantages and returns along axis 0 of (T, N) tensors.

    ``next_values`` is V of the observation after each step, before any reset: where an episode was cut by a
    time limit (truncated, not terminated) its last step bootstraps from it; a terminated step bootstraps
    from 0. Nothing flows backwards across an episode's end (terminated or truncated), and the last row
    bootstraps from ``next_values`` (the rollout stops mid-episode).
    """
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    carry_on = 1.0 - ops.maximum(terminated, truncated)

    def step(following, x):  # x: (N, 2) = delta, carry_on of one row
        advantage = x[..., 0] + gamma * lam * x[..., 1] * following
        return advantage, advantage

    # One stacked sequence, not a tuple: Keras' TensorFlow scan checks one sequence's length only.
    _, advantages = ops.scan(step, ops.zeros_like(rewards[0]), ops.stack([deltas, carry_on], axis=-1), reverse=True)
    return advantages, advantages + values


def clipped_surrogate(logp, logp_old, advantages, clip: float):
    """PPO's policy loss ``-E[min(r A, clip(r, 1-c, 1+c) A)]``, the approximate KL and the clip fraction."""
    log_ratio = logp - logp_old
    ratio = ops.exp(log_ratio)
    loss = -ops.mean(ops.minimum(ratio * advantages, ops.clip(ratio, 1.0 - clip, 1.0 + clip) * advantages))
    approx_kl = ops.mean((ratio - 1.0) - log_ratio)  # the low-variance estimator CleanRL and SB3 log
    clip_fraction = ops.mean(ops.cast(ops.greater(ops.abs(ratio - 1.0), clip), "float32"))
    return loss, approx_kl, clip_fraction


def normalize(x):
    return (x - ops.mean(x)) / (ops.std(x) + 1e-8)


class PPO:
    """Policy and value networks, their optimizers and the compiled iteration, on a device env or on inputs."""

    def __init__(self, cfg: Any, obs_dim: int, num_actions: int, env: Any = None):
        self.cfg, self.env = cfg, env
        self.T, self.N, self.obs_dim = cfg.rollout_steps, cfg.num_envs, obs_dim
        # Greedy monitors: extra device environments acting with the argmax action, never learned from.
        self.G = cfg.greedy_envs if env is not None else 0
        self.updates = cfg.epochs * cfg.minibatches
        self.policy = mlp(obs_dim, num_actions, cfg.hidden, "policy", out_scale=0.01)
        self.value = mlp(obs_dim, 1, cfg.hidden, "value", out_scale=1.0)
        self.seed_gen = keras.random.SeedGenerator(cfg.seed)
        self.policy_opt = keras.optimizers.Adam(self._schedule(cfg.lr), epsilon=1e-5)
        self.value_opt = keras.optimizers.Adam(self._schedule(cfg.value_lr), epsilon=1e-5)
        clip = core.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm else None
        if cfg.shared_optimizer:
            variables = self.policy.trainable_variables + self.value.trainable_variables
            groups = [core.UpdateGroup("ppo", self.joint_loss, variables, self.policy_opt, clip,
                                       repeats=self.updates, repeat_key="update")]  # fmt: skip
        else:
            value_clip = core.clip_by_global_norm(cfg.value_clip_norm) if cfg.value_clip_norm else None
            groups = [
                core.UpdateGroup("policy", self.policy_loss, self.policy.trainable_variables, self.policy_opt, clip,
                                 repeats=self.updates, repeat_key="update"),
                core.UpdateGroup("value", self.value_loss, self.value.trainable_variables, self.value_opt, value_clip,
                                 repeats=self.updates, repeat_key="update"),
            ]  # fmt: skip
        inputs = None
        if env is not None:  # the environments' state lives in variables, so it is checkpointed and resumed
            # One batch of N + G environments, the monitors last: Keras' random draws and the policy's rows are
            # prefix-consistent (the first N rows of an (N + G)-row draw equal an N-row draw, on TensorFlow and
            # JAX; tested), so the N training environments see what they would without monitors.
            start = env.reset(self.N + self.G, self.seed_gen)
            self.env_state = {k: keras.Variable(v, trainable=False, name=f"env_{k}") for k, v in start.items()}
        else:
            T, N, d = self.T, self.N, obs_dim
            spec = core.InputSpec
            inputs = {"obs": spec((T, N, d)), "actions": spec((T, N), "int32"), "rewards": spec((T, N)),
                      "terminated": spec((T, N)), "truncated": spec((T, N)), "next_obs": spec((T, N, d))}  # fmt: skip
        self.step = core.make_step(groups, inputs=inputs, mode=cfg.mode, prepare_fn=self.prepare)
        obs_spec = {"obs": core.InputSpec((None, obs_dim))}
        self.sample = core.make_forward(self._sample, obs_spec, cfg.mode)
        self.greedy = core.make_forward(self._greedy, obs_spec, cfg.mode)

    def scale_learning_rates(self, fraction: float) -> None:
        """Both optimizers at ``fraction`` of their configured rate (a variable: no retrace); with --anneal-lr the
        schedule owns the rate and this does nothing."""
        if not self.cfg.anneal_lr:
            self.policy_opt.learning_rate = self.cfg.lr * fraction
            self.value_opt.learning_rate = self.cfg.value_lr * fraction

    def _schedule(self, lr: float):
        """Constant, or (``--anneal-lr``) linear to 0 over ``--max-env-steps``, counted in optimizer updates."""
        if not self.cfg.anneal_lr:
            return lr
        iterations = max(1, self.cfg.max_env_steps // (self.T * self.N))
        return keras.optimizers.schedules.PolynomialDecay(lr, iterations * self.updates, 0.0, power=1.0)

    def _sample(self, batch: dict):
        return sample_actions(self.policy(batch["obs"]), self.seed_gen)

    def _greedy(self, batch: dict):
        return ops.cast(ops.argmax(self.policy(batch["obs"]), axis=-1), "int32")

    # ----- 1. rollout, advantages, minibatch order -----
    def rollout(self) -> dict:
        """T steps of the N device environments, the policy sampling each action, inside the compiled call.

        With G greedy monitors the G extra environments step in the same batch, acting with the argmax of the
        same logits; only their episode statistics come out (``greedy_return``, ``greedy_ended``), apart from
        the learning data.
        """
        N, G = self.N, self.G
        # Which rows are monitors: a constant, so each step adds three small ops (argmax, cast, where).
        monitor_rows = ops.arange(N + G) >= N

        def one_step(state, _):
            obs = self.env.observe(state["physics"])
            logits = self.policy(obs)
            # Noise for all N + G rows: its first N rows are the N-row draw, so the training envs' actions are
            # the ones they would sample without monitors.
            actions = sample_actions(logits, self.seed_gen)
            if G:
                greedy = ops.cast(ops.argmax(logits, axis=-1), "int32")
                actions = ops.where(monitor_rows, greedy, actions)
            state, tr = self.env.step(state, actions, self.seed_gen)
            # The sampling logits go out too: prepare takes the old log-probabilities from them, batched, instead
            # of a second policy pass over the whole rollout.
            out = {
                "obs": obs,
                "actions": actions,
                "logits": logits,
                "rewards": tr["reward"],
                "next_obs": tr["next_obs"],
            }
            keys = ("terminated", "truncated", "episode_return", "episode_length")
            # Sorted keys: Keras' TensorFlow scan pairs a dict's outputs in two different orders otherwise.
            return state, dict(sorted({**out, **{k: tr[k] for k in keys}}.items()))

        state, trajectory = core.scan(one_step, {k: v.value for k, v in self.env_state.items()}, length=self.T)
        for key, variable in self.env_state.items():
            variable.assign(state[key])
        if not G:
            return trajectory
        # Split once per rollout, not once per step: the training columns, and the monitors' episode statistics.
        ended = ops.maximum(trajectory["terminated"][:, N:], trajectory["truncated"][:, N:])
        monitors = {"greedy_return": trajectory["episode_return"][:, N:], "greedy_ended": ended}
        return {k: v[:, :N] for k, v in trajectory.items()} | monitors

    def prepare(self, batch: dict) -> dict:
        cfg, T, N = self.cfg, self.T, self.N
        traj = self.rollout() if self.env is not None else batch

        def flat(x):
            return ops.reshape(x, (T * N, *x.shape[2:]))

        obs, actions = flat(traj["obs"]), flat(traj["actions"])
        # V of obs and of next_obs in one pass: one set of matrix products, not two.
        both = ops.reshape(self.value(ops.concatenate([obs, flat(traj["next_obs"])], axis=0))[:, 0], (2, T, N))
        values, next_values = both[0], both[1]
        logits = flat(traj["logits"]) if "logits" in traj else self.policy(obs)  # gymnasium: no logits come in
        advantages, returns = gae(
            traj["rewards"], values, next_values, traj["terminated"], traj["truncated"], cfg.gamma, cfg.gae_lambda
        )
        prepared = {}
        if cfg.minibatches > 1:  # a fresh order of all T*N transitions per epoch, cut into equal minibatches
            size = (T * N) // cfg.minibatches  # (a remainder sits the epoch out)
            orders = [keras.random.shuffle(ops.arange(T * N), seed=self.seed_gen) for _ in range(cfg.epochs)]
            prepared["order"] = ops.reshape(
                ops.stack([o[: size * cfg.minibatches] for o in orders]), (self.updates, size)
            )
        prepared.update(
            {
                "b_obs": obs,
                "b_actions": actions,
                "b_logp": log_probs(logits, actions),
                "b_values": flat(values),
                # One minibatch: standardising here is what every update would do, done once.
                "b_advantages": flat(advantages) if cfg.minibatches > 1 else normalize(flat(advantages)),
                "b_returns": flat(returns),
            }
        )
        if self.env is not None:  # what the host needs for the bar and the stop rule, and the non-finite guard
            ended = ops.maximum(traj["terminated"], traj["truncated"])
            prepared.update(ended=ended, episode_return=traj["episode_return"], obs_max=ops.max(ops.abs(obs)))
            if self.G:
                prepared.update(greedy_ended=traj["greedy_ended"], greedy_return=traj["greedy_return"])
        return prepared

    def _minibatch(self, batch: dict, *keys: str) -> list:
        if "order" not in batch:  # one minibatch: every update sees the whole rollout, and order does not matter
            return [batch[k] for k in keys]
        idx = batch["order"][batch["update"]]
        return [ops.take(batch[k], idx, axis=0) for k in keys]

    # ----- 2. and 3. the two losses -----
    def policy_loss(self, batch: dict):
        obs, actions, logp_old, adv = self._minibatch(batch, "b_obs", "b_actions", "b_logp", "b_advantages")
        if self.cfg.minibatches > 1:  # per minibatch; one full-batch minibatch was standardised in prepare
            adv = normalize(adv)
        logits = self.policy(obs)
        pg_loss, approx_kl, clip_fraction = clipped_surrogate(
            log_probs(logits, actions), logp_old, adv, self.cfg.clip_coef
        )
        logp_all = ops.log_softmax(logits, axis=-1)
        entropy = ops.mean(-ops.sum(ops.exp(logp_all) * logp_all, axis=-1))
        aux = {"losses/entropy": entropy, "ppo/approx_kl": approx_kl, "ppo/clip_fraction": clip_fraction}
        if self.env is not None:
            aux.update({k: batch[k] for k in EPISODE_KEYS if k in batch})
        if not self.cfg.entropy_coef:  # logged either way; with no bonus its gradient is not built
            return pg_loss, aux
        return pg_loss - self.cfg.entropy_coef * entropy, aux

    def value_loss(self, batch: dict):
        obs, returns, old = self._minibatch(batch, "b_obs", "b_returns", "b_values")
        v = self.value(obs)[:, 0]
        loss = ops.square(v - returns)
        if self.cfg.value_clip:  # PPO's optional value clipping: no step moves V further than this from its old value
            clipped = old + ops.clip(v - old, -self.cfg.value_clip, self.cfg.value_clip)
            loss = ops.maximum(loss, ops.square(clipped - returns))
        return 0.5 * ops.mean(loss)

    def joint_loss(self, batch: dict):
        """Both losses on one minibatch, for one shared optimizer (value loss weighted by --value-coef)."""
        policy, aux = self.policy_loss(batch)
        value = self.value_loss(batch)
        return policy + self.cfg.value_coef * value, {**aux, "value/loss": value}

    def iterate(self, k: int) -> dict:
        """K device iterations; each log an array with one value per iteration.

        K = 1 calls the single-step program: TensorFlow then traces the iteration once, where the fused loop
        first traces its body a second time to learn the outputs' structure (measured: 0.7 s less tracing).
        """
        if k == 1:
            return {key: np.asarray(v)[None] for key, v in self.step.train_step().items()}
        return self.step.train_steps(num_steps=k)

    def checkpoint_objects(self) -> dict:
        objs = {"policy": self.policy, "value": self.value, "policy_opt": self.policy_opt}
        objs.update(value_opt=self.value_opt, seed_gen=self.seed_gen)
        if self.env is not None:
            objs["env_state"] = list(self.env_state.values())
        return objs

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.sample({"obs": np.asarray(obs, np.float32)})
