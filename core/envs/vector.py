"""``DeviceVectorEnv``: a :class:`~core.envs.base.DeviceEnv` behind gymnasium's vector-env API, NumPy in and out.

For code written against gymnasium (``envs.reset(seed=...)``, ``envs.step(actions)``) and for tests that compare
with gymnasium. The spaces are gymnasium's own (``Discrete`` or ``Box``, batched). Box actions, shape
``(num_envs, action_dim)``, are rounded to float32, and may lie beyond the bounds (the env clips them where
gymnasium's does). Autoreset mode ``SAME_STEP``: the observation returned on the step an episode ends is already the
next episode's first one; ``infos["final_obs"]`` (an object array, ``None`` where no episode ended, mask
``infos["_final_obs"]``) holds the final observation, as gymnasium's ``SyncVectorEnv(autoreset_mode=SAME_STEP)``
does. Ended episodes also report ``infos["episode"] = {"r": returns, "l": lengths}`` with mask ``infos["_episode"]``
(the keys of gymnasium's ``RecordEpisodeStatistics``, without its wall-clock ``"t"``).

Each call runs the functional step eagerly through ``keras.ops`` (a few dozen small ops); compile the functional env
inside your own loop when speed matters.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import keras
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from keras import ops

from core.envs.base import DeviceEnv, make_device_env


class DeviceVectorEnv(gymnasium.vector.VectorEnv):
    """``num_envs`` copies of a device env as a gymnasium vector env (autoreset mode ``SAME_STEP``)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, env: str | DeviceEnv, num_envs: int, max_episode_steps: int | None = None) -> None:
        self.env = make_device_env(env, max_episode_steps) if isinstance(env, str) else env
        self.num_envs = int(num_envs)
        reference = gymnasium.make(self.env.env_id)
        self.single_observation_space = reference.observation_space
        self.single_action_space = reference.action_space
        reference.close()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.seed_generator: keras.random.SeedGenerator | None = None
        self.state: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"DeviceVectorEnv({self.env.env_id}, num_envs={self.num_envs})"

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Fresh episodes in every env; an int ``seed`` restarts the start-state generator (None: continue it)."""
        if seed is not None and not isinstance(seed, int | np.integer):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        super().reset(seed=None if seed is None else int(seed))
        if seed is not None or self.seed_generator is None:
            self.seed_generator = keras.random.SeedGenerator(None if seed is None else int(seed))
        self.state = self.env.reset(self.num_envs, self.seed_generator)
        return self._obs(self.state["physics"]), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One step of every env: ``(obs, rewards, terminations, truncations, infos)`` as NumPy arrays."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        self.state, transition = self.env.step(self.state, self._checked_actions(actions), self.seed_generator)
        tr = {k: ops.convert_to_numpy(v) for k, v in transition.items()}
        terminated = tr["terminated"] > 0.5
        truncated = tr["truncated"] > 0.5
        return tr["obs"], tr["reward"], terminated, truncated, self._infos(terminated | truncated, tr)

    def _checked_actions(self, actions: Any) -> Any:
        """The actions as a tensor, after the checks compiled code cannot make: int32 ``(N,)`` in range, or (Box)
        float32 ``(N, action_dim)``, finite; Box actions beyond the bounds pass (the env clips them, as gymnasium's)."""
        actions = np.asarray(actions)
        if not self.env.continuous:
            if actions.shape != (self.num_envs,) or not np.all((actions >= 0) & (actions < self.env.num_actions)):
                raise ValueError(
                    f"actions must be {self.num_envs} integers in [0, {self.env.num_actions}), got {actions!r}"
                )
            return ops.convert_to_tensor(actions, "int32")
        shape = (self.num_envs, self.env.action_dim)
        if actions.shape != shape or actions.dtype.kind not in "iuf" or not np.all(np.isfinite(actions)):
            raise ValueError(f"actions must be finite numbers of shape {shape}, got {actions!r}")
        return ops.convert_to_tensor(actions.astype(np.float32))

    def _infos(self, done: np.ndarray, tr: dict[str, np.ndarray]) -> dict[str, Any]:
        if not done.any():
            return {}
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(done):
            final_obs[i] = tr["next_obs"][i]
        return {
            "final_obs": final_obs,
            "_final_obs": done.copy(),
            "final_info": {},
            "_final_info": done.copy(),
            "episode": {"r": tr["episode_return"], "l": tr["episode_length"]},
            "_episode": done.copy(),
        }

    def _obs(self, physics: Any) -> np.ndarray:
        return ops.convert_to_numpy(self.env.observe(physics)).astype(np.float32)

    @property
    def physics(self) -> np.ndarray:
        """The ``(num_envs, state_dim)`` float32 physics state, as NumPy."""
        if self.state is None:
            raise RuntimeError("call reset() first")
        return ops.convert_to_numpy(self.state["physics"])

    def set_physics(
        self, physics: np.ndarray, t: np.ndarray | None = None, episode_return: np.ndarray | None = None
    ) -> np.ndarray:
        """Overwrite the physics state (rounded to float32), and optionally the step counts and running returns.

        Returns the matching observations. For starting from another simulator's state (tests set gymnasium's).
        """
        if self.state is None:
            raise RuntimeError("call reset() before set_physics()")
        physics = np.asarray(physics, dtype=np.float32)
        if physics.shape != (self.num_envs, self.env.state_dim):
            raise ValueError(f"physics must have shape {(self.num_envs, self.env.state_dim)}, got {physics.shape}")
        self.state = dict(self.state, physics=ops.convert_to_tensor(physics))
        if t is not None:
            self.state["t"] = ops.convert_to_tensor(np.broadcast_to(np.asarray(t, np.int32), (self.num_envs,)))
        if episode_return is not None:
            er = np.broadcast_to(np.asarray(episode_return, np.float32), (self.num_envs,))
            self.state["episode_return"] = ops.convert_to_tensor(er)
        return self._obs(self.state["physics"])
