"""Pendulum-v1 as a batched :class:`~core.envs.base.DeviceEnv`: gymnasium's ``PendulumEnv`` in ``keras.ops``.

Box actions: torques, shape ``(N, 1)``, clipped to ``[-2, 2]`` inside the step as gymnasium does. Same constants
(``g = 10.0``, ``m = l = 1``, ``dt = 0.05``), the same update (angular speed first, clipped to +-8, then the angle
from the new speed), observation ``(cos theta, sin theta, theta_dot)``, reward ``-(angle_normalize(theta)^2 +
0.1 theta_dot^2 + 0.001 u^2)`` with the clipped torque ``u``, no termination, time limit (200) and start states
(``theta`` uniform in ``[-pi, pi)``, ``theta_dot`` in ``[-1, 1)``; other random numbers than gymnasium's, the same
distribution). ``reward_threshold`` is None: gymnasium registers none for Pendulum-v1.

The physics state is ``(theta, theta_dot)`` with one difference: gymnasium lets ``theta`` grow without bound (0.4
rad a step at full speed), which float32 would hold only to ulp(|theta|) (4e-6 at 40 rad); here ``theta`` is
wrapped into ``[-pi, pi)`` after every step, which changes neither observation nor reward (an angle already in
range passes unchanged). To start from gymnasium's state, wrap its angle first, in float64.

Float32: gymnasium computes in float64. Stepped once from the same state (angle wrapped, rounded to float32), the
next observation agrees within 5e-7 absolute (measured over 10,000 steps with a fifth of the torques beyond the
bounds and a fifth exactly at them, either backend: at most 4.8e-7). Truncation agrees exactly, termination
trivially. The reward is not bit-exact: a sum of three squares that gymnasium rounds once from float64 and float32
rounds at every operation; it agrees within 3 float32 ulps (2.4e-7 relative; half the steps differ by 1-3 ulps).
The swing-up is unstable near the top, so whole trajectories drift apart: replaying the same torques, float32
follows float64 within 1e-5 for >= 32 steps, 1e-4 for >= 45, 1e-3 for >= 98 (minimum over 64 episodes, either
backend); compare them one step at a time. Compiled and eager runs drift apart the same way (XLA's sin and cos round
differently from the eager kernels): within 4.1e-6 over 25-step episodes, up to 1.9e-4 over 50 on JAX.
"""

from __future__ import annotations

import math
from typing import Any

from keras import ops

from core.envs.base import DeviceEnv, register, uniform

TWO_PI = 2.0 * math.pi


def angle_normalize(x: Any) -> Any:
    """gymnasium's ``angle_normalize`` (``x`` shifted by whole turns into ``[-pi, pi)``), written so that an angle
    already in range comes back unchanged: ``((x + pi) % 2pi) - pi`` would round it twice in float32."""
    return x - TWO_PI * ops.floor((x + math.pi) / TWO_PI)


@register
class Pendulum(DeviceEnv):
    """N pendulums; actions: torques, shape ``(N, 1)``, clipped to ``[-2, 2]``."""

    env_id = "Pendulum-v1"
    obs_dim = 3
    action_dim = 1
    action_low, action_high = -2.0, 2.0  # gymnasium's max_torque
    max_episode_steps = 200
    reward_threshold = None  # gymnasium registers Pendulum-v1 without one
    state_dim = 2

    max_speed = 8.0
    dt = 0.05
    g = 10.0
    m = 1.0
    l = 1.0  # noqa: E741  (gymnasium's name)
    reset_high = (math.pi, 1.0)  # theta, theta_dot: uniform in [-high, high)

    def _sample_physics(self, n: Any, seed: Any) -> Any:
        return uniform((n, self.state_dim), -1.0, 1.0, seed) * ops.convert_to_tensor(self.reset_high, "float32")

    def observe(self, physics: Any) -> Any:
        theta = physics[:, 0]
        return ops.stack([ops.cos(theta), ops.sin(theta), physics[:, 1]], axis=1)

    def _dynamics(self, physics: Any, actions: Any) -> tuple[Any, Any, Any]:
        th, thdot = physics[:, 0], physics[:, 1]
        u = ops.clip(ops.cast(actions, "float32")[:, 0], self.action_low, self.action_high)
        costs = ops.square(angle_normalize(th)) + 0.1 * ops.square(thdot) + 0.001 * ops.square(u)
        g, m, length, dt = self.g, self.m, self.l, self.dt
        newthdot = thdot + (3 * g / (2 * length) * ops.sin(th) + 3.0 / (m * length**2) * u) * dt
        newthdot = ops.clip(newthdot, -self.max_speed, self.max_speed)
        # gymnasium lets theta run unbounded; float32 would then hold it only to ulp(|theta|) (4e-6 at 40 rad).
        newth = angle_normalize(th + newthdot * dt)
        terminated = ops.zeros_like(th, dtype="bool")
        return ops.stack([newth, newthdot], axis=1), -costs, terminated
