"""Batched, stateless environments in ``keras.ops``: the base class, autoreset, episode statistics, the registry.

A :class:`DeviceEnv` holds no tensors: ``reset`` and ``step`` take and return a *state dict*, so a step runs inside
``tf.function`` / ``tf.while_loop`` (also with ``jit_compile=True``) and inside ``jax.jit`` / ``lax.scan``. Nothing
branches on data (episode ends are ``ops.where``), and every shape is fixed by the number of environments ``N``.

State dict (all tensors, leading axis ``N``):

- ``physics``: ``(N, state_dim)`` float32, the physics state of the current episode;
- ``t``: ``(N,)`` int32, steps taken in the current episode;
- ``episode_return``: ``(N,)`` float32, reward summed over the current episode.

``step(state, actions, seed)`` returns ``(new_state, transition)``. The autoreset happens *inside* the step: an
environment whose episode ended (terminated, or truncated at ``max_episode_steps``) starts a fresh episode in
``new_state``, from a start state drawn with ``seed``. The transition (all ``(N, ...)`` tensors):

- ``next_obs``: the observation after the step, *before* any reset (the final observation of an ended episode:
  bootstrap from it);
- ``obs``: the observation after the autoreset, ``observe(new_state["physics"])``; equals ``next_obs`` where no
  episode ended. This is what the policy acts on next, and what gymnasium's ``SAME_STEP`` vector envs return;
- ``reward``: float32;
- ``terminated``, ``truncated``: float32 0.0 / 1.0 (float, not bool, so that ``reward + gamma * (1 - terminated) * v``
  needs no casts). As gymnasium's ``TimeLimit`` does, ``truncated`` is 1 on the ``max_episode_steps``-th step of an
  episode whether or not it also terminated there;
- ``episode_return`` (float32), ``episode_length`` (int32): of the episode that ended at this step, 0 where none did.

``seed`` is anything ``keras.random.uniform(seed=...)`` accepts; in practice a ``keras.random.SeedGenerator`` owned by
the caller (its state is a Keras variable, so it checkpoints with the run). Each ``reset`` and each ``step`` draws
from it exactly once.

Actions: for a discrete env (``action_dim == 0``), integers in ``[0, num_actions)``, shape ``(N,)``; for a Box env
(``continuous``: ``action_dim > 0``, ``num_actions == 0``), float32 vectors, shape ``(N, action_dim)``, whose
gymnasium bounds are ``[action_low, action_high]`` in every component. A Box env accepts actions beyond the bounds
and clips them itself, where gymnasium's env does (and uses the raw action where gymnasium's does, e.g. in
MountainCarContinuous' reward). Nothing is checked inside compiled code (``DeviceVectorEnv`` checks actions on the
host: range for discrete, shape and finiteness for Box).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

State = dict[str, Any]

_REGISTRY: dict[str, type[DeviceEnv]] = {}


class DeviceEnv:
    """A batch of ``N`` copies of one environment, stepped as pure functions of a state dict (see module doc)."""

    env_id: str = ""
    obs_dim: int = 0
    num_actions: int = 0
    # Box actions: vectors of action_dim floats within [action_low, action_high]; action_dim 0 means discrete.
    action_dim: int = 0
    action_low: float | None = None
    action_high: float | None = None
    max_episode_steps: int = 0
    reward_threshold: float | None = None
    state_dim: int = 0

    def __init__(self, max_episode_steps: int | None = None) -> None:
        if max_episode_steps is not None:
            if max_episode_steps < 1:
                raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
            self.max_episode_steps = int(max_episode_steps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id!r}, max_episode_steps={self.max_episode_steps})"

    @property
    def continuous(self) -> bool:
        """Whether actions are Box vectors ``(N, action_dim)`` float32 rather than integers ``(N,)``."""
        return self.action_dim > 0

    # Subclasses implement these two (and observe, unless the observation is the physics state itself).
    def _sample_physics(self, n: Any, seed: Any) -> Any:
        """``(n, state_dim)`` float32 start states, drawn with one ``keras.random`` call."""
        raise NotImplementedError

    def _dynamics(self, physics: Any, actions: Any) -> tuple[Any, Any, Any]:
        """One step of every environment: ``(physics', reward (N,) float32, terminated (N,) bool)``."""
        raise NotImplementedError

    def observe(self, physics: Any) -> Any:
        """``(N, obs_dim)`` float32 observations of ``(N, state_dim)`` physics states."""
        return ops.cast(physics, "float32")

    def reset(self, num_envs: int, seed: Any) -> State:
        """The state dict of ``num_envs`` fresh episodes."""
        physics = self._sample_physics(num_envs, seed)
        return {
            "physics": physics,
            "t": ops.zeros((num_envs,), dtype="int32"),
            "episode_return": ops.zeros((num_envs,), dtype="float32"),
        }

    def step(self, state: State, actions: Any, seed: Any) -> tuple[State, dict[str, Any]]:
        """Step every environment once, autoresetting ended episodes: ``(new_state, transition)`` (see module doc)."""
        physics = ops.cast(state["physics"], "float32")
        next_physics, reward, terminated = self._dynamics(physics, actions)
        t = ops.cast(state["t"], "int32") + 1
        truncated = ops.greater_equal(t, self.max_episode_steps)
        done = ops.logical_or(terminated, truncated)
        episode_return = ops.cast(state["episode_return"], "float32") + reward

        # A fresh start state for every environment, every step: the draw's shape must not depend on the data.
        fresh = self._sample_physics(ops.shape(physics)[0], seed)
        new_physics = ops.where(done[:, None], fresh, next_physics)
        zero_f = ops.zeros_like(episode_return)
        zero_i = ops.zeros_like(t)
        new_state = {
            "physics": new_physics,
            "t": ops.where(done, zero_i, t),
            "episode_return": ops.where(done, zero_f, episode_return),
        }
        transition = {
            "next_obs": self.observe(next_physics),
            "obs": self.observe(new_physics),
            "reward": reward,
            "terminated": ops.cast(terminated, "float32"),
            "truncated": ops.cast(truncated, "float32"),
            "episode_return": ops.where(done, episode_return, zero_f),
            "episode_length": ops.where(done, t, zero_i),
        }
        return new_state, transition


def uniform(shape: Any, low: float, high: float, seed: Any) -> Any:
    """float32 uniform in ``[low, high)`` from 24 random bits: the same numbers eager, in graphs and under XLA.

    TensorFlow's XLA kernel for ``stateless_uniform`` floats yields other numbers than its eager kernel for the same
    seed, while its integer draws agree; building the floats from integers keeps compiled and eager runs identical.
    """
    bits = keras.random.randint(shape, 0, 1 << 24, dtype="int32", seed=seed)
    return low + (high - low) * (ops.cast(bits, "float32") * (1.0 / (1 << 24)))


def register(cls: type[DeviceEnv]) -> type[DeviceEnv]:
    """Class decorator: make ``cls`` available to :func:`make_device_env` under ``cls.env_id``."""
    if not cls.env_id or cls.env_id in _REGISTRY:
        raise ValueError(f"cannot register {cls.__name__}: env_id {cls.env_id!r} is empty or taken")
    _REGISTRY[cls.env_id] = cls
    return cls


def registered_ids() -> tuple[str, ...]:
    """The ids :func:`make_device_env` knows, in registration order."""
    return tuple(_REGISTRY)


def make_device_env(env_id: str, max_episode_steps: int | None = None) -> DeviceEnv:
    """The device env registered as ``env_id`` (gymnasium's id, e.g. ``"CartPole-v1"``).

    ``max_episode_steps`` overrides the time limit (default: gymnasium's). An unknown id raises ``ValueError``
    naming the ids that exist.
    """
    if env_id not in _REGISTRY:
        raise ValueError(f"no device env {env_id!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[env_id](max_episode_steps=max_episode_steps)
