"""Keep TensorFlow's start-up noise off the terminal unless the user asks for it."""

from __future__ import annotations

import contextlib
import os
import sys


def verbose_requested() -> bool:
    return "--verbose" in sys.argv[1:] or os.environ.get("CUSTOMLOOP_VERBOSE") == "1"


@contextlib.contextmanager
def silenced_stderr(enabled: bool = True):
    """Point file descriptor 2 at /dev/null.

    TensorFlow's C++ runtime prints oneDNN and CUDA-probing notices before absl
    logging is initialised, so TF_CPP_MIN_LOG_LEVEL alone does not hide them.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_keras_quietly() -> None:
    quiet = not verbose_requested()
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with silenced_stderr(quiet):
        import keras

        prepare_devices()

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
            # Device discovery prints the CUDA notices a second time.
            tf.config.list_physical_devices()
        elif keras.backend.backend() == "jax":
            import jax

            jax.devices()  # the first look at devices logs which platforms are missing


def prepare_devices() -> None:
    """What must happen before a backend first looks at its devices: ``CUSTOMLOOP_CPU_DEVICES=N`` shows the CPU
    as N devices (data-parallel runs on a machine without accelerators), and processes launched with Keras'
    ``KERAS_DISTRIBUTION_*`` variables join each other (JAX)."""
    from core.backends import get_backend

    backend = get_backend()
    count = os.environ.get("CUSTOMLOOP_CPU_DEVICES", "").strip()
    if count:
        if not count.isdigit() or int(count) < 1:
            raise SystemExit(f"error: CUSTOMLOOP_CPU_DEVICES must be a positive int, got {count!r}")
        backend.split_cpu(int(count))
    backend.initialize_processes()
