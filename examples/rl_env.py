"""The host side of the policy-gradient programs: gymnasium vector environments, the collectors that step them
(PPO's fixed-length rollouts, REINFORCE's per-environment episode window), and the window itself.

Kept apart from the compiled math so it can be tested with scripted environments.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

import core


@dataclass
class EnvInfo:
    """What the agent needs to know about an environment."""

    env_id: str
    obs_dim: int
    num_actions: int  # Discrete: how many actions; Box: 0
    action_start: int
    reward_threshold: float | None
    max_episode_steps: int | None
    autoreset_mode: AutoresetMode
    vectorization: str
    action_dim: int = 0  # Box: components of an action; Discrete: 0
    action_low: np.ndarray | None = None  # Box: the bounds, per component (finite: checked)
    action_high: np.ndarray | None = None

    @property
    def continuous(self) -> bool:
        return self.action_dim > 0

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """The policy's actions as the environment takes them: Discrete indices shifted to the space's start; Box
        vectors clipped to the bounds (the policy's Gaussian samples beyond them; only the environment is clipped)."""
        if self.continuous:
            return np.clip(actions, self.action_low, self.action_high).astype(np.float32)
        return actions + self.action_start if self.action_start else actions


def _one_line(e: object) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id``, or a UsageError (one line, exit 2)."""
    try:
        return gym.spec(env_id)
    except gym.error.Error as e:
        raise core.UsageError(f"--env {env_id!r}: {_one_line(e)}") from None


SUPPORTED = "a flat Box observation space and a Discrete or a flat Box action space"
# Optional extras that bring an environment family's simulator: named when --env needs one that is missing.
EXTRAS = {"gymnasium.envs.mujoco": "mujoco", "gymnasium.envs.box2d": "box2d"}


def check_spaces(env_id: str, obs_space: gym.Space, act_space: gym.Space) -> None:
    """One line naming what is supported for any other space (Dict, MultiDiscrete, images), and for Box actions
    without finite bounds, which the Gaussian policy's actions are clipped to."""
    box_actions = isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1
    flat_obs = isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1
    if not (flat_obs and (isinstance(act_space, gym.spaces.Discrete) or box_actions)):
        raise core.UsageError(
            f"--env {env_id!r} has observation space {_one_line(obs_space)} and action space "
            f"{_one_line(act_space)}; supported: {SUPPORTED}"
        )
    if box_actions and not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
        raise core.UsageError(
            f"--env {env_id!r} has a Box action space with infinite bounds ({_one_line(act_space)}); the Gaussian "
            "policy's actions are clipped to the bounds, which must be finite"
        )


def missing_extra(env_id: str, spec: gym.envs.registration.EnvSpec, e: BaseException) -> core.UsageError:
    """A failure to make ``env_id``, as one line; an environment of an optional extra names the install."""
    entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
    extra = next((name for module, name in EXTRAS.items() if entry.startswith(module)), None)
    if extra and isinstance(e, gym.error.DependencyNotInstalled | ImportError):
        return core.UsageError(f'--env {env_id!r} needs the {extra} extra: pip install -e ".[{extra}]"')
    return core.UsageError(f"--env {env_id!r} cannot be made here: {_one_line(e)}")


def make_vector_env(
    env_id: str, num_envs: int, vectorization: str = "auto", **env_kwargs: Any
) -> tuple[gym.vector.VectorEnv, EnvInfo]:
    """``num_envs`` copies of ``env_id`` as one vector env.

    ``vectorization``: "vector" (gymnasium's numpy-vectorised implementation, where the
    environment ships one), "sync" (SyncVectorEnv of single envs) or "auto" (vector when available).
    """
    spec = env_spec(env_id)
    if vectorization == "auto":
        vectorization = "vector" if spec.vector_entry_point is not None else "sync"
    if vectorization == "vector" and spec.vector_entry_point is None:
        raise core.UsageError(
            f"--vectorization vector: {env_id!r} has no numpy-vectorised implementation; use sync or auto"
        )
    mode = {"vector": "vector_entry_point", "sync": "sync"}[vectorization]
    try:
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **env_kwargs)
    except (gym.error.Error, ImportError) as e:  # missing optional dependencies (box2d, flax, mujoco) and the like
        raise missing_extra(env_id, spec, e) from None
    except (TypeError, ValueError, AttributeError) as e:  # an entry point that rejects its arguments
        raise core.UsageError(f"--env {env_id!r} cannot be made here: {_one_line(e)}") from None
    try:
        check_spaces(env_id, env.single_observation_space, env.single_action_space)
    except core.UsageError:
        env.close()
        raise
    autoreset = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
    if autoreset == AutoresetMode.DISABLED:
        env.close()
        raise core.UsageError(f"--env {env_id!r}: vector environments with autoreset disabled are not supported")
    space = env.single_action_space
    box = isinstance(space, gym.spaces.Box)
    info = EnvInfo(
        env_id=env_id,
        obs_dim=int(env.single_observation_space.shape[0]),
        num_actions=0 if box else int(space.n),
        action_start=0 if box else int(space.start),
        reward_threshold=spec.reward_threshold,
        max_episode_steps=spec.max_episode_steps,
        autoreset_mode=autoreset,
        vectorization=vectorization,
        action_dim=int(space.shape[0]) if box else 0,
        action_low=np.asarray(space.low, np.float32) if box else None,
        action_high=np.asarray(space.high, np.float32) if box else None,
    )
    return env, info


