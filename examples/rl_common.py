"""What both policy-gradient programs' agents use: the networks, sampling, evaluation and the GIF on gymnasium."""

from __future__ import annotations

import core  # before Keras, which it imports with TensorFlow's start-up log hidden (`python -m` of this module too)

# isort: split
import os
import sys
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np
from keras import ops

from examples.rl_env import make_vector_env


def mlp(inputs: int, outputs: int, hidden: int, name: str, out_scale: float) -> keras.Model:
    x = keras.Input((inputs,), name="obs")
    h = x
    for i in range(2):
        h = keras.layers.Dense(
            hidden, activation="tanh", kernel_initializer=keras.initializers.Orthogonal(2**0.5), name=f"hidden{i}"
        )(h)
    y = keras.layers.Dense(outputs, kernel_initializer=keras.initializers.Orthogonal(out_scale), name="out")(h)
    return keras.Model(x, y, name=name)


def sample_actions(logits, seed):
    """One action per row of ``logits``, drawn from softmax(logits) by Gumbel-max: argmax(logits + Gumbel noise)."""
    u = keras.random.uniform(ops.shape(logits), minval=1e-7, maxval=1.0, seed=seed)
    return ops.cast(ops.argmax(logits - ops.log(-ops.log(u)), axis=-1), "int32")


def log_probs(logits, actions):
    """log pi(action | obs) of each row."""
    logp_all = ops.log_softmax(logits, axis=-1)
    return ops.sum(ops.one_hot(actions, ops.shape(logits)[-1]) * logp_all, axis=-1)


def evaluate(policy, env_id: str, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` episodes, one per environment of a vector env, acting with ``policy`` (the agent's
    compiled ``greedy`` or ``sample`` call)."""
    env, info = make_vector_env(env_id, episodes, "sync")
    try:
        obs, _ = env.reset(seed=seed)
        totals = np.zeros(episodes)
        done = np.zeros(episodes, bool)
        while not done.all():
            actions = policy({"obs": np.asarray(obs, np.float32)})
            obs, rewards, terminated, truncated, _ = env.step(info.to_env(actions))
            totals += np.where(done, 0.0, rewards)
            done |= np.logical_or(terminated, truncated)
        return totals.tolist()
    finally:
        env.close()


def record_gif(agent, env_id: str, path: Path, seed: int, frame_skip: int = 2) -> tuple[Path, float] | None:
    """One greedy episode rendered to an animated GIF; None (with a note) when rendering is unavailable."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen; no display needed
    try:
        env = gym.make(env_id, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except (gym.error.Error, ImportError) as e:
        print(f"no GIF: rendering {env_id} failed ({' '.join(str(e).split())})")
        return None
    space = env.action_space
    total, done, t = 0.0, False, 0
    while not done:
        action = np.asarray(agent.greedy({"obs": np.asarray(obs, np.float32)[None]})[0])
        if isinstance(space, gym.spaces.Box):  # the mean action, clipped to the bounds as in training
            action = np.clip(action, space.low, space.high).astype(space.dtype)
        else:
            action = int(action) + int(space.start)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
        t += 1
        if t % frame_skip == 0 or done:
            frames.append(env.render())
    env.close()
    fps = env.metadata.get("render_fps", 50) / frame_skip
    return core.save_gif(frames, path, fps=fps), total


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("examples.rl_common"))
