"""MountainCarContinuous-v0 as a batched :class:`~core.envs.base.DeviceEnv`: gymnasium's
``Continuous_MountainCarEnv`` in ``keras.ops``.

Box actions: forces, shape ``(N, 1)``. Same constants and update (``force = clip(action, -1, 1)``; velocity
``+= force * 0.0015 - 0.0025 cos(3 position)``, clipped to +-0.07; position ``+= velocity``, clipped to
``[-1.2, 0.6]``; velocity zeroed at the left wall when still heading left), observation (the physics state
``(position, velocity)``), termination (``position >= 0.45`` and ``velocity >= 0``), reward (100 on the terminating
step, minus ``0.1 * action^2`` on every step), time limit (999), ``reward_threshold`` (90.0) and start states
(position uniform in ``[-0.6, -0.4)``, velocity 0; other random numbers than gymnasium's, the same distribution).
The action cost uses the raw action, as gymnasium's ``reward -= math.pow(action[0], 2) * 0.1`` does: a push beyond
the bounds costs more and moves the car no harder.

Float32: gymnasium stores the state as float32 after every step, and under NumPy 2's promotion rules most of its
arithmetic is float32 too (``cos`` and an episode's first step are float64). Stepped once from the same
state, the next observation agrees within 1e-7 absolute (one float32 rounding; measured over 12,000 steps from
episodes and from states all over the state box, either backend: at most 6e-8). Termination and truncation agree
exactly except for a position within about one ulp (6e-8) of the goal (the closest in those records: 3.6e-4). The
goal bonus lands on exactly the same steps; the action cost, which gymnasium computes in float64 and rounds once,
agrees within 1 float32 ulp (1.2e-7 relative; a fifth of the steps differ by that ulp). Whole episodes pushing along
the velocity to the goal, replayed, stay within 2e-6 and terminate on the same step (64 episodes, either backend).
The left wall is a discontinuity, though: a rounding that decides whether the car touches it (velocity zeroed) or
stops one ulp short changes the velocity by its whole value, so under random forces that bang into the wall replayed
episodes part after a while (measured: within 1e-4 for >= 802 of 999 steps over 64 episodes, up to 5e-2 after).
"""

from __future__ import annotations

from typing import Any

from keras import ops

from core.envs.base import DeviceEnv, register, uniform


@register
class MountainCarContinuous(DeviceEnv):
    """N cars in the valley; actions: forces, shape ``(N, 1)``, clipped to ``[-1, 1]`` (the reward's cost is not)."""

    env_id = "MountainCarContinuous-v0"
    obs_dim = 2
    action_dim = 1
    action_low, action_high = -1.0, 1.0
    max_episode_steps = 999
    reward_threshold = 90.0
    state_dim = 2

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.45
    goal_velocity = 0.0
    power = 0.0015
    gravity = 0.0025
    reset_low, reset_high = -0.6, -0.4

    def _sample_physics(self, n: Any, seed: Any) -> Any:
        position = uniform((n,), self.reset_low, self.reset_high, seed)
        return ops.stack([position, ops.zeros_like(position)], axis=1)

    def _dynamics(self, physics: Any, actions: Any) -> tuple[Any, Any, Any]:
        position, velocity = physics[:, 0], physics[:, 1]
        action = ops.cast(actions, "float32")[:, 0]
        force = ops.clip(action, self.action_low, self.action_high)
        velocity = velocity + (force * self.power - self.gravity * ops.cos(3 * position))
        velocity = ops.clip(velocity, -self.max_speed, self.max_speed)
        position = ops.clip(position + velocity, self.min_position, self.max_position)
        at_wall = ops.logical_and(ops.equal(position, self.min_position), ops.less(velocity, 0.0))
        velocity = ops.where(at_wall, ops.zeros_like(velocity), velocity)
        terminated = ops.logical_and(
            ops.greater_equal(position, self.goal_position), ops.greater_equal(velocity, self.goal_velocity)
        )
        # gymnasium charges the raw action, not the clipped force: pushing beyond the bounds costs more, gains nothing.
        reward = ops.where(terminated, 100.0, 0.0) - 0.1 * ops.square(action)
        return ops.stack([position, velocity], axis=1), reward, terminated
