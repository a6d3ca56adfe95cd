"""Run management shared by the examples: resumable checkpoints and a guard against non-finite losses."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.checkpoint import load_checkpoint, save_checkpoint
from core.errors import NonFiniteLossError


def assert_finite(logs: Mapping[str, Any], step: int) -> None:
    """Raise NonFiniteLossError naming the first non-finite log value."""
    for key, value in logs.items():
        arr = np.asarray(value, dtype="float64")
        if not np.all(np.isfinite(arr)):
            bad = arr.ravel()[~np.isfinite(arr.ravel())][0]
            raise NonFiniteLossError(
                f"{key} became {bad} at step {step}; stopping (the last good checkpoint is kept). "
                "Try a lower learning rate or gradient clipping."
            )


def rng_state(rng: np.random.Generator) -> dict:
    """A NumPy generator's state as JSON-able data."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


class Checkpointer:
    """``out_dir/checkpoint.npz`` for a fixed set of named objects (models, optimizers, seed generators)."""

    def __init__(self, out_dir: str | os.PathLike, objects: Mapping[str, Any], name: str = "checkpoint.npz"):
        self.path = Path(out_dir) / name
        self.objects = dict(objects)

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, meta: Mapping[str, Any]) -> Path:
        if any(isinstance(v, float) and not math.isfinite(v) for v in meta.values()):
            raise NonFiniteLossError("refusing to save a checkpoint with non-finite metadata")
        return save_checkpoint(self.path, self.objects, meta)

    def load(self) -> dict[str, Any]:
        return load_checkpoint(self.path, self.objects)


class GracefulInterrupt:
    """Turn the first Ctrl-C (SIGINT) into a flag the training loop checks between compiled calls.

    The loop finishes the call in flight, saves a checkpoint and exits cleanly; a second Ctrl-C
    interrupts at once. Outside the main thread (where signals cannot be caught) it does nothing.

        with GracefulInterrupt() as stop:
            while step < total and not stop.requested:
                ...
    """

    def __init__(
        self, message: str | None = "interrupt: finishing this step, saving a checkpoint (Ctrl-C again to abort)"
    ):
        self.message = message
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.message:
            import sys

            print(f"\n{self.message}", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulInterrupt:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
