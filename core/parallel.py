"""Data-parallel steps on the engines Keras users already run: keras.distribution (JAX), tf.distribute (TensorFlow).

One user-facing object, :class:`DataParallel`; how a step is sharded is the backend module's business:

- JAX: a ``keras.distribution.DataParallel`` mesh. Variables are replicated, each batch becomes one global
  array split along its rows, and ``jax.jit`` partitions the step (GSPMD): the step's math sees the global
  batch, so losses, gradients, BatchNormalization statistics and noise are those of one device stepping on
  the whole batch. Several processes join through ``keras.distribution.initialize`` (Keras' own
  ``KERAS_DISTRIBUTION_*`` variables).
- TensorFlow: a ``tf.distribute.MirroredStrategy`` (``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names
  a cluster). Each replica runs the step on its rows; gradients are all-reduced to their mean before the
  group's transform, logs are averaged, non-trainable float variables (BatchNormalization's moving
  statistics) are averaged on every write, and seed generators draw different noise on every replica.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

from core.backends import get_backend
from core.errors import UsageError


class DataParallel:
    """Step data-parallel over ``devices`` (an int, or "all": every device of every process).

    Build the models, optimizers and seed generators inside :meth:`scope`, pass ``parallel=`` to
    ``make_step`` / ``core.function``, and give each call this process's rows (:meth:`local_rows`). A
    batch must divide evenly over the devices.
    """

    enabled = True

    def __init__(self, devices: int | str = "all"):
        self.mechanics = get_backend().data_parallel(_count(devices))
        self.num_devices: int = self.mechanics.num_devices
        self.num_processes: int = self.mechanics.num_processes
        self.process_index: int = self.mechanics.process_index
        self.local_devices: int = self.num_devices // self.num_processes

    @property
    def is_chief(self) -> bool:
        """Process 0 writes checkpoints, pictures and summary.json; every process can read them."""
        return self.process_index == 0

    def scope(self) -> contextlib.AbstractContextManager:
        """Variables created inside are replicated over the devices."""
        return self.mechanics.scope()

    def local_rows(self, x: Any, axis: int = 0) -> Any:
        """This process's block of a global batch's rows (the whole batch in a single process)."""
        if self.num_processes == 1:
            return x
        x = np.asarray(x)
        size = x.shape[axis]
        if size % self.num_processes:
            raise UsageError(f"a batch of {size} rows does not divide over {self.num_processes} processes")
        block = size // self.num_processes
        index = [slice(None)] * x.ndim
        index[axis] = slice(self.process_index * block, (self.process_index + 1) * block)
        return x[tuple(index)]

    def step_rows(self, rows: int) -> int:
        """How many of a global batch's ``rows`` one run of a step's math sees: a step that makes its own batch
        (noise, data drawn on the device) draws this many (TensorFlow: a replica's share; JAX: all of them)."""
        return self.mechanics.step_rows(rows)

    def shard_rows(self, x: Any) -> Any:
        """Inside a step: split a batch the step made itself along its rows over the devices (JAX; a replica's
        rows are already its own on TensorFlow)."""
        return self.mechanics.shard_rows(x)

    def describe(self) -> str:
        where = f" in {self.num_processes} processes" if self.num_processes > 1 else ""
        return f"data parallel over {self.num_devices} device(s){where}: {self.mechanics.describe()}"


class SingleDevice:
    """The plain path (no distribution code at all), with :class:`DataParallel`'s interface."""

    enabled = False
    num_devices = num_processes = local_devices = 1
    process_index = 0
    is_chief = True

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def local_rows(self, x: Any, axis: int = 0) -> Any:
        return x

    def step_rows(self, rows: int) -> int:
        return rows

    def shard_rows(self, x: Any) -> Any:
        return x

    def describe(self) -> str:
        return "one device"


def devices_from_flag(value: str | int) -> DataParallel | SingleDevice:
    """``--devices N|all``: 1 in a single process is the plain path; anything else steps data-parallel."""
    count = _count(value)
    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1)
    if count == 1 and processes == 1 and not os.environ.get("TF_CONFIG"):
        return SingleDevice()
    return DataParallel(count if count is not None else "all")


def _count(value: str | int) -> int | None:
    """The device count a flag asks for; None for "all"."""
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return None
        try:
            value = int(value)
        except ValueError:
            raise UsageError(f"--devices must be a positive int or 'all', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"--devices must be a positive int or 'all', got {value!r}")
    return value
