"""What an example does as a command before its first import of Keras: standard library only.

A program module calls :func:`guard_start_up` at its top, under ``if __name__ == "__main__":``, so that importing
the module (a test, a notebook) changes nothing in the process:

    if __name__ == "__main__":  # before the imports below, which take seconds
        from examples.command import guard_start_up

        guard_start_up()

Until ``core.run_main`` starts (it ends the guard), Ctrl-C exits at once with one line and code 130: there is
nothing to save yet, and a KeyboardInterrupt raised inside a C extension's initialisation can come out as another
error (NumPy turns it into an ImportError with a long message). An engine that cannot start (``StartupError``: a
bad ``KERAS_BACKEND``) is one line and code 2.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def guard_start_up() -> None:
    """Ctrl-C exits at once (130) and a StartupError is one line (2) until ``core.run_main`` takes over; then
    import core, which imports Keras with TensorFlow's start-up log hidden (shown with ``--verbose`` among the
    arguments: ``CUSTOMLOOP_VERBOSE=1``)."""
    if "--verbose" in sys.argv[1:]:
        os.environ["CUSTOMLOOP_VERBOSE"] = "1"
    sys.excepthook = _start_up_failed
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _exit_at_once)
    import core  # noqa: F401  (Keras imported now, its start-up log hidden, before the program imports it)


def not_a_command(module: str) -> int:
    """For ``python -m`` of a library module: one line naming the commands, code 2 (it would do nothing)."""
    print(f"{module}: not a command; run python3 -m examples.sum|gan|reinforce|ppo (--help)", file=sys.stderr)
    return 2


def _exit_at_once(signum, frame):
    print("\ninterrupted", file=sys.stderr, flush=True)
    os._exit(130)


def _start_up_failed(exc_type, exc, tb):
    if issubclass(exc_type, KeyboardInterrupt):
        _exit_at_once(None, None)
    if exc_type.__name__ == "StartupError" and exc_type.__module__ == "core.errors":
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "customloop"
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        os._exit(2)
    sys.__excepthook__(exc_type, exc, tb)


_exit_at_once.start_up_guard = True  # core.cli.end_start_up_guard recognises these by the mark
_start_up_failed.start_up_guard = True
