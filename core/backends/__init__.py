"""One module per Keras backend, each implementing :class:`core.backends.base.Backend`; :func:`get_backend`
picks the one Keras runs on."""

from __future__ import annotations

import functools

from core.backends.base import Backend, DataParallelMechanics, split_loss
from core.errors import StartupError

SUPPORTED_BACKENDS = ("tensorflow", "jax")


def get_backend() -> Backend:
    """The backend of the running Keras (fixed for the process by ``KERAS_BACKEND`` or keras.json)."""
    import keras

    return _backend(keras.backend.backend())


@functools.cache
def _backend(name: str) -> Backend:
    if name == "tensorflow":
        from core.backends.tensorflow import TensorFlowBackend

        return TensorFlowBackend()
    if name == "jax":
        from core.backends.jax import JaxBackend

        return JaxBackend()
    raise StartupError(f"customloop runs on the Keras backend {' or '.join(SUPPORTED_BACKENDS)}, not {name!r}")


__all__ = ["SUPPORTED_BACKENDS", "Backend", "DataParallelMechanics", "get_backend", "split_loss"]
