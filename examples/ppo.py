"""PPO: clipped policy updates on GAE advantages, epochs of minibatches, on Discrete or Box actions.

    python -m examples.ppo --out runs/cartpole                       # CartPole-v1 stepped on the device
    python -m examples.ppo --env Pendulum-v1 --out runs/pendulum     # Box actions: a Gaussian policy
    python -m examples.ppo --env-backend gymnasium --env LunarLander-v3 --out runs/lander   # needs box2d
    python -m examples.ppo --population 16 --out runs/sixteen        # 16 seeds in one compiled call

(``python -m examples.reinforce`` runs this program too; ``--algo reinforce`` there runs examples.reinforce_mc.)

One algorithm, two sources of rollouts: a device environment (``core.envs``) stepped inside the compiled call,
or any gymnasium environment stepped on the host (``--env-backend``); a population of members on the device
(examples/rl_population.py). One train step of ``core.make_step`` is one PPO iteration:

1. ``prepare`` (once, outside every gradient): the rollout -- T steps of N environments, run inside the call on
   the device, or handed in as inputs from gymnasium -- then the old log-probabilities, the values, GAE(lambda)
   advantages and returns, and a fresh shuffled minibatch order for every epoch;
2. the ``policy`` group: epochs x minibatches clipped-surrogate updates, with its own Adam;
3. the ``value`` group: as many value-regression updates, with its own Adam.

Greedy evaluation and the GIF run on gymnasium's own environment at the end (examples/rl_run.py).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below, which take seconds (examples/command.py)
    from examples.command import guard_start_up

    guard_start_up()

import dataclasses
import sys
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
from keras import ops

import core
from examples import PROGRAMS
from examples.rl_common import mlp
from examples.rl_defaults import env_backend, resolved, settled
from examples.rl_env import RolloutCollector, box_actions, make_same_step_env
from examples.rl_policy import Normalizer, exports, make_head
from examples.rl_population import members_of, train_population
from examples.rl_run import (
    Scoreboard,
    add_episodes,
    check_finite,
    check_gif_copy,
    finish,
    gymnasium_seed,
    open_run,
    report,
)

GREEDY_WINDOW = 16  # completed greedy-monitor episodes whose mean the stop rule checks (docs/reinforce.md)
REPORT_ITERATIONS = 4  # device path: iterations per TensorBoard write
# What the device path sends back to the host besides the losses: episode statistics and the non-finite guard.
EPISODE_KEYS = ("ended", "episode_return", "obs_max", "reward_max", "greedy_ended", "greedy_return")
# Flags a resumed run may change: budget, stop rule, evaluation, GIF, checkpoints, iterations per call.
RESUME_MAY_CHANGE = (
    "max_env_steps", "target_return", "train_on", "eval_episodes", "gif", "gif_copy", "checkpoint_every",
    "iterations_per_call",
)  # fmt: skip


@dataclass
class Config(core.RunConfig):
    """Train a PPO agent on a Discrete- or Box-action environment, on the device or on gymnasium. Flags left unset
    (None) take the defaults of the environment (examples/rl_defaults.py)."""

    env: str = "CartPole-v1"
    """environment id (flat Box observations; Discrete or Box actions); any gymnasium id on the gymnasium backend"""
    env_backend: Literal["auto", "device", "gymnasium"] = "auto"
    """device: environments written in keras.ops, stepped inside the compiled call (CartPole-v1, Acrobot-v1,
    MountainCar-v0, Pendulum-v1, MountainCarContinuous-v0); gymnasium: NumPy environments on the host; auto: device
    where there is one"""
    num_envs: int | None = core.arg(None, min=1, max=65_536)
    """environments stepped together (Discrete: 8; Box: 1, Pendulum-v1: 16)"""
    rollout_steps: int | None = core.arg(None, min=1, max=100_000)
    """steps of every environment per iteration (Discrete: 32; Box: 2048, Pendulum-v1: 64)"""
    iterations_per_call: int = core.arg(1, min=1, max=10_000)
    """device path: rollout + update iterations fused into one compiled call (1: the single-iteration program,
    which TensorFlow traces in half the time of the fused loop)"""
    gamma: float | None = core.arg(None, above=0, max=1)
    """discount of the returns (Discrete: 0.98; Box: 0.99, Pendulum-v1: 0.97)"""
    gae_lambda: float | None = core.arg(None, min=0, max=1)
    """GAE lambda (1: Monte-Carlo returns bootstrapped at the rollout's end; 0: one-step TD; Discrete: 0.8; Box:
    0.95)"""
    epochs: int | None = core.arg(None, min=1, max=1000)
    """passes over each rollout (10; LunarLander-v3: 4)"""
    minibatches: int | None = core.arg(None, min=1, max=100_000)
    """minibatches per epoch, each num_envs * rollout_steps / minibatches transitions (Discrete: 1; Box: 32,
    Pendulum-v1: 16)"""
    clip_coef: tuple[float, ...] | None = core.arg(None, above=0, max=10)
    """clip the probability ratio to [1 - c, 1 + c] (0.2; a list: one per member setting, see --population)"""
    entropy_coef: tuple[float, ...] | None = core.arg(None, min=0, max=100)
    """weight of the entropy bonus in the policy loss (0; LunarLander-v3: 0.01; a list as for --clip-coef)"""
    lr: tuple[float, ...] | None = core.arg(None, above=0, max=10)
    """Adam learning rate of both networks, each with its own Adam (Discrete: 0.003; Box: 0.0003, Pendulum-v1:
    0.001; a list as for --clip-coef)"""
    population: int = core.arg(1, min=1, max=65_536)
    """device path: members trained side by side in one compiled call (core.Population), seeds --seed onwards;
    the lists of --lr, --entropy-coef and --clip-coef are crossed into settings, each run on population / settings
    seeds (1: one member per setting; docs/populations.md)"""
    anneal_lr: bool | None = None
    """decay the learning rates linearly to 0 over --max-env-steps (Discrete: off; Box: on, Pendulum-v1: off)"""
    clip_norm: float = core.arg(0.5, min=0)
    """clip each network's gradient to this global norm (0: no clipping)"""
    hidden: int = core.arg(64, min=1, max=8192)
    """units of each of the two hidden layers of both networks"""
    max_env_steps: int = core.arg(500_000, min=1, max=10**12)
    """bound on the run, in environment transitions (device path: rounded up to whole calls)"""
    target_return: float | None = core.arg(None, infinite=True)
    """stop once the mean return of the last 100 episodes reaches this (default: the env's reward_threshold, for
    Pendulum-v1, which has none, -200; inf: never, train for the whole --max-env-steps)"""
    greedy_envs: int = core.arg(8, min=0, max=65_536)
    """device path: extra environments stepped in the same rollout with the argmax action (never learned from);
    the run stops only once the mean of their last 16 episodes also reaches the target (0: off)"""
    train_on: int = core.arg(30_000, min=0)
    """device path: env steps to keep training after the stop rule first holds (the solve's date), the learning
    rates falling linearly to 0: a policy just at the threshold can have a greedy version that sticks"""
    eval_episodes: int = core.arg(100, min=0, max=10_000)
    """episodes on gymnasium's own environment at the end, for the greedy and for the sampling policy (0: skip)"""
    gif: bool = True
    """save one greedy episode as out/episode.gif (classic-control rendering needs pygame-ce)"""
    gif_copy: str | None = None
    """also copy the GIF there (the README's assets come from this)"""
    checkpoint_every: int = core.arg(50_000, min=1)
    """environment steps between checkpoints (with --out)"""
    normalize: bool | None = None
    """normalise observations and scale rewards with running statistics kept in the checkpoint, as VecNormalize
    (Discrete: off; Box: on)"""
    mode: Literal["eager", "graph", "xla"] = "graph"
    """how calls are compiled: eager, graph (tf.function; jax.jit on JAX) or xla (jit_compile); graph by default:
    TensorFlow's XLA compile of the whole iteration costs more than it saves"""

    def validate(self) -> None:
        if self.gif_copy:
            check_gif_copy(self.gif_copy, self.gif, self.out)
        env_backend(self.env, self.env_backend)  # one line naming the device environments if none


