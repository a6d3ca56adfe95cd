"""Batched, stateless environments in ``keras.ops`` that run inside compiled loops (TensorFlow and JAX).

``make_device_env("CartPole-v1")`` returns a :class:`DeviceEnv`; ``DeviceVectorEnv`` wraps one as a gymnasium
vector env (NumPy in, NumPy out) for code written against gymnasium. ``env.continuous`` tells Box-action envs
(actions ``(N, action_dim)`` float32) from discrete ones (actions ``(N,)`` integers).
"""

# Imported for their @register: CartPole-v1, Acrobot-v1, MountainCar-v0 (discrete), MountainCarContinuous-v0,
# Pendulum-v1 (Box actions).
from core.envs import acrobot, cartpole, mountain_car, mountain_car_continuous, pendulum  # noqa: F401
from core.envs.base import DeviceEnv, make_device_env, register, registered_ids
from core.envs.vector import DeviceVectorEnv

DEVICE_ENV_IDS: tuple[str, ...] = registered_ids()

__all__ = ["DEVICE_ENV_IDS", "DeviceEnv", "DeviceVectorEnv", "make_device_env", "register", "registered_ids"]
