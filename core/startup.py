"""What ``import core`` does first: Keras imported with TensorFlow's start-up log hidden, the CPU split into
devices if asked (``CUSTOMLOOP_CPU_DEVICES``), and processes launched together joined (JAX).

A bad environment raises :class:`~core.errors.StartupError`; it never exits the process (a command's entry point
turns it into one line and code 2).
"""

from __future__ import annotations

import os

from core._quiet import silenced_stderr, verbose_requested
from core.backends import SUPPORTED_BACKENDS, get_backend
from core.errors import StartupError

MAX_CPU_DEVICES = 64


def import_keras_quietly() -> None:
    name = os.environ.get("KERAS_BACKEND")
    if name and name not in SUPPORTED_BACKENDS:  # empty: unset, as Keras reads it
        raise StartupError(f"KERAS_BACKEND={name!r}: customloop runs on {' or '.join(SUPPORTED_BACKENDS)}")
    quiet = not verbose_requested()
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with silenced_stderr(quiet):
        import keras

        prepare_devices()
        # The first look at the devices prints TensorFlow's CUDA notices a second time, and JAX's missing platforms.
        get_backend().look_at_devices()
        del keras


def prepare_devices() -> None:
    """What must happen before a backend first looks at its devices: ``CUSTOMLOOP_CPU_DEVICES=N`` shows the CPU
    as N devices (data-parallel runs on a machine without accelerators), and processes launched with Keras'
    ``KERAS_DISTRIBUTION_*`` variables join each other (JAX)."""
    backend = get_backend()
    count = os.environ.get("CUSTOMLOOP_CPU_DEVICES", "").strip()
    if count:
        if not count.isdigit() or not 1 <= int(count) <= MAX_CPU_DEVICES:
            raise StartupError(f"CUSTOMLOOP_CPU_DEVICES must be an int from 1 to {MAX_CPU_DEVICES}, got {count!r}")
        backend.split_cpu(int(count))
    backend.initialize_processes()
