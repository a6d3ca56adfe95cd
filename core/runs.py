"""Run management shared by the examples: resumable checkpoints and a guard against non-finite losses."""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.checkpoint import load_checkpoint, save_checkpoint
from core.errors import NonFiniteLossError, UsageError


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


# The signals that stop a run gracefully: Ctrl-C, a scheduler's preemption (SLURM, Kubernetes), a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_last_stop: int | None = None  # the signal that last stopped a run in this process (core.cli's exit code)


def stop_signal() -> int | None:
    """The signal that stopped the last run of this process gracefully, or None."""
    return _last_stop


def forget_stop_signal() -> None:
    global _last_stop
    _last_stop = None


class GracefulInterrupt:
    """Turn the first stop signal (SIGINT, SIGTERM, SIGHUP) into a flag the training loop checks between calls.

    The loop finishes the call in flight, saves a checkpoint and exits; a second signal interrupts at once
    (KeyboardInterrupt), except while a checkpoint is being written (:meth:`deferred`), which it waits for.
    ``signal`` says which stopped the run. Outside the main thread (where signals cannot be caught) it does
    nothing.

        with GracefulInterrupt() as stop:
            while step < total and not stop.requested:
                ...
    """

    def __init__(self, message: str | None = "finishing this step, saving a checkpoint ({again} again to abort)"):
        self.message = message
        self.requested = False
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._saving = self._abort_after_save = False

    def _handler(self, signum, frame):
        global _last_stop
        if self.requested and self._saving:  # abort once the write is complete (deferred)
            self._abort_after_save = True
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signal, _last_stop = True, signum, signum
        if self.message:
            name = signal.Signals(signum).name
            again = "Ctrl-C" if signum == signal.SIGINT else name
            print(f"\n{name}: {self.message.format(again=again)}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def deferred(self):
        """A second stop signal during the block (a checkpoint being written) aborts only once the block is done.

        A flag, not ``pthread_sigmask``: a process-directed signal goes to any thread that does not block it (the
        engines run thread pools), and Python then runs the handler in the main thread wherever it is."""
        self._saving, self._abort_after_save = True, False
        try:
            yield
        finally:
            self._saving = False
        if self._abort_after_save:
            raise KeyboardInterrupt

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}


class FolderLock:
    """An exclusive lock on a run folder (``DIR/.lock``, ``flock``) held while a run uses it: a second run started
    on the same ``--out`` is refused with one line. The kernel drops the lock when its process ends, however it
    ends, so a crashed or killed run never leaves the folder locked."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UsageError(
                f"--out {self.folder} is in use by another run (process {holder}); wait for it or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
