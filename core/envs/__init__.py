"""Batched, stateless environments in ``keras.ops`` that run inside compiled loops (TensorFlow and JAX).

``make_device_env("CartPole-v1")`` returns a :class:`DeviceEnv`; ``DeviceVectorEnv`` wraps one as a gymnasium
vector env (NumPy in, NumPy out) for code written against gymnasium.
"""

from core.envs import acrobot, cartpole, mountain_car  # noqa: F401  (registers the envs)
from core.envs.base import DeviceEnv, make_device_env, register, registered_ids
from core.envs.vector import DeviceVectorEnv

DEVICE_ENV_IDS: tuple[str, ...] = registered_ids()

__all__ = ["DEVICE_ENV_IDS", "DeviceEnv", "DeviceVectorEnv", "make_device_env", "register", "registered_ids"]
