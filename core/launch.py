"""Start one command as N cooperating processes on this machine (a localhost cluster).

    python -m core.launch --processes 2 -- python -m examples.sum --devices all --out runs/sum2

Each process gets the variables its engine reads: Keras' ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` /
``_NUM_PROCESSES`` / ``_PROCESS_ID`` (JAX: ``jax.distributed.initialize`` through
``keras.distribution.initialize``, CPU collectives over gloo) and ``TF_CONFIG`` (TensorFlow:
``MultiWorkerMirroredStrategy``). On several machines, set the same variables yourself with their addresses.

The launcher watches every process: when one fails, it names it, stops the others (SIGTERM, then SIGKILL after a
grace period) and exits with the failed process's code. A SIGTERM, SIGINT or SIGHUP to the launcher (a scheduler's
preemption, Ctrl-C) goes to every process once (they run in their own process group, so a terminal's Ctrl-C does
not reach them twice), and the launcher returns when they have saved, with code 128 + the signal. Exit codes of
processes killed by a signal are reported as 128 + the signal, as a shell does.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from core.config import OneLineErrorParser, positive_int
from core.errors import UsageError

MAX_PROCESSES = 256
SAVE_GRACE = 120.0  # seconds the processes get to finish their call and save after a stop signal
FAILURE_GRACE = 10.0  # seconds the others get to stop after one failed


def free_ports(count: int) -> list[int]:
    """Ports free on localhost now (held open together so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def process_env(index: int, count: int, coordinator: int, workers: list[int]) -> dict[str, str]:
    """What process ``index`` of ``count`` needs to find the others, for either engine."""
    cluster = {"cluster": {"worker": [f"localhost:{p}" for p in workers]}, "task": {"type": "worker", "index": index}}
    return {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{coordinator}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": str(count),
        "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
        "TF_CONFIG": json.dumps(cluster),
    }


def exit_code(returncode: int) -> int:
    """A child's return code as a shell reports it: 128 + n for a process killed by signal n."""
    return 128 - returncode if returncode < 0 else returncode


class Launch:
    """N processes of one command, watched together; see the module docstring."""

    def __init__(self, command: Sequence[str], count: int, timeout: float | None = None):
        self.command, self.count, self.timeout = list(command), count, timeout
        self.children: list[subprocess.Popen] = []
        self.stop_signal: int | None = None

    def start(self) -> None:
        ports = free_ports(self.count + 1)
        for i in range(self.count):
            env = {**os.environ, **process_env(i, self.count, ports[0], ports[1:])}
            try:
                self.children.append(subprocess.Popen(self.command, env=env, start_new_session=True))
            except FileNotFoundError:
                self.stop(FAILURE_GRACE)
                raise UsageError(f"no such program: {self.command[0]}") from None

    def _forward(self, signum, frame) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            print(f"launch: {signal.Signals(signum).name}: passed to every process; waiting for them to save",
                  file=sys.stderr, flush=True)  # fmt: skip
            self.send(signum)

    def send(self, signum: int) -> None:
        for c in self.children:
            if c.poll() is None:
                c.send_signal(signum)

    def watch(self) -> int:
        """Until every process ended, one failed, the timeout passed or a stop signal came; the exit code."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while None in (codes := [c.poll() for c in self.children]):  # every child polled, not the first running
            failed = next((i for i, code in enumerate(codes) if code not in (None, 0)), None)
            if self.stop_signal is not None:
                self.stop(SAVE_GRACE)
                return 128 + self.stop_signal
            if failed is not None:
                code = exit_code(self.children[failed].returncode)
                print(f"launch: process {failed} failed (exit code {code}); stopping the others",
                      file=sys.stderr, flush=True)  # fmt: skip
                self.stop(FAILURE_GRACE)
                return code
            if deadline is not None and time.monotonic() > deadline:
                print(f"launch: --timeout {self.timeout:g} s passed; stopping every process", file=sys.stderr)
                self.stop(FAILURE_GRACE)
                return 124
            time.sleep(0.05)
        return next((exit_code(c.returncode) for c in self.children if c.returncode), 0)

    def stop(self, grace: float) -> None:
        """SIGTERM to the processes still running (they save and stop), SIGKILL to those left after ``grace``."""
        if self.stop_signal is None:
            self.send(signal.SIGTERM)
        end = time.monotonic() + grace
        while any(c.poll() is None for c in self.children) and time.monotonic() < end:
            time.sleep(0.05)
        self.send(signal.SIGKILL)
        for c in self.children:
            c.wait()


def launch(command: Sequence[str], count: int, timeout: float | None = None) -> int:
    """Run ``command`` as ``count`` processes; the exit code (see the module docstring)."""
    run = Launch(command, count, timeout)
    previous = {s: signal.signal(s, run._forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        run.start()
        return run.watch()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(text)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(
        prog="python -m core.launch",
        description="Run a command as N cooperating processes on this machine (localhost cluster).",
        epilog="example: python -m core.launch --processes 2 -- python -m examples.sum --devices all --out d",
    )
    parser.add_argument("--processes", type=positive_int, default=2, help=f"how many processes (default 2, at most "
                        f"{MAX_PROCESSES})")  # fmt: skip
    parser.add_argument("--timeout", type=seconds, default=None, help="stop them all after this many seconds")
    parser.add_argument("command", nargs="...", help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if args.processes > MAX_PROCESSES:
        parser.error(f"argument --processes: at most {MAX_PROCESSES}, got {args.processes}")
    try:
        return launch(command, args.processes, args.timeout)
    except (UsageError, OSError) as e:  # no such program, too many open files, no free port
        print(f"python -m core.launch: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