def box_actions(env_id: str) -> bool:
    """Whether ``env_id`` has a Box action space (one copy made and closed; its errors as make_vector_env's)."""
    env, info = make_vector_env(env_id, 1, "sync")
    env.close()
    return info.continuous


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


class EpisodeWindow:
    """Each environment's transitions, one column per environment, kept until their episode ends.

    Rows ``[0, done_upto[i])`` of column ``i`` hold finished episodes (trainable: every
    reward-to-go is complete); rows ``[done_upto[i], fill[i])`` the episode still running.
    ``ends[t, i] = 1`` marks the last transition of an episode, so a reverse scan over a
    column restarts its return there and nothing leaks across an episode boundary.
    """

    def __init__(self, num_envs: int, window: int, obs_dim: int):
        self.num_envs, self.window, self.obs_dim = num_envs, window, obs_dim
        self.obs = np.zeros((window, num_envs, obs_dim), np.float32)
        self.actions = np.zeros((window, num_envs), np.int32)
        self.rewards = np.zeros((window, num_envs), np.float32)
        self.ends = np.zeros((window, num_envs), np.float32)
        # Episodes cut by a time limit: the observation after the last transition, to bootstrap its value.
        self.truncated = np.zeros((window, num_envs), bool)
        self.final_obs = np.zeros((window, num_envs, obs_dim), np.float32)
        self.fill = np.zeros(num_envs, np.int64)
        self.done_upto = np.zeros(num_envs, np.int64)
        self._cols = np.arange(num_envs)

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        ends: np.ndarray,
        valid: np.ndarray | None,
        truncated: np.ndarray | None = None,
        final_obs: np.ndarray | None = None,
    ):
        """Append one transition per environment (where ``valid``; autoreset steps are not transitions).

        ``truncated`` marks episodes cut by a time limit (not terminated); ``final_obs`` holds
        their next observation, whose value the returns may bootstrap.
        """
        cols = self._cols if valid is None else self._cols[valid]
        rows = self.fill[cols]
        if rows.size and rows.max() >= self.window:
            raise RuntimeError("episode window overflow: call make_room() before collecting")
        self.obs[rows, cols] = obs[cols]
        self.actions[rows, cols] = actions[cols]
        self.rewards[rows, cols] = rewards[cols]
        e = ends[cols]
        self.ends[rows, cols] = e
        if truncated is not None:
            tr = truncated[cols] & e.astype(bool)
            self.truncated[rows, cols] = tr
            if tr.any():
                self.final_obs[rows[tr], cols[tr]] = final_obs[cols[tr]]
        else:
            self.truncated[rows, cols] = False
        self.fill[cols] = rows + 1
        ended = cols[e.astype(bool)]
        self.done_upto[ended] = self.fill[ended]

    def make_room(self, steps: int) -> int:
        """Ensure every column takes ``steps`` more rows: an episode longer than the window is split
        (its last stored transition becomes an episode end). Returns how many episodes were split."""
        full = np.nonzero(self.fill + steps > self.window)[0]
        full = full[self.fill[full] > self.done_upto[full]]
        if full.size:
            self.ends[self.fill[full] - 1, full] = 1.0
            self.done_upto[full] = self.fill[full]
        return int(full.size)

    def trainable(self) -> int:
        """Transitions of finished episodes."""
        return int(self.done_upto.sum())

    def finished_episodes(self) -> tuple[int, int]:
        """(episodes, of which cut by a time limit) among the finished transitions."""
        mask = np.arange(self.window)[:, None] < self.done_upto[None, :]
        return int((self.ends.astype(bool) & mask).sum()), int((self.truncated & mask).sum())

    def batches(self, update_size: int = 1024, bootstrap: bool = True) -> list[dict[str, np.ndarray]]:
        """The finished episodes as train-step batches of one fixed shape, in two layouts.

        Time layout, always the whole window (``window`` rows x envs), for the returns:
        ``rewards`` and ``ends`` (rows past a column's finished episodes are episode ends with
        reward 0, so nothing leaks). Flat layout for the networks: ``obs``, ``actions``,
        ``index`` (position in the flattened time layout) and ``weight`` (1, or 0 for padding),
        ``update_size`` items. More finished transitions than that are split over several
        batches, every k-th transition in each, so each batch spans all episodes. Time-limit
        truncations: ``trunc_index`` (flat time-layout position), ``trunc_obs`` (the observation
        after it) and ``trunc_weight`` (0 for padding; all 0 without ``bootstrap``), ``num_envs``
        items or the next power of two above. Shapes never depend on the data (beyond rare
        truncation counts): a compiler that specialises on shapes (``jax.jit``) compiles once.
        """
        rows = self.window
        mask = np.arange(rows)[:, None] < self.done_upto[None, :]
        index = np.flatnonzero(mask)
        cut = np.flatnonzero(mask & self.truncated) if bootstrap else np.zeros(0, np.int64)
        k = cut.size
        tsize = _pow2_at_least(max(k, self.num_envs))
        trunc_index = np.zeros(tsize, np.int32)
        trunc_index[:k] = cut
        trunc_weight = np.zeros(tsize, np.float32)
        trunc_weight[:k] = 1.0
        common = {
            "rewards": np.where(mask, self.rewards, 0.0).astype(np.float32),
            "ends": np.where(mask, self.ends, 1.0).astype(np.float32),
            "trunc_index": trunc_index,
            "trunc_obs": self.final_obs.reshape(-1, self.obs_dim)[trunc_index],
            "trunc_weight": trunc_weight,
        }
        obs = self.obs.reshape(rows * self.num_envs, self.obs_dim)
        actions = self.actions.reshape(-1)
        parts = max(1, -(-index.size // update_size))
        out = []
        for j in range(parts):
            part = index[j::parts]
            m = part.size
            padded = np.zeros(update_size, np.int32)
            padded[:m] = part
            weight = np.zeros(update_size, np.float32)
            weight[:m] = 1.0
            out.append({**common, "obs": obs[padded], "actions": actions[padded], "index": padded, "weight": weight})
        return out

    def drop_finished(self) -> None:
        """Forget the finished episodes; move each running episode to the top of its column.

        Only the rows that hold running episodes are moved (``max(fill - done_upto)`` rows, usually far
        fewer than the window); rows past a column's fill are stale and only their rewards, ends and
        truncation flags are cleared (everything else is read only below ``done_upto``).
        """
        shift = self.done_upto
        if not shift.any():
            return
        keep = self.fill - shift
        top = int(self.fill.max())
        rows = int(keep.max())
        if rows:
            src = np.minimum(np.arange(rows)[:, None] + shift[None, :], self.window - 1)
            cols = self._cols[None, :]
            for name in ("actions", "rewards", "ends", "truncated", "obs", "final_obs"):
                arr = getattr(self, name)
                arr[:rows] = arr[src, cols]  # fancy indexing copies before the write
        self.fill = keep
        self.done_upto = np.zeros_like(shift)
        stale = np.arange(top)[:, None] >= keep[None, :]
        self.rewards[:top][stale] = 0.0
        self.ends[:top][stale] = 0.0
        self.truncated[:top][stale] = False

    def state_dict(self) -> dict[str, Any]:
        return {"fill": self.fill.tolist(), "done_upto": self.done_upto.tolist()}


class Collector:
    """Steps a vector env with a batched action function and fills an :class:`EpisodeWindow`.

    Handles gymnasium 1.x autoreset: in NEXT_STEP mode the step after an episode's end
    only resets that environment (its action is ignored, its reward 0), so it is not a
    transition and is not stored; in SAME_STEP mode every step is a transition.
    Episode returns and lengths are counted here (what RecordEpisodeStatistics reports).
    """

    def __init__(self, env: gym.vector.VectorEnv, info: EnvInfo, window: EpisodeWindow, act, seed: int | None):
        self.env, self.info, self.window, self.act = env, info, window, act
        self.obs, _ = env.reset(seed=seed)
        self.obs = np.asarray(self.obs, np.float32)
        n = env.num_envs
        self.pending_reset = np.zeros(n, bool)
        self.next_step = info.autoreset_mode == AutoresetMode.NEXT_STEP
        self.ep_return = np.zeros(n, np.float64)
        self.ep_length = np.zeros(n, np.int64)

    def collect(self, steps: int) -> tuple[int, list[float], list[int]]:
        """Run ``steps`` vector steps; return (transitions stored, finished returns, finished lengths)."""
        returns: list[float] = []
        lengths: list[int] = []
        transitions = 0
        start = self.info.action_start
        for _ in range(steps):
            actions = self.act(self.obs)
            obs, rewards, terminated, truncated, step_info = self.env.step(actions + start if start else actions)
            rewards = np.asarray(rewards, np.float32)
            ends = np.logical_or(terminated, truncated)
            if self.next_step and self.pending_reset.any():
                valid = ~self.pending_reset
            else:
                valid = None
            cut = np.logical_and(truncated, ~np.asarray(terminated, bool))
            final_obs = obs
            if cut.any() and not self.next_step and "final_obs" in step_info:  # SAME_STEP: obs is already reset
                final_obs = np.array(obs, np.float32, copy=True)
                for i in np.flatnonzero(cut):
                    final_obs[i] = step_info["final_obs"][i]
            self.window.add(self.obs, actions, rewards, ends.astype(np.float32), valid, cut, final_obs)
            if valid is None:
                self.ep_return += rewards
                self.ep_length += 1
                transitions += len(rewards)
                finished = ends
            else:
                self.ep_return[valid] += rewards[valid]
                self.ep_length[valid] += 1
                transitions += int(valid.sum())
                finished = ends & valid
            if finished.any():
                returns.extend(self.ep_return[finished].tolist())
                lengths.extend(self.ep_length[finished].tolist())
                self.ep_return[finished] = 0.0
                self.ep_length[finished] = 0
            if self.next_step:
                self.pending_reset = finished
            self.obs = np.asarray(obs, np.float32)
        return transitions, returns, lengths


def make_same_step_env(env_id: str, num_envs: int) -> tuple[gym.vector.VectorEnv, EnvInfo]:
    """``num_envs`` copies of ``env_id`` whose autoreset happens in the step that ends an episode (SAME_STEP):
    every step is a transition, and ``infos["final_obs"]`` holds the last observation of an ended episode."""
    return make_vector_env(env_id, num_envs, "sync", vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})


class RolloutCollector:
    """Fixed-length rollouts (T steps of N environments) from a SAME_STEP vector env, as PPO's train inputs.

    ``next_obs`` is the observation after each step before any reset: for an ended episode its final
    observation, which a time-limit truncation bootstraps from. Episode returns and lengths are counted here.
    """

    def __init__(self, env: gym.vector.VectorEnv, info: EnvInfo, act, seed: int | None):
        self.env, self.info, self.act = env, info, act
        obs, _ = env.reset(seed=seed)
        self.obs = np.asarray(obs, np.float32)
        self.ep_return = np.zeros(env.num_envs, np.float64)
        self.ep_length = np.zeros(env.num_envs, np.int64)

    def collect(self, steps: int) -> tuple[dict[str, np.ndarray], list[float], list[int]]:
        """One rollout: (batch of (T, N, ...) arrays, finished episodes' returns, their lengths)."""
        keys = ("obs", "actions", "rewards", "terminated", "truncated", "next_obs")
        rows: dict[str, list] = {k: [] for k in keys}
        returns: list[float] = []
        lengths: list[int] = []
        for _ in range(steps):
            # As sampled (Box: unclipped, what the log-probability is of); the environment gets them clipped.
            actions = np.asarray(self.act(self.obs), np.float32 if self.info.continuous else np.int32)
            obs, rewards, terminated, truncated, infos = self.env.step(self.info.to_env(actions))
            obs = np.asarray(obs, np.float32)
            ended = np.logical_or(terminated, truncated)
            next_obs = obs.copy()
            for i in np.flatnonzero(ended):
                next_obs[i] = infos["final_obs"][i]
            for key, value in zip(keys, (self.obs, actions, rewards, terminated, truncated, next_obs)):
                rows[key].append(value)
            self.ep_return += rewards
            self.ep_length += 1
            returns.extend(self.ep_return[ended].tolist())
            lengths.extend(self.ep_length[ended].tolist())
            self.ep_return[ended] = 0.0
            self.ep_length[ended] = 0
            self.obs = obs
        batch = {k: np.stack(v) for k, v in rows.items()}
        action_type = np.float32 if self.info.continuous else np.int32
        batch = {k: v.astype(action_type if k == "actions" else np.float32) for k, v in batch.items()}
        return batch, returns, lengths


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("examples.rl_env"))
