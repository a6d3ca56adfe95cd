"""Policy-gradient agents on the core: PPO (default) and REINFORCE, on device environments or gymnasium.

    python -m examples.reinforce --out runs/cartpole                    # PPO, CartPole-v1 stepped on the device
    python -m examples.reinforce --env Acrobot-v1 --out runs/acrobot
    python -m examples.reinforce --algo reinforce --out runs/reinforce   # Monte-Carlo REINFORCE on gymnasium
    python -m examples.reinforce --env-backend gymnasium --env LunarLander-v3 --out runs/lander

PPO (``examples/ppo.py``): rollout, GAE, epochs of minibatch updates for two update groups (policy, value),
on a device environment all inside one compiled call. REINFORCE (``examples/reinforce_agent.py``): whole
episodes from gymnasium, reward-to-go returns, one update per batch of finished episodes. Greedy evaluation
and the GIF always run on gymnasium's own environment.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

import core
from examples.ppo import PPO
from examples.reinforce_agent import LOG_KEYS, Reinforce
from examples.reinforce_env import (
    Collector,
    EpisodeWindow,
    RolloutCollector,
    make_same_step_env,
    make_vector_env,
)
from examples.rl_common import evaluate, record_gif

# Per-algorithm defaults of the fields left at None (measured: docs/reinforce.md).
DEFAULTS = {
    "ppo": dict(num_envs=8, rollout_steps=32, gamma=0.98, lr=0.003, value_lr=0.003, clip_norm=0.5,
                value_clip_norm=0.5, entropy_coef=0.0, mode="graph"),
    "reinforce": dict(num_envs=32, rollout_steps=16, gamma=0.99, lr=0.004, value_lr=0.005, clip_norm=1.0,
                      value_clip_norm=1.0, entropy_coef=0.0, mode="xla"),
}  # fmt: skip


# Flags a resumed run may change: its budget and stop rule, the final evaluation and GIF, checkpoint cadence, and
# how many iterations one compiled call runs.
RESUME_MAY_CHANGE = (
    "max_env_steps", "target_return", "train_on", "eval_episodes", "gif", "gif_copy", "checkpoint_every",
    "iterations_per_call",
)  # fmt: skip
REPORT_ITERATIONS = 4  # device PPO: iterations per TensorBoard write


@dataclass
class Config(core.RunConfig):
    """Train a policy-gradient agent (PPO or REINFORCE) on a discrete-action environment."""

    algo: Literal["ppo", "reinforce"] = "ppo"
    """ppo: clipped updates on GAE advantages, several epochs of minibatches; reinforce: Monte-Carlo returns of
    whole episodes, one update each (gymnasium only)"""
    env: str = "CartPole-v1"
    """environment id (discrete actions, flat Box observations); any gymnasium id on the gymnasium backend"""
    env_backend: Literal["auto", "device", "gymnasium"] = "auto"
    """device: environments written in keras.ops, stepped inside the compiled call (CartPole-v1, Acrobot-v1,
    MountainCar-v0); gymnasium: NumPy environments on the host; auto: device where there is one (PPO)"""
    num_envs: int | None = core.arg(None, min=1, max=65_536)
    """environments stepped together (ppo 8, reinforce 32)"""
    rollout_steps: int | None = core.arg(None, min=1, max=100_000)
    """steps of every environment per update (ppo 32, reinforce 16)"""
    iterations_per_call: int = core.arg(1, min=1, max=10_000)
    """device PPO: rollout + update iterations fused into one compiled call (1: the single-iteration program,
    which TensorFlow traces in half the time of the fused loop)"""
    gamma: float | None = core.arg(None, above=0, max=1)
    """discount of the returns (ppo 0.98, reinforce 0.99)"""
    gae_lambda: float = core.arg(0.8, min=0, max=1)
    """ppo: GAE lambda (1: Monte-Carlo returns bootstrapped at the rollout's end; 0: one-step TD)"""
    epochs: int = core.arg(10, min=1, max=1000)
    """ppo: passes over each rollout"""
    minibatches: int = core.arg(1, min=1, max=100_000)
    """ppo: minibatches per epoch (each num_envs * rollout_steps / minibatches transitions)"""
    anneal_lr: bool = False
    """ppo: decay both learning rates linearly to 0 over --max-env-steps"""
    shared_optimizer: bool = False
    """ppo: one update group and one Adam for the sum of both losses (value loss weighted by --value-coef)
    instead of two groups with their own optimizers"""
    value_coef: float = core.arg(0.5, min=0)
    """ppo with --shared-optimizer: weight of the value loss"""
    clip_coef: float = core.arg(0.2, above=0, max=10)
    """ppo: clip the probability ratio to [1 - c, 1 + c]"""
    value_clip: float | None = core.arg(None, above=0)
    """ppo: clip each value update to this distance from the rollout's value (off by default)"""
    entropy_coef: float | None = core.arg(None, min=0, max=100)
    """weight of the entropy bonus in the policy loss (0 for both)"""
    lr: float | None = core.arg(None, above=0, max=10)
    """policy Adam learning rate (ppo 0.003, reinforce 0.004)"""
    value_lr: float | None = core.arg(None, above=0, max=10)
    """value Adam learning rate (ppo 0.003, reinforce 0.005)"""
    clip_norm: float | None = core.arg(None, min=0)
    """clip the policy gradient to this global norm, 0: no clipping (ppo 0.5, reinforce 1)"""
    value_clip_norm: float | None = core.arg(None, min=0)
    """clip the value gradient to this global norm, 0: no clipping (ppo 0.5, reinforce 1)"""
    hidden: int = core.arg(64, min=1, max=8192)
    """units of each of the two hidden layers of both networks"""
    update_size: int = core.arg(1024, min=1, max=1_000_000)
    """reinforce: transitions per train call (finished ones padded to it, or split over several calls)"""
    vectorization: Literal["auto", "vector", "sync"] = "auto"
    """reinforce: gymnasium's numpy-vectorised env (vector), SyncVectorEnv (sync), or vector if available"""
    normalize: Literal["advantages", "returns", "none"] = "advantages"
    """reinforce: standardise the advantages, the returns, or nothing, over each batch"""
    baseline: bool = True
    """reinforce: learn a value baseline and subtract it from the returns"""
    bootstrap_truncated: Literal["auto", "on", "off"] = "auto"
    """reinforce: end a time-limit-cut episode's return with gamma * V(next obs); auto: on if most of the first
    --num-envs episodes were cut by the time limit (Acrobot-v1, MountainCar-v0), off if most ended themselves"""
    window: int | None = core.arg(None, min=2)
    """reinforce: rows kept per environment (default: max episode steps + rollout steps)"""
    max_env_steps: int = core.arg(500_000, min=1, max=10**12)
    """bound on the run, in environment transitions (device PPO: rounded up to whole calls)"""
    target_return: float | None = core.arg(None, infinite=True)
    """stop once the mean return of the last 100 episodes reaches this (default: the env's reward_threshold;
    inf: never, train for the whole --max-env-steps)"""
    greedy_envs: int = core.arg(8, min=0, max=65_536)
    """device PPO: extra environments stepped in the same rollout with the argmax action (never learned from);
    the run stops only once the mean of their last --greedy-window episodes also reaches the target (0: off)"""
    greedy_window: int = core.arg(16, min=1, max=10_000)
    """device PPO: completed greedy-monitor episodes whose mean the stop rule checks"""
    train_on: int = core.arg(30_000, min=0)
    """device PPO: env steps to keep training after the stop rule first holds, the learning rates falling
    linearly to 0 (the solve is still dated to that moment); a policy just at the threshold can have a greedy
    version that sticks now and then"""
    eval_episodes: int = core.arg(100, min=0, max=10_000)
    """episodes on gymnasium's own environment at the end, for the greedy and for the sampling policy (0: skip);
    100, as in the definition of the environments' reward thresholds (a 100-episode mean)"""
    gif: bool = True
    """save one greedy episode as out/episode.gif (classic-control rendering needs pygame-ce)"""
    gif_copy: str | None = None
    """also copy the GIF there (the README's assets come from this)"""
    checkpoint_every: int = core.arg(50_000, min=1)
    """environment steps between checkpoints (with --out)"""
    mode: Literal["eager", "graph", "xla"] | None = None
    """how calls are compiled: eager, graph (tf.function; jax.jit on JAX) or xla (jit_compile); default: graph
    for ppo (TensorFlow's XLA compile of the whole iteration costs more than it saves), xla for reinforce's
    acting call (its train step stays a graph on TensorFlow)"""

    def validate(self) -> None:
        if self.gif_copy:
            check_gif_copy(self.gif_copy, self.gif, self.out)
        if not self.env.strip():
            raise core.UsageError("--env must name an environment, e.g. CartPole-v1")
        s = resolved(self)
        backend = env_backend(s)  # one line naming the device environments when there is none for --env
        self.refuse_unused(PPO_ONLY if s.algo == "reinforce" else REINFORCE_ONLY, f"with --algo {s.algo}")
        if backend == "gymnasium":
            self.refuse_unused(DEVICE_PPO_ONLY, "on the gymnasium path (device PPO only)")
        if not s.shared_optimizer:
            self.refuse_unused(["value_coef"], "without --shared-optimizer")
        elif s.algo == "ppo":
            self.refuse_unused(["value_lr", "value_clip_norm"], "with --shared-optimizer (one Adam for both losses)")
        if s.algo == "reinforce" and not s.baseline:
            self.refuse_unused(["value_lr", "value_clip_norm"], "with --no-baseline (no value network)")
        if s.algo == "reinforce" and (not s.baseline or s.normalize == "returns"):
            self.refuse_unused(["bootstrap_truncated"], "without a baseline or with --normalize returns")
        if not s.greedy_envs:
            self.refuse_unused(["greedy_window"], "with --greedy-envs 0")
        if s.algo == "ppo" and s.num_envs * s.rollout_steps < s.minibatches:
            raise core.UsageError(
                f"--minibatches {s.minibatches} exceeds the {s.num_envs * s.rollout_steps} "
                "transitions of a rollout (--num-envs x --rollout-steps)"
            )
        if s.algo == "reinforce" and s.window is not None and s.window <= s.rollout_steps:
            raise core.UsageError(f"--window {s.window} must exceed --rollout-steps {s.rollout_steps}")
        check_sizes(s, backend)


def resolved(config: Config) -> Config:
    """The config with the per-algorithm defaults filled in for the fields left at None."""
    filled = {k: v for k, v in DEFAULTS[config.algo].items() if getattr(config, k) is None}
    return dataclasses.replace(config, **filled)


def resolved_flags(config: dict) -> dict:
    """What a config's flags stand for: per-algorithm defaults filled in, ``--env-backend auto`` resolved."""
    filled = resolved(Config(**config))
    return {**dataclasses.asdict(filled), "env_backend": env_backend(filled)}


def env_backend(config: Config) -> str:
    ids = core.DEVICE_ENV_IDS
    if config.env_backend == "device":
        if config.env not in ids:
            raise core.UsageError(
                f"--env-backend device: no device version of {config.env!r}; there is one of {', '.join(sorted(ids))}"
            )
        if config.algo != "ppo":
            raise core.UsageError("--env-backend device runs --algo ppo; REINFORCE needs whole episodes (gymnasium)")
        return "device"
    if config.env_backend == "gymnasium" or config.algo != "ppo":
        return "gymnasium"
    return "device" if config.env in ids else "gymnasium"


# Flags that act on one algorithm or path only: given for another, they are refused (they would do nothing).
PPO_ONLY = ("gae_lambda", "epochs", "minibatches", "anneal_lr", "shared_optimizer", "value_coef", "clip_coef",
            "value_clip")  # fmt: skip
REINFORCE_ONLY = ("update_size", "vectorization", "normalize", "baseline", "bootstrap_truncated", "window")
DEVICE_PPO_ONLY = ("iterations_per_call", "greedy_envs", "greedy_window", "train_on")
MAX_ROLLOUT = 2**24  # transitions in one device rollout: 16.8M rows of observations, far beyond any default
MAX_GYMNASIUM_ENVS = 1024  # gymnasium's vector environments are Python objects, one per copy


def check_sizes(s: Config, backend: str) -> None:
    """Sizes whose product would exhaust memory (or overflow int32 indexing) refused before anything is built."""
    if backend == "gymnasium" and s.num_envs > MAX_GYMNASIUM_ENVS:
        raise core.UsageError(f"--num-envs {s.num_envs}: at most {MAX_GYMNASIUM_ENVS} gymnasium environments")
    envs = s.num_envs + (s.greedy_envs if backend == "device" else 0)
    if envs * s.rollout_steps > MAX_ROLLOUT:
        raise core.UsageError(
            f"--num-envs {s.num_envs} (+ {envs - s.num_envs} greedy) x --rollout-steps {s.rollout_steps} = "
            f"{envs * s.rollout_steps} transitions per rollout; at most {MAX_ROLLOUT}"
        )


def check_gif_copy(path: str, gif: bool, out: str | None) -> None:
    """--gif-copy before any training: it needs the GIF and --out, and a file name in a folder it can write."""
    if not gif:
        raise core.UsageError("--gif-copy copies the episode GIF, which --no-gif turns off")
    if not out:
        raise core.UsageError("--gif-copy needs --out (the GIF is written to --out/episode.gif, then copied)")
    if Path(path).is_dir():
        raise core.UsageError(f"--gif-copy {path} is a folder; name the file, e.g. {path}/run.gif")
    folder = Path(path).absolute().parent
    while not folder.exists():  # the copy creates the missing folders: the nearest existing one must take them
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise core.UsageError(f"--gif-copy {path}: {folder} is not a folder this run can write in")


def check_counters(state: dict) -> None:
    """A resumed run's counters have the types this example writes (the checkpoint's JSON could hold anything)."""

    def number(x) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    def count(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    counters = ("episodes", "updates", "greedy_episodes", "greedy_env_steps", "first_episodes", "first_cut")
    bad = [k for k in counters if not count(state.get(k, 0))]
    if not isinstance(state.get("bootstrap_truncated"), bool | None):
        bad.append("bootstrap_truncated")
    for key in ("recent", "greedy_recent"):
        if not isinstance(state.get(key, []), list | collections.deque) or not all(map(number, state.get(key, []))):
            bad.append(key)
    for key in ("solved_at", "train_target_at"):
        moment = state[key]
        keys = ("env_steps", "episodes", "wall_seconds")
        if moment is not None and not (isinstance(moment, dict) and all(number(moment.get(k)) for k in keys)):
            bad.append(key)
    if bad:
        raise core.UsageError(f"--resume: the checkpoint's counters are damaged ({', '.join(bad)})")


class Scoreboard:
    """Episode returns as they finish, the mean of the last 100 and the moment the stop rule first held.

    With ``greedy_window`` k > 0 (device PPO with greedy monitors) the rule also needs the mean of the last k
    completed greedy-monitor episodes to reach the target: the sampling policy's mean alone says nothing of the
    argmax policy, which training never runs and which can stick for whole episodes (Acrobot-v1). Its counters
    live in ``run.state``, so they are checkpointed and resumed with the run.
    """

    def __init__(self, run: core.Run, target: float | None, greedy_window: int = 0):
        self.run, self.target, self.greedy_window = run, target, greedy_window
        state = run.state
        for key, start in (("episodes", 0), ("updates", 0), ("solved_at", None), ("train_target_at", None)):
            state.setdefault(key, start)
        state.setdefault("greedy_episodes", 0)
        state.setdefault("greedy_env_steps", 0)
        check_counters(state)
        state["recent"] = collections.deque(state.get("recent", []), maxlen=100)
        state["greedy_recent"] = collections.deque(state.get("greedy_recent", []), maxlen=max(greedy_window, 1))

    @property
    def solved(self) -> bool:
        return self.run.state["solved_at"] is not None

    def done(self, env_steps: int, train_on: int) -> bool:
        """Solved, and ``train_on`` more env steps trained since."""
        return self.solved and env_steps >= self.run.state["solved_at"]["env_steps"] + train_on

    def train_on_left(self, env_steps: int, train_on: int) -> float:
        """The fraction of the ``train_on`` steps still to go: 1 until the solve, then down to 0."""
        if not self.solved or not train_on:
            return 1.0
        return max(0.0, 1.0 - (env_steps - self.run.state["solved_at"]["env_steps"]) / train_on)

    @property
    def mean(self) -> float | None:
        recent = self.run.state["recent"]
        return float(np.mean(recent)) if recent else None

    @property
    def greedy_mean(self) -> float | None:
        greedy = self.run.state["greedy_recent"]
        return float(np.mean(greedy)) if greedy and self.greedy_window else None

    def add(self, returns, env_steps: int, greedy_returns=()) -> None:
        """Episodes (and greedy-monitor episodes) finished by ``env_steps``; see the class for the stop rule."""
        state = self.run.state
        state["episodes"] += len(returns)
        state["recent"].extend(float(r) for r in returns)
        state["greedy_episodes"] += len(greedy_returns)
        state["greedy_recent"].extend(float(r) for r in greedy_returns)
        if self.solved or self.target is None or len(state["recent"]) < 100 or self.mean < self.target:
            return
        moment = {"env_steps": int(env_steps), "episodes": state["episodes"], "wall_seconds": self.run.elapsed()}
        if state["train_target_at"] is None:
            state["train_target_at"] = moment
        # A sliding window of the last k greedy episodes, like the training mean's last 100, not only those ended
        # after the training mean got there: requiring every monitor to end an episode after that moment cost
        # CartPole-v1 about 16 iterations (a 500-step greedy episode; +0.3 s on TensorFlow) and did not lift the
        # greedy evaluation on the Acrobot-v1 tuning seeds (measured, docs/reinforce.md).
        greedy = state["greedy_recent"]
        if self.greedy_window and (len(greedy) < self.greedy_window or self.greedy_mean < self.target):
            return
        state["solved_at"] = moment


def train(config: Config) -> dict:
    """Train until solved or ``--max-env-steps``; evaluate greedily on gymnasium; return the summary."""
    cfg = resolved(config)
    core.seed_everything(cfg.seed)
    print(f"stepping on {core.describe_device()}")
    backend = env_backend(cfg)
    if backend == "device":
        return train_ppo_on_device(cfg)
    if cfg.algo == "ppo":
        return train_ppo_on_gymnasium(cfg)
    return train_reinforce(cfg)


def open_run(cfg: Config, agent, desc: str) -> core.Run:
    """The run; its Scoreboard is made once inside ``with run:``, where a resumed run's counters are restored."""
    return core.Run(
        cfg,
        agent.checkpoint_objects(),
        total=cfg.max_env_steps,
        desc=desc,
        bar_keys=["mean_return_100", "policy/loss", "value/loss"],
        checkpoint_every=cfg.checkpoint_every,
        may_change=RESUME_MAY_CHANGE,
        resolve=resolved_flags,
    )


def report(run: core.Run, board: Scoreboard, logs: dict) -> None:
    """TensorBoard scalars after an update (the mean over the iterations of a fused call)."""
    scalars = {LOG_KEYS.get(k, k): float(np.mean(v)) for k, v in logs.items()}
    if board.mean is not None:
        scalars["charts/mean_return_100"] = board.mean
    run.log(scalars)


def train_ppo_on_device(cfg: Config) -> dict:
    """PPO with rollouts, advantages and updates inside one compiled call; only episode statistics come back."""
    env = core.make_device_env(cfg.env)
    agent = PPO(cfg, env.obs_dim, env.num_actions, env)
    target = cfg.target_return if cfg.target_return is not None else env.reward_threshold
    per_iteration = cfg.rollout_steps * cfg.num_envs
    print(
        f"{env.env_id} on the device: {cfg.num_envs} envs x {cfg.rollout_steps} steps per iteration, "
        f"{cfg.iterations_per_call} iterations per call, target mean return {target}"
    )
    if agent.G:
        print(
            f"{agent.G} greedy monitor envs (argmax, not learned from): the run also needs the mean of their last "
            f"{cfg.greedy_window} episodes to reach the target"
        )
    run = open_run(cfg, agent, f"{env.env_id} (device)")
    pending: list[dict] = []  # logs not yet written to TensorBoard
    with run:
        board = Scoreboard(run, target, cfg.greedy_window if agent.G else 0)
        while run.running and not board.done(run.step, cfg.train_on):
            k = cfg.iterations_per_call  # always whole calls: a shorter last call would compile a second program
            # After the solve the learning rates fall linearly to 0 over --train-on: the policy settles instead of
            # drifting at full rate (measured: one policy fell from -84 to -109 greedy while training on).
            if board.solved:  # before the solve the rates stay as configured: no assign per iteration
                agent.scale_learning_rates(board.train_on_left(run.step, cfg.train_on))
            logs = agent.iterate(k)
            for i in range(k):  # in order, so the solve is dated to its iteration
                ended = logs["episode_return"][i][logs["ended"][i] > 0]
                greedy = logs["greedy_return"][i][logs["greedy_ended"][i] > 0] if agent.G else ()
                board.add(ended, run.step + (i + 1) * per_iteration, greedy)
            run.state["updates"] += k
            run.state["greedy_env_steps"] += k * cfg.rollout_steps * agent.G
            episode_keys = ("episode_return", "ended", "greedy_return", "greedy_ended")
            scalars = {key: v for key, v in logs.items() if key not in episode_keys}
            run.advance(k * per_iteration, scalars, show={"mean_return_100": board.mean or 0.0, **scalars})
            pending.append(scalars)
            # TensorBoard every REPORT_ITERATIONS iterations, their mean: a write of a dozen scalars costs about a
            # millisecond, a tenth of an iteration on the CPU (measured).
            if len(pending) * k >= REPORT_ITERATIONS or board.done(run.step, cfg.train_on) or not run.running:
                report(run, board, {key: np.concatenate([p[key] for p in pending]) for key in scalars})
                pending.clear()
    return finish(run, board, agent, cfg, "device", target)


def train_ppo_on_gymnasium(cfg: Config) -> dict:
    """PPO on any discrete gymnasium environment: the host collects each rollout, one compiled call learns from it."""
    env, info = make_same_step_env(cfg.env, cfg.num_envs)
    agent = PPO(cfg, info.obs_dim, info.num_actions)
    target = cfg.target_return if cfg.target_return is not None else info.reward_threshold
    print(f"{info.env_id} on gymnasium: {cfg.num_envs} envs x {cfg.rollout_steps} steps, target {target}")
    run = open_run(cfg, agent, info.env_id)
    try:
        with run:
            board = Scoreboard(run, target)
            collector = RolloutCollector(env, info, agent.act, seed=cfg.seed + run.state.get("episodes", 0))
            while run.running and not board.solved:
                batch, returns, _ = collector.collect(cfg.rollout_steps)
                board.add(returns, run.step + cfg.rollout_steps * cfg.num_envs)
                logs = agent.step.train_step(batch)
                run.state["updates"] += 1
                run.advance(cfg.rollout_steps * cfg.num_envs, logs, show={"mean_return_100": board.mean or 0.0, **logs})
                report(run, board, logs)
    finally:
        env.close()
    return finish(run, board, agent, cfg, "gymnasium", target)


def train_reinforce(cfg: Config) -> dict:
    """REINFORCE: collect rollouts into per-environment episode windows; train on every finished episode."""
    env, info = make_vector_env(cfg.env, cfg.num_envs, cfg.vectorization)
    agent = Reinforce(cfg, info, cfg.num_envs)
    target = cfg.target_return if cfg.target_return is not None else info.reward_threshold
    rows = cfg.window or (min(info.max_episode_steps or 1000, 1000) + cfg.rollout_steps)
    print(f"{info.env_id} on gymnasium ({info.vectorization}): {cfg.num_envs} envs, target mean return {target}")
    run = open_run(cfg, agent, info.env_id)
    try:
        with run:
            board = Scoreboard(run, target)
            window = EpisodeWindow(cfg.num_envs, rows, info.obs_dim)
            # A resumed run cannot restore gymnasium's environments: their episodes restart with a fresh seed.
            collector = Collector(env, info, window, agent.act, seed=cfg.seed + run.state.get("episodes", 0))
            while run.running and not board.solved:
                window.make_room(cfg.rollout_steps)
                n, returns, _ = collector.collect(cfg.rollout_steps)
                board.add(returns, run.step + n)
                logs = {}
                if window.trainable():
                    bootstrap = decide_bootstrap(run, window, agent, cfg)
                    for batch in window.batches(cfg.update_size, bootstrap):
                        logs = agent.step.train_step(batch)
                        run.state["updates"] += 1
                    window.drop_finished()
                run.advance(n, logs, show={"mean_return_100": board.mean or 0.0, **logs})
                if logs:
                    report(run, board, logs)
    finally:
        env.close()
    return finish(run, board, agent, cfg, "gymnasium", target)


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


def training_figures(run: core.Run, board: Scoreboard, agent, cfg: Config, backend: str, target: float | None) -> dict:
    """The figures of the training itself: summary.json keys, evaluations and GIF still empty."""
    state, seconds = run.state, run.elapsed()
    solved = state["solved_at"] or {}
    return {
        "algo": cfg.algo,
        "env_id": cfg.env,
        "env_backend": backend,
        "num_envs": cfg.num_envs,
        "solved": bool(solved),
        "env_steps_to_solve": solved.get("env_steps"),
        "episodes_to_solve": solved.get("episodes"),
        "wall_seconds_to_solve": solved.get("wall_seconds"),
        "env_steps": run.step,
        "episodes": state["episodes"],
        "updates": state["updates"],
        "final_mean_return": board.mean,
        # Device PPO's greedy monitors: evaluation interactions, not training steps (not in env_steps).
        "greedy_envs": cfg.greedy_envs if backend == "device" else 0,
        "greedy_monitor_env_steps": state["greedy_env_steps"],
        "greedy_monitor_episodes": state["greedy_episodes"],
        "greedy_monitor_mean_return": board.greedy_mean,
        "env_steps_to_train_target": (state["train_target_at"] or {}).get("env_steps"),
        "eval_mean_return": None,
        "sampled_eval_mean_return": None,
        "env_steps_per_second": run.step / max(seconds, 1e-9),
        "target_return": target,
        "gif": None,
        "bootstrap_truncated": state.get("bootstrap_truncated"),
        "tracing_counts": {**agent.step.tracing_counts(), "sample": agent.sample.tracing_count()},
        "devices": 1,  # the agent steps on one device
    }


def finish(run: core.Run, board: Scoreboard, agent, cfg: Config, backend: str, target: float | None) -> dict:
    """summary.json at once, then the evaluations and the GIF on gymnasium's own environment."""
    figures = training_figures(run, board, agent, cfg, backend, target)
    summary = run.write_summary(figures)
    state, seconds, solved = run.state, run.elapsed(), run.state["solved_at"] or {}
    if solved:
        print(
            f"solved: mean return of the last 100 episodes >= {target} after {solved['env_steps']} env steps, "
            f"{solved['episodes']} episodes, {solved['wall_seconds']:.2f} s"
        )
    elif run.interrupted:
        print(f"interrupted at {run.step} env steps; continue with --resume --out {run.out}" if run.out else "")
    else:
        print(f"not solved within {cfg.max_env_steps} env steps (mean of the last 100: {board.mean})")
    print(
        f"trained {seconds:.2f} s: {run.step} env steps ({figures['env_steps_per_second']:.0f}/s), "
        f"{state['updates']} updates, {state['episodes']} episodes"
    )
    if run.interrupted:
        return summary
    if cfg.eval_episodes:
        # Both policies: the stop rule measured the sampling policy (the one trained); the greedy one (argmax) can
        # be weaker, e.g. stuck for a whole Acrobot-v1 episode where argmax holds the links still.
        for key, policy in (("eval_mean_return", agent.greedy), ("sampled_eval_mean_return", agent.sample)):
            returns = evaluate(policy, cfg.env, cfg.eval_episodes, seed=cfg.seed + 1_000_003)
            summary = run.write_summary({key: float(np.mean(returns))})
            print(
                f"{'greedy' if policy is agent.greedy else 'sampling'} policy on gymnasium's {cfg.env} over "
                f"{len(returns)} episodes: mean {np.mean(returns):.1f} (min {np.min(returns):.0f})"
            )
    if cfg.gif and run.out is not None:
        made = record_gif(agent, cfg.env, run.out / "episode.gif", seed=cfg.seed + 2_000_003)
        if made:
            summary = run.write_summary({"gif": str(made[0])})
            print(f"wrote {made[0]} (greedy episode, return {made[1]:.0f})")
            if cfg.gif_copy:
                try:
                    Path(cfg.gif_copy).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(made[0], cfg.gif_copy)
                except OSError as e:  # checked before training, but the disk can change in between
                    raise core.UsageError(f"--gif-copy {cfg.gif_copy}: cannot write it ({e.strerror or e})") from None
    return summary


def main(argv: list[str] | None = None) -> int:
    return core.run_main(train, Config, argv)


if __name__ == "__main__":
    sys.exit(main())
