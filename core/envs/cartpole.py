"""CartPole-v1 as a batched :class:`~core.envs.base.DeviceEnv`: gymnasium's ``CartPoleEnv`` math in ``keras.ops``.

Same constants, the same explicit Euler integrator (``kinematics_integrator="euler"``), the same observation (the
physics state ``(x, x_dot, theta, theta_dot)``), reward (+1 on every step, the terminating one included),
termination (``|x| > 2.4`` or ``|theta| > 12 degrees``), time limit (500) and start states (uniform in
``[-0.05, 0.05)^4``; the random numbers differ from gymnasium's NumPy generator, the distribution is the same).

Float32: gymnasium keeps the state in float64 and rounds only the observation to float32; here everything is
float32. Stepped once from the same state (rounded to float32), the next observation agrees with gymnasium's within
1e-5 absolute and relative (measured over 12,000 steps: at most 2.4e-7, one or two float32 roundings of the
``tau * acceleration`` updates). Rewards, truncation and termination agree exactly; the termination test compares
float32 ``x`` / ``theta`` with float32 thresholds, so it could disagree only for a value within about one float32
ulp (~2e-7) of 2.4 or 0.2094 rad (no such step in the 12,000). Whole trajectories are another matter: replaying
the same actions without re-syncing, the inverted pendulum amplifies the rounding difference about e-fold every
12 steps, so float32 follows float64 within 1e-5 for >= 66 steps, 1e-4 for >= 96, 1e-3 for >= 126 (minimum over
64 balancing episodes, either backend), and episodes of a few hundred steps end up in different places.
"""

from __future__ import annotations

import math
from typing import Any

from keras import ops

from core.envs.base import DeviceEnv, register, uniform


@register
class CartPole(DeviceEnv):
    """N cart-poles; actions 0 (push left) / 1 (push right), shape ``(N,)``."""

    env_id = "CartPole-v1"
    obs_dim = 4
    num_actions = 2
    max_episode_steps = 500
    reward_threshold = 475.0
    state_dim = 4

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    reset_low, reset_high = -0.05, 0.05

    def _sample_physics(self, n: Any, seed: Any) -> Any:
        return uniform((n, self.state_dim), self.reset_low, self.reset_high, seed)

    def _dynamics(self, physics: Any, actions: Any) -> tuple[Any, Any, Any]:
        x, x_dot, theta, theta_dot = (physics[:, i] for i in range(4))
        force = ops.where(ops.equal(ops.cast(actions, "int32"), 1), self.force_mag, -self.force_mag)
        costheta = ops.cos(theta)
        sintheta = ops.sin(theta)
        temp = (force + self.polemass_length * ops.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * ops.square(costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass

        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc

        terminated = ops.logical_or(
            ops.logical_or(ops.less(x, -self.x_threshold), ops.greater(x, self.x_threshold)),
            ops.logical_or(
                ops.less(theta, -self.theta_threshold_radians), ops.greater(theta, self.theta_threshold_radians)
            ),
        )
        reward = ops.ones_like(x)
        return ops.stack([x, x_dot, theta, theta_dot], axis=1), reward, terminated
