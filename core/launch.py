"""Start one command as N cooperating processes on this machine (a localhost cluster).

    python -m core.launch --processes 2 -- python -m examples.sum --devices all --out runs/sum2

Each process gets the variables its engine reads: Keras' ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` /
``_NUM_PROCESSES`` / ``_PROCESS_ID`` (JAX: ``jax.distributed.initialize`` through
``keras.distribution.initialize``, CPU collectives over gloo) and ``TF_CONFIG`` (TensorFlow:
``MultiWorkerMirroredStrategy``). On several machines, set the same variables yourself with their addresses.
If one process fails, the others are stopped; the exit code is the first failure's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time


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


def launch(command: list[str], count: int, timeout: float | None = None) -> int:
    ports = free_ports(count + 1)
    children = [
        subprocess.Popen(command, env={**os.environ, **process_env(i, count, ports[0], ports[1:])})
        for i in range(count)
    ]
    deadline = None if timeout is None else time.monotonic() + timeout
    failed = 0
    try:
        while any(c.poll() is None for c in children):
            codes = [c.returncode for c in children if c.returncode not in (None, 0)]
            if codes or (deadline is not None and time.monotonic() > deadline):
                failed = codes[0] if codes else 124
                break
            time.sleep(0.1)
    except KeyboardInterrupt:  # the terminal sent SIGINT to every child too: let them save and stop
        failed = 130
    finally:
        _stop(children, grace=30.0 if failed == 130 else 5.0)
    return failed or next((c.returncode for c in children if c.returncode), 0)


def _stop(children: list[subprocess.Popen], grace: float) -> None:
    """Wait ``grace`` seconds for running children, then terminate and kill what is left."""
    end = time.monotonic() + grace
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        for c in children:
            if sig is not None and c.poll() is None:
                c.send_signal(sig)
        while any(c.poll() is None for c in children) and time.monotonic() < end:
            time.sleep(0.1)
        end = time.monotonic() + 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.launch",
        description="Run a command as N cooperating processes on this machine (localhost cluster).",
        epilog="example: python -m core.launch --processes 2 -- python -m examples.sum --devices all --out d",
    )
    parser.add_argument("--processes", type=int, default=2, help="how many processes (default 2)")
    parser.add_argument("--timeout", type=float, default=None, help="stop them all after this many seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, got {args.processes}")
    return launch(command, args.processes, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
