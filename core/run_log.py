"""Progress bar, TensorBoard scalars and summary.json for a run."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file. The file gets the
    mode a plain ``open`` would give it (0666 less the umask: others on a shared machine can read results), not
    the temporary file's 0600. A crashed write leaves a ``.NAME.*.tmp`` that the next run in the folder removes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_mode() -> int:
    """The mode a plain ``open`` gives a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


@functools.cache
def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask can only set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def strict_json(value: Any) -> Any:
    """``value`` with NaN and infinities as None and NumPy scalars and arrays as Python values: strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if hasattr(value, "tolist"):  # NumPy scalars and arrays
        return strict_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_summary(out_dir: str | os.PathLike, summary: Mapping[str, Any]) -> Path:
    """Write ``out_dir/summary.json`` atomically, as strict JSON (a non-finite figure becomes null)."""
    path = Path(out_dir) / "summary.json"
    text = json.dumps(strict_json(summary), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())
    return path


class _TensorBoard:
    """Scalars as TensorBoard event files through tensorboardX (no TensorFlow needed, so any backend can log).

    Written in the training thread (tensorboardX's ``EventsWriter``), not by ``SummaryWriter``'s background
    thread: a write that fails (a full disk) is an OSError where the run can report it, where the thread would
    die and leave the next flush waiting forever. Flushed every ``flush_seconds`` and at the end.
    """

    def __init__(self, log_dir: Path, flush_seconds: float = 10.0):
        from tensorboardX.event_file_writer import EventsWriter

        log_dir.mkdir(parents=True, exist_ok=True)
        self._writer = EventsWriter(str(log_dir / "events"))
        self._flush_seconds = flush_seconds
        self._flushed = time.monotonic()

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        now = time.time()
        for key, value in values.items():
            self._writer.write_event(Event(wall_time=now, step=int(step), summary=scalar(key, value)))
        if time.monotonic() - self._flushed > self._flush_seconds:
            self._writer.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        self._writer.close()


class Progress:
    """A tqdm bar showing the latest metrics; quiet when stderr is not a terminal (CI logs)."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        bar_keys: Sequence[str] | None,
        initial: int = 0,
        disable: bool | None = None,
    ):
        self.bar_keys = list(bar_keys) if bar_keys is not None else None
        if disable is None:
            disable = not sys.stderr.isatty() and os.environ.get("CUSTOMLOOP_PROGRESS") != "1"
        self.bar = tqdm(
            total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True, disable=disable, mininterval=0.25
        )

    def update(self, advance: int, metrics: Mapping[str, float] | None = None) -> None:
        if self.bar.disable:  # CI logs: no bar, so no formatting work per step
            return
        if metrics:
            shown = {k: v for k, v in metrics.items() if self.bar_keys is None or k in self.bar_keys}
            self.bar.set_postfix({_short(k, shown): _fmt(float(v)) for k, v in shown.items()}, refresh=False)
        self.bar.update(advance)

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        self.bar.write(message)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RunLogger:
    """One run's TensorBoard scalars (under ``out_dir/tb``) and its progress bars."""

    def __init__(self, out_dir: str | os.PathLike | None):
        self.tb = _TensorBoard(Path(out_dir) / "tb") if out_dir else None
        self._out = Path(out_dir) if out_dir else None
        self._subruns: dict[str, _TensorBoard] = {}

    def scalars(self, step: int, metrics: Mapping[str, float], subrun: str | None = None) -> None:
        """``subrun``: a TensorBoard run of its own under ``tb/`` (a population member), which the dashboard
        overlays with the others."""
        if self.tb is None:
            return
        writer = self.tb
        if subrun is not None:
            if subrun not in self._subruns:
                self._subruns[subrun] = _TensorBoard(self._out / "tb" / subrun)
            writer = self._subruns[subrun]
        writer.scalars(step, {k: float(v) for k, v in metrics.items()})

    def progress(
        self,
        total: int | None,
        desc: str = "train",
        unit: str = "step",
        bar_keys: Sequence[str] | None = None,
        initial: int = 0,
        disable: bool | None = None,
    ) -> Progress:
        return Progress(total, desc, unit, bar_keys, initial, disable)

    def close(self) -> None:
        for writer in [self.tb, *self._subruns.values()]:
            if writer is not None:
                writer.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _short(key: str, keys: Mapping[str, Any]) -> str:
    """The last part of a namespaced key when no other shown key shares it."""
    tail = key.split("/")[-1]
    return tail if sum(k.split("/")[-1] == tail for k in keys) == 1 else key


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"
