"""MountainCar-v0 as a batched :class:`~core.envs.base.DeviceEnv`: gymnasium's ``MountainCarEnv`` in ``keras.ops``.

Same constants and update (velocity, clipped to +-0.07, then position, clipped to [-1.2, 0.6], velocity zeroed at
the left wall when still heading left), observation (the physics state ``(position, velocity)``), reward (-1 on
every step), termination (``position >= 0.5`` and ``velocity >= 0``), time limit (200) and start states (position
uniform in ``[-0.6, -0.4)``, velocity 0; other random numbers than gymnasium's, the same distribution).

Float32: gymnasium keeps the state in float64; here it is float32. Stepped once from the same state (rounded to
float32), the next observation agrees within 1e-5 absolute and relative (measured: one float32 rounding, at most
6e-8 on the position). Rewards, truncation and termination agree exactly except for a position within about one
ulp (6e-8) of the goal or the wall. The dynamics are not chaotic: replaying the same actions over whole 200-step
episodes, float32 stays within 1e-4 of float64 (measured in tests/test_envs.py).
"""

from __future__ import annotations

from typing import Any

from keras import ops

from core.envs.base import DeviceEnv, register, uniform


@register
class MountainCar(DeviceEnv):
    """N cars in the valley; actions 0 / 1 / 2 accelerate left / not at all / right, shape ``(N,)``."""

    env_id = "MountainCar-v0"
    obs_dim = 2
    num_actions = 3
    max_episode_steps = 200
    reward_threshold = -110.0
    state_dim = 2

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    goal_velocity = 0.0
    force = 0.001
    gravity = 0.0025
    reset_low, reset_high = -0.6, -0.4

    def _sample_physics(self, n: Any, seed: Any) -> Any:
        position = uniform((n,), self.reset_low, self.reset_high, seed)
        return ops.stack([position, ops.zeros_like(position)], axis=1)

    def _dynamics(self, physics: Any, actions: Any) -> tuple[Any, Any, Any]:
        position, velocity = physics[:, 0], physics[:, 1]
        velocity = (
            velocity + (ops.cast(actions, "float32") - 1.0) * self.force + ops.cos(3 * position) * (-self.gravity)
        )
        velocity = ops.clip(velocity, -self.max_speed, self.max_speed)
        position = ops.clip(position + velocity, self.min_position, self.max_position)
        at_wall = ops.logical_and(ops.equal(position, self.min_position), ops.less(velocity, 0.0))
        velocity = ops.where(at_wall, ops.zeros_like(velocity), velocity)
        terminated = ops.logical_and(
            ops.greater_equal(position, self.goal_position), ops.greater_equal(velocity, self.goal_velocity)
        )
        reward = -ops.ones_like(position)
        return ops.stack([position, velocity], axis=1), reward, terminated
