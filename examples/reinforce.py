"""REINFORCE (Monte-Carlo policy gradient) with a learned value baseline on gymnasium, in one compiled step.

python -m examples.reinforce --out runs/reinforce
python -m examples.reinforce --env Acrobot-v1 --out runs/acrobot

Two update groups in one ``core.make_step``: the policy (its own optimizer, gradient
clipping, entropy bonus) and the value baseline (its own optimizer and clipping).
Actions are sampled by a compiled forward call, one batched call per vector-env step.
"""

from __future__ import annotations

import collections
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import keras
import numpy as np
from keras import ops

import core
from examples.reinforce_env import Collector, EnvInfo, EpisodeWindow, make_vector_env


@dataclass
class Config:
    """Train a REINFORCE agent with a value baseline on a discrete-action gymnasium environment."""

    env: str = "CartPole-v1"
    """gymnasium environment id (discrete actions, flat Box observations)"""
    num_envs: int = 32
    """environments stepped together; one batched policy call acts for all of them"""
    vectorization: Literal["auto", "vector", "sync"] = "auto"
    """vector: gymnasium's numpy-vectorised env (CartPole has one); sync: SyncVectorEnv; auto: vector if available"""
    rollout_steps: int = 16
    """vector steps between updates; each update trains on every episode finished since the last one"""
    update_size: int = 1024
    """transitions per train-step call: the finished ones are padded to this size, or split over several calls
    (every k-th transition in each) when there are more. One fixed shape, so a JAX step compiles once"""
    gamma: float = 0.99
    """discount of the reward-to-go returns"""
    normalize: Literal["advantages", "returns", "none"] = "advantages"
    """standardise the advantages (returns minus baseline), the returns, or nothing, over each batch"""
    baseline: bool = True
    """learn a value baseline (second network, own optimizer) and subtract it from the returns"""
    bootstrap_truncated: Literal["auto", "on", "off"] = "auto"
    """an episode cut by a time limit (truncated, not terminated) ends its return with gamma * V(next observation)
    instead of 0 (needs --baseline, not --normalize returns). auto: decided once, when --num-envs episodes have
    finished (off until then): on if most of them were cut by the time limit (the limit stops attempts that have
    not reached the task's end yet, e.g. Acrobot-v1, MountainCar-v0), off if most ended by themselves (the limit
    is where a good policy ends up, e.g. CartPole-v1, where bootstrapping measured much worse)"""
    entropy_coef: float = 0.0
    """weight of the entropy bonus in the policy loss"""
    lr: float = 0.004
    """policy Adam learning rate"""
    value_lr: float = 0.005
    """value-baseline Adam learning rate"""
    clip_norm: float = 1.0
    """clip the policy gradient to this global norm (0: no clipping)"""
    value_clip_norm: float = 1.0
    """clip the value gradient to this global norm (0: no clipping)"""
    hidden: int = 64
    """units of each of the two hidden layers of both networks"""
    max_env_steps: int = 500_000
    """bound on the run, in environment transitions"""
    target_return: float | None = None
    """stop once the mean return of the last 100 episodes reaches this (default: the env's reward_threshold)"""
    window: int | None = None
    """rows kept per environment (default: max episode steps + rollout steps); longer episodes are split"""
    eval_episodes: int = 10
    """greedy-policy episodes evaluated at the end (0: skip)"""
    gif: bool = True
    """save one greedy episode as out/episode.gif (classic-control rendering needs pygame-ce)"""
    gif_copy: str | None = None
    """also copy the GIF there (the README's assets/reinforce_cartpole.gif comes from this)"""
    jit: bool = True
    """compile the acting call with XLA (else a plain tf.function graph)"""
    jit_train: bool = False
    """compile the train step with XLA on TensorFlow too (about 5 s of compiling; on JAX the step is always jitted)"""
    eager: bool = False
    """run everything eagerly, uncompiled, for debugging"""
    checkpoint_every: int = 50
    """updates between checkpoints (with --out)"""
    seed: int = 0
    """seeds Keras (weights, action sampling) and the environments' reset(seed=...)"""
    out: str | None = None
    """folder for summary.json, TensorBoard scalars, checkpoint.npz and episode.gif"""
    resume: bool = False
    """continue from out/checkpoint.npz"""

    def validate(self) -> None:
        for name in ("num_envs", "rollout_steps", "update_size", "hidden", "max_env_steps", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise core.UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.eval_episodes < 0:
            raise core.UsageError(f"--eval-episodes must be >= 0, got {self.eval_episodes}")
        if not 0.0 < self.gamma <= 1.0:
            raise core.UsageError(f"--gamma must be in (0, 1], got {self.gamma}")
        for name in ("lr", "value_lr"):
            if not getattr(self, name) > 0:
                raise core.UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("clip_norm", "value_clip_norm", "entropy_coef"):
            if not getattr(self, name) >= 0:
                raise core.UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.window is not None and self.window <= self.rollout_steps:
            raise core.UsageError(f"--window {self.window} must exceed --rollout-steps {self.rollout_steps}")
        if self.bootstrap_truncated == "on" and (not self.baseline or self.normalize == "returns"):
            raise core.UsageError("--bootstrap-truncated on needs --baseline and --normalize advantages or none")
        if self.gif_copy and not (self.gif and self.out):
            raise core.UsageError("--gif-copy needs --out (the GIF is written to --out/episode.gif, then copied)")
        if self.resume and not self.out:
            raise core.UsageError("--resume needs --out (the folder holding checkpoint.npz)")
        if not self.env.strip():
            raise core.UsageError("--env must name a gymnasium environment, e.g. CartPole-v1")


# ----- the math (keras.ops only) -----


def discounted_returns(rewards, ends, gamma: float, block: int = 16):
    """Reward-to-go ``G_t = r_t + gamma * (1 - end_t) * G_{t+1}`` along axis 0 of (T, N) arrays.

    ``end_t = 1`` marks the last transition of an episode, so the return restarts there and
    nothing leaks across an episode boundary. A plain scan costs one loop iteration per row;
    here rows are cut into blocks of ``block``: within a block the returns are one masked
    matrix product, and only the carry between blocks is scanned (T / block iterations).
    """
    t = ops.shape(rewards)[0]
    pad = (-t) % block
    r = ops.pad(rewards, [[0, pad], [0, 0]])
    e = ops.pad(ends, [[0, pad], [0, 0]], constant_values=1.0)
    n = ops.shape(r)[1]
    r = ops.reshape(r, (-1, block, n))
    e = ops.reshape(e, (-1, block, n))
    # Rows k >= t are in t's episode iff no episode ends in [t, k-1]: equal exclusive cumulative end counts.
    before = ops.cumsum(e, axis=1) - e
    same = ops.cast(ops.equal(before[:, :, None, :], before[:, None, :, :]), r.dtype)
    idx = np.arange(block)
    powers = np.where(idx[None, :] >= idx[:, None], gamma ** np.maximum(idx[None, :] - idx[:, None], 0), 0.0)
    weights = same * ops.convert_to_tensor(powers.astype("float32"))[None, :, :, None]
    local = ops.sum(weights * r[:, None, :, :], axis=2)  # returns counted inside the block
    # A row's episode runs past the block's end iff no end from it to the block's last row;
    # then the next block's first return reaches it discounted by gamma ** (block - t).
    open_ = ops.cast(ops.equal(before, ops.sum(e, axis=1, keepdims=True)), r.dtype)
    reach = open_ * ops.convert_to_tensor((gamma ** (block - idx)).astype("float32"))[None, :, None]

    def step(carry, x):  # carry: the first return of the following block
        return x[..., 0] + x[..., 1] * carry, carry

    # One stacked sequence, not a tuple: Keras' TF scan cannot check several sequences of unknown length.
    _, following = ops.scan(step, ops.zeros_like(r[0, 0]), ops.stack([local[:, 0], reach[:, 0]], axis=-1), reverse=True)
    returns = local + reach * following[:, None, :]
    return ops.reshape(returns, (-1, n))[:t]


def masked_mean(x, mask):
    return ops.sum(x * mask) / ops.maximum(ops.sum(mask), 1.0)


def standardize(x, mask):
    mean = masked_mean(x, mask)
    std = ops.sqrt(masked_mean(ops.square(x - mean), mask) + 1e-8)
    return (x - mean) / std


def mlp(inputs: int, outputs: int, hidden: int, name: str, out_scale: float) -> keras.Model:
    x = keras.Input((inputs,), name="obs")
    h = x
    for i in range(2):
        h = keras.layers.Dense(
            hidden, activation="tanh", kernel_initializer=keras.initializers.Orthogonal(2**0.5), name=f"hidden{i}"
        )(h)
    y = keras.layers.Dense(outputs, kernel_initializer=keras.initializers.Orthogonal(out_scale), name="out")(h)
    return keras.Model(x, y, name=name)


class Agent:
    """Policy and value networks, their update groups in one compiled step, and the compiled acting calls."""

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
        mode = "eager" if config.eager else ("xla" if config.jit else "graph")
        train_mode = "eager" if config.eager else ("xla" if config.jit_train else "graph")
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
        logits = self.policy(batch["obs"])
        # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits).
        u = keras.random.uniform(ops.shape(logits), minval=1e-7, maxval=1.0, seed=self.seed_gen)
        return ops.cast(ops.argmax(logits - ops.log(-ops.log(u)), axis=-1), "int32")

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
        logp_all = ops.log_softmax(self.policy(batch["obs"]), axis=-1)
        logp = ops.sum(ops.one_hot(batch["actions"], self.info.num_actions) * logp_all, axis=-1)
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


def evaluate(agent: Agent, config: Config, episodes: int, seed: int) -> list[float]:
    """Greedy returns of ``episodes`` episodes, one per environment of a vector env."""
    env, info = make_vector_env(config.env, episodes, config.vectorization)
    try:
        obs, _ = env.reset(seed=seed)
        totals = np.zeros(episodes)
        done = np.zeros(episodes, bool)
        while not done.all():
            actions = agent.greedy({"obs": np.asarray(obs, np.float32)})
            obs, rewards, terminated, truncated, _ = env.step(actions + info.action_start)
            totals += np.where(done, 0.0, rewards)
            done |= np.logical_or(terminated, truncated)
        return totals.tolist()
    finally:
        env.close()


def record_gif(agent: Agent, config: Config, path: Path, seed: int, frame_skip: int = 2) -> tuple[Path, float] | None:
    """One greedy episode rendered to an animated GIF; None (with a note) when rendering is unavailable."""
    import os

    import gymnasium as gym

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen; no display needed
    try:
        env = gym.make(config.env, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except (gym.error.Error, ImportError) as e:
        print(f"no GIF: rendering {config.env} failed ({' '.join(str(e).split())})")
        return None
    info_start = int(env.action_space.start)
    total, done, t = 0.0, False, 0
    while not done:
        action = int(agent.greedy({"obs": np.asarray(obs, np.float32)[None]})[0])
        obs, reward, terminated, truncated, _ = env.step(action + info_start)
        total += float(reward)
        done = terminated or truncated
        t += 1
        if t % frame_skip == 0 or done:
            frames.append(env.render())
    env.close()
    fps = env.metadata.get("render_fps", 50) / frame_skip
    return core.save_gif(frames, path, fps=fps), total


def train(config: Config) -> dict:
    """Train until solved or ``max_env_steps``; evaluate, save the GIF and summary; return the summary."""
    core.seed_everything(config.seed)
    env, info = make_vector_env(config.env, config.num_envs, config.vectorization)
    target = config.target_return if config.target_return is not None else info.reward_threshold
    window_rows = config.window or (min(info.max_episode_steps or 1000, 1000) + config.rollout_steps)
    agent = Agent(config, info, config.num_envs)
    print(f"stepping on {core.describe_device()}")
    print(
        f"{info.env_id}: {info.obs_dim} observations, {info.num_actions} actions, {config.num_envs} envs "
        f"({info.vectorization}, autoreset {info.autoreset_mode.value}), target mean return {target}"
    )

    out = Path(config.out) if config.out else None
    ckpt = core.Checkpointer(out, agent.checkpoint_objects()) if out else None
    env_steps = episodes = updates = 0
    recent: collections.deque[float] = collections.deque(maxlen=100)
    solved_at: dict | None = None
    bootstrap = {"on": True, "off": False}.get(config.bootstrap_truncated) if agent.can_bootstrap else False
    first_episodes = first_cut = 0  # for the auto decision
    elapsed_before = 0.0
    if config.resume:
        if not ckpt.exists():
            raise core.UsageError(f"--resume: no checkpoint at {ckpt.path}")
        meta = ckpt.load()
        env_steps, episodes, updates = meta["env_steps"], meta["episodes"], meta["updates"]
        recent.extend(meta["recent_returns"])
        solved_at, elapsed_before = meta["solved_at"], meta["train_seconds"]
        if bootstrap is None:
            bootstrap = meta.get("bootstrap_truncated")
        print(f"resumed from {ckpt.path} at {env_steps} env steps, {episodes} episodes")
    saved_at_updates = updates

    window = EpisodeWindow(config.num_envs, window_rows, info.obs_dim)
    # A resumed run cannot restore the environments' internal state: it restarts their episodes with a fresh seed.
    collector = Collector(env, info, window, agent.act, seed=config.seed + episodes)

    def meta() -> dict:
        return {
            "env_steps": env_steps,
            "episodes": episodes,
            "updates": updates,
            "recent_returns": list(recent),
            "solved_at": solved_at,
            "bootstrap_truncated": bootstrap,
            "train_seconds": elapsed_before + time.perf_counter() - start,
            "config": asdict(config),
        }

    log = core.RunLogger(config.out)
    bar = log.progress(
        config.max_env_steps,
        desc=info.env_id,
        unit="step",
        bar_keys=["charts/mean_return_100", "losses/policy", "losses/value"],
        initial=env_steps,
    )
    logs: dict[str, float] = {}
    interrupted = False
    start = time.perf_counter()
    try:
        with core.GracefulInterrupt() as stop:
            while env_steps < config.max_env_steps and solved_at is None and not stop.requested:
                window.make_room(config.rollout_steps)
                n, returns, lengths = collector.collect(config.rollout_steps)
                env_steps += n
                episodes += len(returns)
                recent.extend(returns)
                scalars: dict[str, float] = {}
                if returns:
                    scalars["charts/episode_return"] = float(np.mean(returns))
                    scalars["charts/episode_length"] = float(np.mean(lengths))
                if window.trainable():
                    if bootstrap is None:  # auto: decided once num_envs episodes have finished; off until then
                        finished, cut = window.finished_episodes()
                        first_episodes += finished
                        first_cut += cut
                        if first_episodes >= config.num_envs:
                            bootstrap = 2 * first_cut > first_episodes
                            bar.write(
                                f"--bootstrap-truncated auto: {first_cut} of the first {first_episodes} episodes "
                                f"were cut by the time limit -> {'on' if bootstrap else 'off'}"
                            )
                    for batch in window.batches(config.update_size, bool(bootstrap)):
                        raw = agent.step.train_step(batch)
                        core.assert_finite(raw, updates)
                        updates += 1
                    logs = {LOG_KEYS.get(k, k): v for k, v in raw.items()}  # of the last call
                    logs["charts/batch_transitions"] = float(window.trainable())
                    scalars.update(logs)
                    window.drop_finished()
                if recent:
                    scalars["charts/mean_return_100"] = float(np.mean(recent))
                if target is not None and len(recent) == 100 and np.mean(recent) >= target:
                    solved_at = {
                        "env_steps": env_steps,
                        "episodes": episodes,
                        "wall_seconds": elapsed_before + time.perf_counter() - start,
                    }
                log.scalars(env_steps, scalars)
                bar.update(n, {k: v for k, v in scalars.items() if k in bar.bar_keys})
                # Several train calls per rollout can step over a multiple: save once --checkpoint-every has passed.
                if ckpt and updates - saved_at_updates >= config.checkpoint_every:
                    ckpt.save(meta())
                    saved_at_updates = updates
            interrupted = stop.requested
    except core.NonFiniteLossError:
        bar.close()
        log.close()
        env.close()
        raise
    train_seconds = elapsed_before + time.perf_counter() - start
    bar.close()
    env.close()
    if ckpt:
        ckpt.save(meta())
    if solved_at:
        print(
            f"solved: mean return of the last 100 episodes {np.mean(recent):.1f} >= {target} after "
            f"{solved_at['env_steps']} env steps, {solved_at['episodes']} episodes, {solved_at['wall_seconds']:.2f} s"
        )
    elif interrupted:
        print(f"interrupted at {env_steps} env steps; saved {ckpt.path if ckpt else 'nothing (no --out)'}")
    else:
        print(f"not solved within {config.max_env_steps} env steps (mean of last 100: {_mean(recent)})")
    print(
        f"trained {train_seconds:.2f} s: {env_steps} env steps ({env_steps / max(train_seconds, 1e-9):.0f}/s), "
        f"{updates} updates, {episodes} episodes"
    )

    eval_returns: list[float] = []
    if config.eval_episodes and not interrupted:
        eval_returns = evaluate(agent, config, config.eval_episodes, seed=config.seed + 1_000_003)
        print(f"greedy evaluation over {len(eval_returns)} episodes: mean return {np.mean(eval_returns):.1f}")
    gif_path = None
    if config.gif and out and not interrupted:
        made = record_gif(agent, config, out / "episode.gif", seed=config.seed + 2_000_003)
        if made:
            gif_path = str(made[0])
            print(f"wrote {gif_path} (greedy episode, return {made[1]:.0f})")
            if config.gif_copy:
                Path(config.gif_copy).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(made[0], config.gif_copy)
                print(f"copied it to {config.gif_copy}")
    if eval_returns:
        log.scalars(env_steps, {"charts/eval_mean_return": float(np.mean(eval_returns))})
    log.close()

    summary = {
        "env_id": info.env_id,
        "solved": solved_at is not None,
        "env_steps_to_solve": solved_at["env_steps"] if solved_at else None,
        "episodes_to_solve": solved_at["episodes"] if solved_at else None,
        "wall_seconds_to_solve": solved_at["wall_seconds"] if solved_at else None,
        "env_steps": env_steps,
        "episodes": episodes,
        "updates": updates,
        "final_mean_return": _mean(recent),
        "eval_mean_return": _mean(eval_returns),
        "train_seconds": train_seconds,
        "env_steps_per_second": env_steps / max(train_seconds, 1e-9),
        "target_return": target,
        "interrupted": interrupted,
        "gif": gif_path,
        "bootstrap_truncated": bootstrap,
        "tracing_counts": {**agent.step.tracing_counts(), "sample": agent.sample.tracing_count()},
        "config": asdict(config),
    }
    if out:
        print(f"wrote {core.write_summary(out, summary)}")
    return summary


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def main(argv: list[str] | None = None) -> int:
    return core.run_main(train, Config, argv)


if __name__ == "__main__":
    sys.exit(main())
