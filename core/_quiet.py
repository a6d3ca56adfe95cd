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


SUPPORTED_BACKENDS = ("tensorflow", "jax")
MAX_CPU_DEVICES = 64


class StartupError(RuntimeError):
    """A bad environment variable: one line and exit code 2 before anything else runs."""


def import_keras_quietly() -> None:
    try:
        _import_keras_quietly()
    except StartupError as e:
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c", "-m") else "customloop"
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _import_keras_quietly() -> None:
    name = os.environ.get("KERAS_BACKEND")
    if name and name not in SUPPORTED_BACKENDS:  # empty: unset, as Keras reads it
        raise StartupError(f"KERAS_BACKEND={name!r}: customloop runs on {' or '.join(SUPPORTED_BACKENDS)}")
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

    try:
        backend = get_backend()
    except NotImplementedError as e:  # a keras.json naming another backend
        raise StartupError(str(e)) from None
    count = os.environ.get("CUSTOMLOOP_CPU_DEVICES", "").strip()
    if count:
        if not count.isdigit() or not 1 <= int(count) <= MAX_CPU_DEVICES:
            raise StartupError(f"CUSTOMLOOP_CPU_DEVICES must be an int from 1 to {MAX_CPU_DEVICES}, got {count!r}")
        backend.split_cpu(int(count))
    backend.initialize_processes()
