"""One training run's lifecycle in one place, so that an example's ``train`` is only its algorithm.

    with core.Run(config, objects, total=steps, checkpoint_every=1000) as run:
        while run.running:
            logs = step.train_steps(num_steps=n)
            run.advance(n, logs)          # non-finite guard, bar, checkpoint cadence
    run.write_summary({...})              # summary.json as soon as training ends
    ... evaluation, pictures ...
    run.write_summary({...})              # then add to it

The run owns: the output folder (checked before anything trains), resuming from the latest
checkpoint, a checkpoint cadence that cannot be stepped over, the elapsed time across resumes,
Ctrl-C (the first finishes the call in flight and saves; start-up included), the non-finite
guard, the progress bar, TensorBoard scalars and summary.json.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np

from core.config import arg
from core.errors import NonFiniteLossError, UsageError
from core.export import Exported, export_models
from core.run_log import RunLogger, write_summary
from core.runs import Checkpointer, FolderLock, GracefulInterrupt, assert_finite, rng_state, set_rng_state


@dataclasses.dataclass
class RunConfig:
    """The flags every example shares; an example's Config subclasses it (and may change ``mode``'s default)."""

    seed: int = arg(0, min=0, max=2**32 - 1)
    """seed for the weights, the noise, the data order and the environments"""
    out: str | None = None
    """folder for checkpoint.npz, summary.json, TensorBoard scalars (tb/) and pictures; a folder holding an
    earlier run is refused unless --resume"""
    resume: bool = False
    """continue the run saved in --out (its checkpoint.npz)"""
    mode: Literal["eager", "graph", "xla"] = "graph"
    """how steps are compiled: eager (plain Python, for debugging), graph (tf.function; jax.jit on JAX) or
    xla (tf.function with jit_compile; jax.jit on JAX)"""


# Fields of every config that a resumed run may change: where it writes, and how its steps are compiled.
RESUME_MAY_CHANGE = ("out", "resume", "mode")
_MISSING = object()


def _shown(value: Any) -> str:
    return "left at its default" if value is None else str(value)


class Run:
    """Output folder, resume, checkpoints, Ctrl-C, non-finite guard, progress bar, TensorBoard and summary.json.

    ``objects`` are what a checkpoint holds (models, optimizers, seed generators, variables);
    ``state`` is the example's own JSON-able counters (episodes, recent returns), saved with
    every checkpoint and restored on resume; ``rng`` a NumPy generator saved and restored too.
    ``step`` counts ``unit``s up to ``total``; a checkpoint is written each time ``checkpoint_every``
    of them have passed, at the end, and on Ctrl-C. A resumed run must have the saved run's config except in
    the fields named by ``may_change`` (budgets, evaluation, speed knobs) and ``RESUME_MAY_CHANGE``: a flag
    that would change what is being trained is refused, not silently overridden by the checkpoint. In a run of several
    processes only the ``chief`` (process 0) writes checkpoints, TensorBoard, the bar and summary.json; every
    process reads the checkpoint on resume. ``export`` names the trained networks (or functions that build them at
    that moment) written as ``<name>.keras`` with every checkpoint, for ``keras.saving.load_model``.
    """

    def __init__(
        self,
        config: RunConfig,
        objects: Mapping[str, Any],
        *,
        total: int,
        unit: str = "step",
        desc: str = "train",
        bar_keys: Sequence[str] | None = None,
        checkpoint_every: int | None = None,
        state: Mapping[str, Any] | None = None,
        rng: np.random.Generator | None = None,
        may_change: Sequence[str] = (),
        resolve: Callable[[dict], dict] | None = None,
        chief: bool = True,
        export: Mapping[str, Exported] | None = None,
    ):
        self.config = config
        self.chief = chief
        self.export = dict(export or {})
        self.out = Path(config.out) if config.out else None
        self.total, self.unit, self.desc, self.bar_keys = int(total), unit, desc, bar_keys
        self.checkpoint_every = checkpoint_every
        self.state: dict[str, Any] = dict(state or {})
        self.rng = rng
        self.may_change = tuple(dict.fromkeys((*RESUME_MAY_CHANGE, *may_change)))
        self.resolve = resolve
        self.step = 0
        self.summary: dict[str, Any] = {}
        self._checkpointer = Checkpointer(self.out, objects) if self.out else None
        self._interrupt = GracefulInterrupt()
        self._lock = FolderLock(self.out) if self.out and chief else _NoLock()
        self._seconds_before = 0.0
        self._start: float | None = None
        self._seconds: float | None = None  # frozen when training ends
        self._saved_at = 0
        self.logger: RunLogger | None = None
        self.bar = None

    # ----- entering and leaving -----
    def __enter__(self) -> Run:
        self._interrupt.__enter__()  # first: a Ctrl-C during start-up is a request, not a traceback
        try:
            if self.chief:
                self._check_folder()
            if self.config.resume:
                self._resume()
            self._saved_at = self._started_at = self.step
            self.logger = RunLogger(self.out if self.chief else None)
            quiet = None if self.chief else True
            self.bar = self.logger.progress(self.total, self.desc, self.unit, self.bar_keys, self.step, quiet)
            self._start = time.perf_counter()
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # The stop signals stay handled until the last checkpoint is written: a second one waits for the write.
        self._seconds = self.elapsed()
        try:
            # A non-finite value or a second signal mid-call: keep the last good checkpoint, write nothing new.
            if exc_type is None and self.step > self._started_at:
                self._final_save()
            elif exc_type is not None and issubclass(exc_type, NonFiniteLossError):
                self._summary_if_it_fits({"stopped": f"non-finite: {exc}", "steps_done": self.step})
            elif exc_type is not None and issubclass(exc_type, Exception) and not self._refused_resume():
                # A fault mid-run (a bug, a full disk): the last checkpoint stays the last good state, and the
                # summary says where and why the run stopped instead of being missing.
                self._summary_if_it_fits({"stopped": f"error: {_error(exc)}", "steps_done": self.step})
        finally:
            self._close()

    def _final_save(self) -> None:
        """The last checkpoint; a run stopped by a signal says so (summary's ``stopped``) and how to continue."""
        try:
            self.save()
        except OSError as e:  # a full or read-only disk: the summary may still fit (else the error line says it)
            self._summary_if_it_fits({"stopped": f"error: {_error(e)}", "steps_done": self.step})
            raise
        if self.interrupted and self._interrupt.signal is not None:
            name = signal.Signals(self._interrupt.signal).name
            self.summary["stopped"] = name
            if self.chief and self.out is not None:
                print(f"stopped by {name} at {self.unit} {self.step}, checkpoint saved; continue with: "
                      f"{resume_command()}", file=sys.stderr, flush=True)  # fmt: skip

    def _summary_if_it_fits(self, figures: Mapping[str, Any]) -> None:
        try:
            self.write_summary(figures)
        except OSError:
            pass  # the disk is full or read-only: the error that stopped the run is reported on its own

    def _refused_resume(self) -> bool:
        """A resumed run that failed before its first step (an example's own check of the restored state, memory
        at the first compile): nothing changed, so the earlier run's summary.json stays as it was."""
        return bool(self.config.resume) and self.step == self._started_at

    def _close(self) -> None:
        self._interrupt.__exit__()
        if self.bar is not None:
            self.bar.close()
        try:
            if self.logger is not None:
                self.logger.close()
        finally:
            self._lock.release()

    def _check_folder(self) -> None:
        if self.out is None:
            if self.config.resume:
                raise UsageError("--resume needs --out DIR (the folder holding the run's checkpoint.npz)")
            return
        if self.out.exists() and not self.out.is_dir():
            kind = "a device" if self.out.is_char_device() or self.out.is_block_device() else "a file"
            raise UsageError(f"--out {self.out} is {kind}, not a folder")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = self.out / f".write-test.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            self._lock.acquire()  # one run at a time in a folder
        except OSError as e:
            raise UsageError(f"--out {self.out} is not a writable folder ({e.strerror or e})") from None
        for pattern in (".*.tmp", ".*.tmp.keras"):  # half-written files of a crashed run (atomic writes)
            for stale in self.out.rglob(pattern):
                stale.unlink(missing_ok=True)
        # Only a checkpoint makes an earlier run: a summary alone is a run that stopped before its first one
        # (a fault, a non-finite loss at the start), with nothing to resume; a fresh run may take the folder.
        earlier = [p.name for p in (self._checkpointer.path, self.out / "summary.json") if p.exists()]
        if not self._checkpointer.exists() and not self.config.resume:
            (self.out / "summary.json").unlink(missing_ok=True)  # a stopped run's: this run writes its own
        elif not self.config.resume:
            raise UsageError(
                f"--out {self.out} holds an earlier run ({', '.join(earlier)}); "
                "continue it with --resume or choose another --out"
            )

    def _resume(self) -> None:
        ckpt = self._checkpointer
        if not ckpt.exists():
            raise UsageError(f"--resume: no checkpoint.npz in {self.out}")
        try:
            meta = ckpt.load()
            saved = meta["config"]
            self.step, self._seconds_before = _count(meta["step"]), float(meta["train_seconds"])
            if not math.isfinite(self._seconds_before) or self._seconds_before < 0:
                raise ValueError(f"train_seconds {self._seconds_before}")
            self.state.update(meta["state"])
            if self.rng is not None:
                set_rng_state(self.rng, meta["rng"])
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as e:
            raise UsageError(f"--resume: {ckpt.path} does not fit this run ({_one_line(e)})") from None
        self._check_same_config(saved)
        self._check_same_backend(meta.get("backend"))
        print(f"resumed from {ckpt.path} at {self.unit} {self.step}")
        if self.step >= self.total:  # a finished run (runs may overshoot a budget by part of a call)
            print(f"nothing to train: {self.unit} {self.step} is at or past this run's end ({self.total})")

    def _check_same_backend(self, saved: Any) -> None:
        """A run continues on the engine it started on: the other one's kernels, random numbers and optimizer
        arithmetic would make it neither run (checkpoints of older versions record no backend)."""
        now = keras.backend.backend()
        if saved is not None and saved != now:
            raise UsageError(
                f"--resume: {self._checkpointer.path} was written by a run on {saved}, this one runs on {now}; "
                f"continue it with KERAS_BACKEND={saved}"
            )

    def _check_same_config(self, saved: Any) -> None:
        if not isinstance(saved, Mapping):
            raise UsageError(f"--resume: {self._checkpointer.path} holds no run config")
        saved, current = self._resolved(dict(saved), dataclasses.asdict(self.config))
        for key, now in current.items():
            if key in self.may_change or _jsonable(now) == saved.get(key, _MISSING):
                continue
            flag = "--" + key.replace("_", "-")
            free = ", ".join("--" + k.replace("_", "-") for k in self.may_change)
            then = f"records no {flag}" if key not in saved else f"is a run with {flag} {_shown(saved[key])}"
            raise UsageError(f"--resume: the checkpoint {then}, not {_shown(now)}; only {free} may change on resume")

    def _resolved(self, saved: dict, current: dict) -> tuple[dict, dict]:
        """The values both configs stand for (``--batch-size`` left at None means its default): a flag given at
        the value the saved run used by default is the same run. If ``resolve`` cannot read one (a checkpoint of
        an older version), both are compared as written."""
        if self.resolve is None:
            return saved, current
        try:
            return {**saved, **self.resolve(dict(saved))}, {**current, **self.resolve(dict(current))}
        except (TypeError, ValueError, KeyError, UsageError):
            return saved, current

    # ----- inside the loop -----
    @property
    def stop_requested(self) -> bool:
        return self._interrupt.requested

    @property
    def running(self) -> bool:
        """More to do, and no Ctrl-C."""
        return self.step < self.total and not self.stop_requested

    @property
    def interrupted(self) -> bool:
        return self.stop_requested and self.step < self.total

    def advance(self, n: int, logs: Mapping[str, Any] | None = None, show: Mapping[str, Any] | None = None) -> None:
        """``n`` more units done: check ``logs`` are finite, move the bar (showing ``show`` or ``logs``), and
        checkpoint once ``checkpoint_every`` units have passed since the last one."""
        if logs:
            assert_finite(logs, self.step + n)
        self.step += int(n)
        if self.bar is not None:  # a disabled bar (CI logs) needs no per-call means
            self.bar.update(int(n), None if self.bar.bar.disable else _means(show if show is not None else logs))
        every = self.checkpoint_every
        if every and self.step - self._saved_at >= every and self.step < self.total:
            self.save()

    def log(self, scalars: Mapping[str, Any], step: int | None = None, subrun: str | None = None) -> None:
        """TensorBoard scalars at ``step`` (default: the run's step); ``subrun``: under ``tb/<subrun>``, a run of
        its own on the dashboard (one per population member)."""
        if self.logger is not None:
            self.logger.scalars(self.step if step is None else step, _means(scalars), subrun)

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if self.bar is not None and not self.bar.bar.disable:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def elapsed(self) -> float:
        """Training seconds across resumes (frozen once the run's ``with`` block ends)."""
        if self._seconds is not None:
            return self._seconds
        running = time.perf_counter() - self._start if self._start is not None else 0.0
        return self._seconds_before + running

    def save(self) -> Path | None:
        """Write the checkpoint now (with ``--out``)."""
        if self._checkpointer is None or not self.chief:
            return None
        state = _jsonable(self.state)
        if not _finite(state):
            raise NonFiniteLossError("refusing to save a checkpoint whose run state holds a non-finite value")
        meta = {
            "step": self.step,
            "train_seconds": self.elapsed(),
            "state": state,
            "rng": rng_state(self.rng) if self.rng is not None else None,
            "config": dataclasses.asdict(self.config),
            "backend": keras.backend.backend(),
        }
        with self._interrupt.deferred():  # a second signal waits for the write: never a half-written checkpoint
            path = self._checkpointer.save(meta)
            export_models(self.out, self.export)
        self._saved_at = self.step
        return path

    # ----- after training -----
    def write_summary(self, figures: Mapping[str, Any]) -> dict[str, Any]:
        """Add ``figures`` to the summary and write ``--out/summary.json`` (strict JSON) at once.

        Every summary holds ``train_seconds``, ``interrupted`` and ``config`` besides the figures.
        """
        self.summary.update(figures)
        full = {
            "train_seconds": self.elapsed(),
            "interrupted": self.interrupted,
            **self.summary,
            "config": dataclasses.asdict(self.config),
        }
        if self.out is not None and self.chief:
            write_summary(self.out, full)
        return full


class _NoLock:
    """A run without a folder of its own (no ``--out``, or not the chief process) locks nothing."""

    def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None


def resume_command() -> str:
    """The command line that continues this process's run: its own arguments with ``--resume``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    program = f"python3 -m {spec.name}" if spec is not None else f"python3 {sys.argv[0]}"
    args = [shlex.quote(a) for a in sys.argv[1:]]
    return " ".join([program, *args, *([] if "--resume" in sys.argv else ["--resume"])])


def _error(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:500]


def _means(values: Mapping[str, Any] | None) -> dict[str, float] | None:
    """Scalars as floats; the per-step arrays of a fused call as their mean."""
    if not values:
        return None
    return {k: float(np.mean(v)) for k, v in values.items() if np.size(v)}


def _count(value: Any) -> int:
    """A saved counter: a non-negative integer (JSON may hold any number or a string there)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"step {value!r} is not a count")
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | collections.deque | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _finite(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return not (isinstance(value, float) and not math.isfinite(value))


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
