"""Acrobot-v1 as a batched :class:`~core.envs.base.DeviceEnv`: gymnasium's ``AcrobotEnv`` math in ``keras.ops``.

Same constants, the same dynamics (``book_or_nips="book"``, torque noise 0), the same integrator (one classic RK4
step of ``dt = 0.2`` as gymnasium's ``rk4(derivs, s, [0, dt])``), the same angle wrapping to ``[-pi, pi]`` and
velocity bounds (4 pi, 9 pi), observation ``(cos t1, sin t1, cos t2, sin t2, dt1, dt2)``, reward (-1, 0 on the
terminating step), termination (``-cos(t1) - cos(t1 + t2) > 1``), time limit (500) and start states (uniform in
``[-0.1, 0.1)^4``; other random numbers than gymnasium's, the same distribution).

Float32: gymnasium integrates in float64; here everything is float32. Stepped once from the same state (rounded to
float32), the next observation agrees with gymnasium's within 1e-5 absolute and relative (measured over 10,000
steps: at most 1e-6 on velocities up to ~28 rad/s; each RK4 stage rounds at float32's 6e-8 relative precision).
Rewards, truncation and termination agree exactly; termination could disagree only for a tip height within ~1e-6
of the threshold (the height's float32 error measured at most 3e-7). The acrobot is chaotic, so whole float32
trajectories follow float64 ones only so far: replaying the same random torques, within 1e-5 for >= 125 steps and
1e-4 for >= 268 (minimum over 64 episodes, either backend); compare them one step at a time.
"""

from __future__ import annotations

import math
from typing import Any

from keras import ops

from core.envs.base import DeviceEnv, register, uniform


def wrap(x: Any, low: float, high: float) -> Any:
    """gymnasium's ``wrap``: shift ``x`` by whole periods into ``[low, high]``, leaving values inside unchanged."""
    period = high - low
    # gymnasium subtracts the period in a while loop; counting the periods keeps one subtraction for the usual case.
    above = ops.maximum(ops.ceil((x - high) / period), 0.0)
    x = x - above * period
    below = ops.maximum(ops.ceil((low - x) / period), 0.0)
    return x + below * period


@register
class Acrobot(DeviceEnv):
    """N acrobots; actions 0 / 1 / 2 apply torque -1 / 0 / +1 to the middle joint, shape ``(N,)``."""

    env_id = "Acrobot-v1"
    obs_dim = 6
    num_actions = 3
    max_episode_steps = 500
    reward_threshold = -100.0
    state_dim = 4

    dt = 0.2
    link_length_1 = 1.0
    link_mass_1 = 1.0
    link_mass_2 = 1.0
    link_com_pos_1 = 0.5
    link_com_pos_2 = 0.5
    link_moi = 1.0
    max_vel_1 = 4 * math.pi
    max_vel_2 = 9 * math.pi
    reset_low, reset_high = -0.1, 0.1

    def _sample_physics(self, n: Any, seed: Any) -> Any:
        return uniform((n, self.state_dim), self.reset_low, self.reset_high, seed)

    def observe(self, physics: Any) -> Any:
        theta1, theta2 = physics[:, 0], physics[:, 1]
        return ops.stack(
            [ops.cos(theta1), ops.sin(theta1), ops.cos(theta2), ops.sin(theta2), physics[:, 2], physics[:, 3]], axis=1
        )

    def _dsdt(self, s: tuple[Any, ...], a: Any) -> tuple[Any, ...]:
        m1, m2 = self.link_mass_1, self.link_mass_2
        l1, lc1, lc2 = self.link_length_1, self.link_com_pos_1, self.link_com_pos_2
        i1 = i2 = self.link_moi
        g = 9.8
        theta1, theta2, dtheta1, dtheta2 = s
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * ops.cos(theta2)) + i1 + i2
        d2 = m2 * (lc2**2 + l1 * lc2 * ops.cos(theta2)) + i2
        phi2 = m2 * lc2 * g * ops.cos(theta1 + theta2 - math.pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * ops.square(dtheta2) * ops.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * ops.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * ops.cos(theta1 - math.pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * ops.square(dtheta1) * ops.sin(theta2) - phi2) / (
            m2 * lc2**2 + i2 - ops.square(d2) / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return dtheta1, dtheta2, ddtheta1, ddtheta2

    def _rk4(self, s: tuple[Any, ...], a: Any) -> tuple[Any, ...]:
        dt, dt2 = self.dt, self.dt / 2.0

        def shifted(h: float, k: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(si + h * ki for si, ki in zip(s, k))

        k1 = self._dsdt(s, a)
        k2 = self._dsdt(shifted(dt2, k1), a)
        k3 = self._dsdt(shifted(dt2, k2), a)
        k4 = self._dsdt(shifted(dt, k3), a)
        return tuple(si + dt / 6.0 * (a1 + 2 * a2 + 2 * a3 + a4) for si, a1, a2, a3, a4 in zip(s, k1, k2, k3, k4))

    def _dynamics(self, physics: Any, actions: Any) -> tuple[Any, Any, Any]:
        torque = ops.cast(actions, "float32") - 1.0
        theta1, theta2, dtheta1, dtheta2 = self._rk4(tuple(physics[:, i] for i in range(4)), torque)
        theta1 = wrap(theta1, -math.pi, math.pi)
        theta2 = wrap(theta2, -math.pi, math.pi)
        dtheta1 = ops.clip(dtheta1, -self.max_vel_1, self.max_vel_1)
        dtheta2 = ops.clip(dtheta2, -self.max_vel_2, self.max_vel_2)
        terminated = ops.greater(-ops.cos(theta1) - ops.cos(theta2 + theta1), 1.0)
        reward = ops.where(terminated, 0.0, -1.0)
        return ops.stack([theta1, theta2, dtheta1, dtheta2], axis=1), reward, terminated
