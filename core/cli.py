"""The command entry point: a parsed config in, an exit code out, never a traceback for an expected fault.

    if __name__ == "__main__":
        sys.exit(core.run_main(train, Config))

Exit codes: 0 done; 1 a non-finite value stopped the run (the last good checkpoint is kept); 2 bad input (a flag, a
file or folder that cannot be read or written, a full disk, memory that ran out for the sizes asked); 128 + the
signal's number when a signal stopped the run (130 Ctrl-C's SIGINT, 143 a scheduler's SIGTERM, 129 SIGHUP): the
shell's convention for "ended by that signal", whether the first one was handled (the run saved a checkpoint and
can be resumed) or a second one aborted it. A scheduler or script tells "finished" (0) from "stopped early,
resumable" (130/143) by the code alone.

Only a command's entry point changes the process (signal handlers, the excepthook, exiting); importing core or an
example changes nothing. Before the seconds-long import of Keras, a command guards its start-up with
``examples/command.py`` (standard library only); :func:`run_main` hands Ctrl-C back to Python once it starts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from core.config import parse_config
from core.device import enable_compilation_cache
from core.errors import (
    CheckpointError,
    InputError,
    NonFiniteLossError,
    StartupError,
    StepDefinitionError,
    UsageError,
)
from core.runs import STOP_SIGNALS, forget_stop_signal, stop_signal

C = TypeVar("C")


def run_main(
    train_fn: Callable[[C], Any], cls: type[C], argv: Sequence[str] | None = None, programs: Sequence[str] = ()
) -> int:
    """Parse a config and call ``train_fn``; returns the exit code (see the module docstring).

    ``programs``: the modules of sibling commands, so a flag given to the wrong one names the one that has it.
    """
    end_start_up_guard()
    forget_stop_signal()
    prog = program_name()
    try:
        config = parse_config(cls, argv, programs)
    except SystemExit as e:  # --help (0) or a bad flag (2, its line already printed)
        return int(e.code or 0)
    try:
        enable_compilation_cache()
        train_fn(config)
    except NonFiniteLossError as e:
        print(f"{prog}: stopped: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if lost_peer(e):
            print(f"{prog}: error: {lost_peer(e)}; the last checkpoint is kept", file=sys.stderr)
            return 1
        return bad_input(prog, e)
    except KeyboardInterrupt:  # a second stop signal, or one outside training
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return _exiting(128 + (stop_signal() or signal.SIGINT), argv)
    stopped = stop_signal()
    return _exiting(128 + stopped, argv) if stopped else 0


def _exiting(code: int, argv: Sequence[str] | None) -> int:
    """A stopped command (one that parsed the process's own arguments: ``argv`` None) has nothing left but the
    interpreter's exit: one more signal must not turn the engines' exit handlers into a traceback."""
    if argv is None and threading.current_thread() is threading.main_thread():
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
    return code


def run_script(main: Callable[[], Any]) -> int:
    """Run a script's ``main()`` (a benchmark) with the examples' exit codes: bad input, a file that cannot be
    read or written, or memory that ran out is one line and code 2. Returns the exit code."""
    prog = program_name()
    try:
        result = main()
    except subprocess.CalledProcessError as e:  # a benchmark's child run failed: its own code, its own line
        print(f"{prog}: error: {_child_failure(e)}", file=sys.stderr)
        return e.returncode if 0 < e.returncode < 128 else 1
    except Exception as e:
        return bad_input(prog, e)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def program_name() -> str:
    return sys.argv[0].split("/")[-1] if sys.argv and sys.argv[0] else "customloop"


def end_start_up_guard() -> None:
    """From here on Ctrl-C is Python's KeyboardInterrupt again (the run lifecycle handles it) and exceptions are
    Python's, if ``examples/command.py`` guarded the imports (its handlers say so with ``start_up_guard``)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if getattr(signal.getsignal(signal.SIGINT), "start_up_guard", False):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if getattr(sys.excepthook, "start_up_guard", False):
        sys.excepthook = sys.__excepthook__


def _child_failure(e: subprocess.CalledProcessError) -> str:
    """A failed child process in one line: its command, and the last line it wrote to stderr (an example's own
    one-line error, or a traceback's last line) when it was captured."""
    stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
    last = stderr.strip().splitlines()[-1:] or [f"exit code {e.returncode}"]
    command = " ".join(map(str, e.cmd)) if isinstance(e.cmd, list | tuple) else str(e.cmd)
    return f"{command[:200]} failed: {last[0].strip()[:300]}"


def bad_input(prog: str, e: Exception) -> int:
    """Exit code 2 and one line for the faults of the input (a UsageError, a check of the step's inputs, a file
    or folder that cannot be read or written, sizes that ran out of memory); anything else is re-raised."""
    if isinstance(e, UsageError | InputError | CheckpointError | StartupError | StepDefinitionError | OSError):
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
    elif out_of_memory(e):
        print(f"{prog}: error: out of memory ({_one_line(e)[:200]}); lower the sizes in the flags", file=sys.stderr)
    else:
        raise e
    return 2


# How the engines report a process of a multi-process run that died (measured by killing one of two):
# TensorFlow's collectives "Collective ops is aborted by: ... /job:worker/replica:0/task:1 ... unhealthy", JAX's
# gloo "all-reduce failed: ... Connection reset by peer".
_PEER_LOST = re.compile(r"Collective ops is aborted|stopped sending heartbeats|Gloo .*(failed|reset)|Connection reset")
_TASK = re.compile(r"/job:worker/(?:replica:\d+/)?task:(\d+)")


def lost_peer(e: BaseException) -> str | None:
    """One line for an error that means another process of this run was lost (None for any other error)."""
    text = str(e)
    if not _PEER_LOST.search(text):
        return None
    tasks = sorted({int(t) for t in _TASK.findall(text)} - {_own_process()})
    who = f"process {', '.join(map(str, tasks))}" if tasks else "another process"
    return f"{who} of this multi-process run was lost (killed, crashed or preempted: see its own log)"


def _own_process() -> int:
    return int(os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "0") or 0)


def out_of_memory(e: BaseException) -> bool:
    """Host or device memory ran out: NumPy's MemoryError, TensorFlow's ResourceExhaustedError, XLA's status."""
    text = str(e)
    return (
        isinstance(e, MemoryError)
        or type(e).__name__ == "ResourceExhaustedError"
        or "RESOURCE_EXHAUSTED" in text
        or "Out of memory" in text
    )


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__