def resolved_flags(config: dict) -> dict:
    """What a saved config's flags stand for on resume (examples/rl_defaults.py)."""
    return resolved(Config, config)


# ----- the math (keras.ops only) -----
def gae(rewards, values, next_values, terminated, truncated, gamma: float, lam: float):
    """GAE(lambda) advantages and returns along axis 0 of (T, N) tensors. ``next_values``: V of the observation
    after each step, before any reset: a step cut by a time limit (truncated, not terminated) bootstraps from it, a
    terminated one from 0. Nothing flows back across an episode's end; the last row bootstraps from
    ``next_values`` (the rollout stops mid-episode)."""
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


def normalize(x):  # advantages standardised
    return (x - ops.mean(x)) / (ops.std(x) + 1e-8)


# ----- the agent -----
class PPO:
    """Policy and value networks, their optimizers and the compiled iteration, on a device env or on inputs."""

    def __init__(
        self,
        cfg: Config,
        obs_dim: int,
        actions: int,
        env: core.DeviceEnv | None = None,
        continuous: bool = False,
        entropy_term: bool = False,
    ):
        """``actions``: logits of a Discrete space, or components of a Box one (``continuous``, or a Box device
        ``env``). Flags ``cfg`` left unset take the environment's defaults; ``entropy_term``: build the entropy
        bonus even at coefficient 0 (a population member whose others have one)."""
        continuous = continuous or (env is not None and env.continuous)
        cfg = settled(cfg, "device" if env is not None else "gymnasium", continuous)
        self.cfg, self.env = cfg, env
        self.T, self.N, self.obs_dim = cfg.rollout_steps, cfg.num_envs, obs_dim
        # Greedy monitors: extra device environments acting with the greedy action, never learned from.
        self.G = cfg.greedy_envs if env is not None else 0
        self.updates = cfg.epochs * cfg.minibatches
        self.head = make_head(continuous, actions)
        # Outputs near 0 at the start: near-uniform logits (Discrete), or mean 0 and standard deviation 1 (Box).
        self.policy = mlp(obs_dim, self.head.outputs, cfg.hidden, "policy", out_scale=0.01)
        self.value = mlp(obs_dim, 1, cfg.hidden, "value", out_scale=1.0)
        self.norm = Normalizer(obs_dim, self.N, cfg.gamma) if cfg.normalize else None
        self.seed_gen = keras.random.SeedGenerator(cfg.seed)
        # Variables, not constants: a population's members each hold their own (core.Population).
        self.entropy_coef = keras.Variable(cfg.entropy_coef, trainable=False, name="entropy_coef")
        self.clip_coef = keras.Variable(cfg.clip_coef, trainable=False, name="clip_coef")
        self.entropy_term = entropy_term or bool(cfg.entropy_coef)  # with no bonus its gradient is not built
        self.policy_opt = keras.optimizers.Adam(self._schedule(cfg.lr), epsilon=1e-5)
        self.value_opt = keras.optimizers.Adam(self._schedule(cfg.lr), epsilon=1e-5)
        clip = core.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm else None
        groups = [
            core.UpdateGroup("policy", self.policy_loss, self.policy.trainable_variables, self.policy_opt, clip,
                             repeats=self.updates, repeat_key="update"),
            core.UpdateGroup("value", self.value_loss, self.value.trainable_variables, self.value_opt, clip,
                             repeats=self.updates, repeat_key="update"),
        ]  # fmt: skip
        inputs = None
        if env is not None:  # the environments' state lives in variables, so it is checkpointed and resumed
            # N + G environments, the monitors last: the first N rows of an (N + G)-row random draw equal an N-row
            # draw (tested, both backends), so the N training environments see what they would without monitors.
            start = env.reset(self.N + self.G, self.seed_gen)
            self.env_state = {k: keras.Variable(v, trainable=False, name=f"env_{k}") for k, v in start.items()}
        else:
            T, N, d = self.T, self.N, obs_dim
            spec = core.InputSpec
            action = spec((T, N, actions)) if self.head.continuous else spec((T, N), "int32")
            inputs = {"obs": spec((T, N, d)), "actions": action, "rewards": spec((T, N)),
                      "terminated": spec((T, N)), "truncated": spec((T, N)), "next_obs": spec((T, N, d))}  # fmt: skip
        self.step = core.make_step(groups, inputs=inputs, mode=cfg.mode, prepare_fn=self.prepare)
        obs_spec = {"obs": core.InputSpec((None, obs_dim))}
        self.sample = core.make_forward(self._sample, obs_spec, cfg.mode)
        self.greedy = core.make_forward(self._greedy, obs_spec, cfg.mode)

    def scale_learning_rates(self, fraction: float) -> None:
        """Both optimizers at ``fraction`` of the rate (a variable: no retrace); --anneal-lr: the schedule's."""
        if not self.cfg.anneal_lr:
            self.policy_opt.learning_rate = self.cfg.lr * fraction
            self.value_opt.learning_rate = self.cfg.lr * fraction

    def _schedule(self, lr: float):
        """Constant, or (``--anneal-lr``) linear to 0 over ``--max-env-steps``, counted in optimizer updates."""
        if not self.cfg.anneal_lr:
            return lr
        iterations = max(1, self.cfg.max_env_steps // (self.T * self.N))
        return keras.optimizers.schedules.PolynomialDecay(lr, iterations * self.updates, 0.0, power=1.0)

    def observe(self, obs):
        """What the networks see of raw observations: normalised with the running statistics (--normalize)."""
        return self.norm.observations(obs) if self.norm is not None else obs

    def _sample(self, batch: dict):
        return self.head.sample(self.policy(self.observe(batch["obs"])), self.seed_gen)

    def _greedy(self, batch: dict):
        """The argmax action (Discrete) or the Gaussian's mean (Box)."""
        return self.head.greedy(self.policy(self.observe(batch["obs"])))

    # ----- 1. rollout, advantages, minibatch order -----
    def rollout(self) -> dict:
        """T steps of the N device environments, the policy sampling each action, inside the compiled call.

        With G greedy monitors the G extra environments step in the same batch, acting with the greedy action of
        the same policy outputs; only their episode statistics come out (``greedy_return``, ``greedy_ended``),
        apart from the learning data. Box actions are stored as sampled and clipped only into the environment.
        """
        N, G, head = self.N, self.G, self.head
        # Which rows are monitors: a constant, so each step adds three small ops (argmax, cast, where).
        monitor_rows = ops.arange(N + G) >= N
        if head.continuous:
            monitor_rows = monitor_rows[:, None]

        def one_step(state, _):
            obs = self.env.observe(state["physics"])
            params = self.policy(self.observe(obs))
            # Noise for all N + G rows: its first N rows are the N-row draw (see __init__).
            actions = head.sample(params, self.seed_gen)
            if G:
                actions = ops.where(monitor_rows, head.greedy(params), actions)
            to_env = ops.clip(actions, self.env.action_low, self.env.action_high) if head.continuous else actions
            state, tr = self.env.step(state, to_env, self.seed_gen)
            # The policy's outputs go out too: prepare takes the old log-probabilities from them, not a second pass.
            out = {
                "obs": obs,
                "actions": actions,
                "params": params,
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

        raw_obs, actions, rewards = flat(traj["obs"]), flat(traj["actions"]), traj["rewards"]
        ended = ops.maximum(traj["terminated"], traj["truncated"])
        # The statistics the policy acted with; the rollout's rewards update the reward scale before scaling them.
        obs, next_obs = self.observe(raw_obs), self.observe(flat(traj["next_obs"]))
        if self.norm is not None:
            rewards = self.norm.rewards(rewards, ended)
        # V of obs and of next_obs in one pass: one set of matrix products, not two.
        both = ops.reshape(self.value(ops.concatenate([obs, next_obs], axis=0))[:, 0], (2, T, N))
        values, next_values = both[0], both[1]
        params = flat(traj["params"]) if "params" in traj else self.policy(obs)  # gymnasium: none come in
        advantages, returns = gae(
            rewards, values, next_values, traj["terminated"], traj["truncated"], cfg.gamma, cfg.gae_lambda
        )
        prepared = {}
        if cfg.minibatches > 1:  # a fresh order of all T*N transitions per epoch, cut into equal minibatches
            size = (T * N) // cfg.minibatches  # (a remainder sits the epoch out)
            orders = [keras.random.shuffle(ops.arange(T * N), seed=self.seed_gen) for _ in range(cfg.epochs)]
            prepared["order"] = ops.reshape(
                ops.stack([o[: size * cfg.minibatches] for o in orders]), (self.updates, size)
            )
        prepared.update(
            b_obs=obs,
            b_actions=actions,
            b_logp=self.head.log_prob(params, actions),
            # One minibatch: standardising here is what every update would do, done once.
            b_advantages=flat(advantages) if cfg.minibatches > 1 else normalize(flat(advantages)),
            b_returns=flat(returns),
        )
        if self.env is not None:  # what the host needs for the bar and the stop rule, and the non-finite guard
            guard = {"obs_max": ops.max(ops.abs(raw_obs)), "reward_max": ops.max(ops.abs(traj["rewards"]))}
            prepared.update(ended=ended, episode_return=traj["episode_return"], **guard)
            if self.G:
                prepared.update(greedy_ended=traj["greedy_ended"], greedy_return=traj["greedy_return"])
        if self.norm is not None:  # after every use of the old statistics: the next rollout acts with these
            self.norm.obs.update(raw_obs)
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
        params = self.policy(obs)
        pg_loss, approx_kl, clip_fraction = clipped_surrogate(
            self.head.log_prob(params, actions), logp_old, adv, self.clip_coef
        )
        entropy = ops.mean(self.head.entropy(params))
        aux = {"losses/entropy": entropy, "ppo/approx_kl": approx_kl, "ppo/clip_fraction": clip_fraction}
        if self.env is not None:
            aux.update({k: batch[k] for k in EPISODE_KEYS if k in batch})
        if not self.entropy_term:  # logged either way
            return pg_loss, aux
        return pg_loss - self.entropy_coef * entropy, aux

    def value_loss(self, batch: dict):
        obs, returns = self._minibatch(batch, "b_obs", "b_returns")
        return 0.5 * ops.mean(ops.square(self.value(obs)[:, 0] - returns))

    def iterate(self, k: int) -> dict:
        """K device iterations; each log an array with one value per iteration. K = 1 calls the single-step
        program, which TensorFlow traces once (the fused loop traces its body twice: 0.7 s more, measured)."""
        if k == 1:
            return {key: np.asarray(v)[None] for key, v in self.step.train_step().items()}
        return self.step.train_steps(num_steps=k)

    def checkpoint_objects(self) -> dict:
        objs = {"policy": self.policy, "value": self.value, "policy_opt": self.policy_opt}
        objs.update(value_opt=self.value_opt, seed_gen=self.seed_gen)
        if self.env is not None:
            objs["env_state"] = list(self.env_state.values())
        if self.norm is not None:
            objs["normalizer"] = self.norm.variables
        return objs

    def member_objects(self) -> dict:
        """What a population member holds of its own: the checkpoint's objects and its hyperparameters."""
        return {**self.checkpoint_objects(), "hyperparameters": [self.entropy_coef, self.clip_coef]}

    def exported(self) -> dict:
        """The networks as .keras files at every checkpoint, acting on raw observations (the statistics of then)."""
        return exports(self.policy, self.value, self.obs_dim, self.norm, self.head)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.sample({"obs": np.asarray(obs, np.float32)})


# ----- training -----
def train(config: Config) -> dict:
    """Train until solved (and trained on) or ``--max-env-steps``; evaluate on gymnasium; return the summary."""
    core.seed_everything(config.seed)
    backend = env_backend(config.env, config.env_backend)
    box = core.make_device_env(config.env).continuous if backend == "device" else box_actions(config.env)
    cfg = settled(config, backend, box)
    members = members_of(cfg, backend == "device")  # (the lists of --lr, ... crossed) x seeds
    print(f"stepping on {core.describe_device()}")
    if len(members) > 1:
        run_kw = {"may_change": RESUME_MAY_CHANGE, "resolve": resolved_flags}
        return train_population(cfg, members, device_agent, GREEDY_WINDOW, REPORT_ITERATIONS, run_kw)
    cfg = dataclasses.replace(cfg, **members[0].hyper)  # one member: each list's one value
    return train_on_device(cfg) if backend == "device" else train_on_gymnasium(cfg)


def device_agent(cfg: Config, entropy_term: bool = False) -> PPO:
    """The agent on ``cfg.env``'s device environment (``entropy_term``: see PPO)."""
    env = core.make_device_env(cfg.env)
    return PPO(cfg, env.obs_dim, env.action_dim or env.num_actions, env, entropy_term=entropy_term)


def train_on_device(cfg: Config) -> dict:
    """Rollouts, advantages and updates inside one compiled call; only episode statistics come back."""
    agent = device_agent(cfg)
    env = agent.env
    target = cfg.target_return if cfg.target_return is not None else env.reward_threshold
    per_iteration = cfg.rollout_steps * cfg.num_envs
    print(f"{env.env_id} on the device: {cfg.num_envs} envs x {cfg.rollout_steps} steps per iteration, "
          f"{cfg.iterations_per_call} iterations per call, target mean return {target}")  # fmt: skip
    if agent.G:
        print(f"{agent.G} greedy monitor envs (argmax or mean action, not learned from): the run also needs the "
              f"mean of their last {GREEDY_WINDOW} episodes to reach the target")  # fmt: skip
    run = open_run(cfg, agent, f"{env.env_id} (device)", RESUME_MAY_CHANGE, resolved_flags)
    pending: list[dict] = []  # logs not yet written to TensorBoard
    with run:
        board = Scoreboard(run, target, GREEDY_WINDOW if agent.G else 0)
        while run.running and not board.done(run.step, cfg.train_on):
            k = cfg.iterations_per_call  # always whole calls: a shorter last call would compile a second program
            # After the solve the rates fall to 0 over --train-on (at full rate, one greedy policy fell -84 to -109).
            if board.solved:  # before the solve the rates stay as configured: no assign per iteration
                agent.scale_learning_rates(board.train_on_left(run.step, cfg.train_on))
            logs = agent.iterate(k)
            check_finite(logs["obs_max"], logs["reward_max"], run.step + k * per_iteration)
            add_episodes(board, logs, run.step, per_iteration)
            run.state["updates"] += k
            run.state["greedy_env_steps"] += k * cfg.rollout_steps * agent.G
            episode_keys = ("episode_return", "ended", "greedy_return", "greedy_ended")
            scalars = {key: v for key, v in logs.items() if key not in episode_keys}
            run.advance(k * per_iteration, scalars, show={"mean_return_100": board.mean or 0.0, **scalars})
            pending.append(scalars)
            # TensorBoard every REPORT_ITERATIONS iterations, their mean: a write costs ~1 ms, 1/10 of an iteration.
            if len(pending) * k >= REPORT_ITERATIONS or board.done(run.step, cfg.train_on) or not run.running:
                report(run, board, {key: np.concatenate([p[key] for p in pending]) for key in scalars})
                pending.clear()
    return finish(run, board, agent, target, algo="ppo", env_backend="device", greedy_envs=cfg.greedy_envs)


def train_on_gymnasium(cfg: Config) -> dict:
    """Any gymnasium environment with Box observations: the host collects each rollout, one call learns from it."""
    env, info = make_same_step_env(cfg.env, cfg.num_envs)
    agent = PPO(cfg, info.obs_dim, info.action_dim or info.num_actions, continuous=info.continuous)
    target = cfg.target_return if cfg.target_return is not None else info.reward_threshold
    print(f"{info.env_id} on gymnasium: {cfg.num_envs} envs x {cfg.rollout_steps} steps, target {target}")
    per_iteration = cfg.rollout_steps * cfg.num_envs
    run = open_run(cfg, agent, info.env_id, RESUME_MAY_CHANGE, resolved_flags)
    try:
        with run:
            board = Scoreboard(run, target)
            collector = RolloutCollector(env, info, agent.act, seed=gymnasium_seed(run))
            while run.running and not board.solved:
                batch, returns, _ = collector.collect(cfg.rollout_steps)
                check_finite([batch["obs"], batch["next_obs"]], batch["rewards"], run.step + per_iteration)
                board.add(returns, run.step + per_iteration)
                logs = agent.step.train_step(batch)
                run.state["updates"] += 1
                run.advance(per_iteration, logs, show={"mean_return_100": board.mean or 0.0, **logs})
                report(run, board, logs)
    finally:
        env.close()
    return finish(run, board, agent, target, algo="ppo", env_backend="gymnasium")


def main(argv: list[str] | None = None) -> int:
    return core.run_main(train, Config, argv, PROGRAMS)


if __name__ == "__main__":
    sys.exit(main())
