"""What an example does as a command before its first import of Keras: standard library only.

A program module calls :func:`guard_start_up` at its top, under ``if __name__ == "__main__":``, so that importing
the module (a test, a notebook) changes nothing in the process:

    if __name__ == "__main__":  # before the imports below, which take seconds
        from examples.command import guard_start_up

        guard_start_up()

Until ``core.run_main`` starts (it ends the guard), Ctrl-C exits at once with one line and code 130: there is
nothing to save yet, and a KeyboardInterrupt raised inside a C extension's initialisation can come out as another
error (NumPy turns it into an ImportError with a long message). An engine that cannot start (``StartupError``: a
bad ``KERAS_BACKEND``; a memory limit or a broken install) is one line and code 2.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def guard_start_up() -> None:
    """Ctrl-C exits at once (130) until ``core.run_main`` takes over; then import core, which imports Keras with
    TensorFlow's start-up log hidden (shown with ``--verbose`` among the arguments: ``CUSTOMLOOP_VERBOSE=1``).
    An engine that cannot start (a bad ``KERAS_BACKEND``, a memory limit, a broken install) is one line, code 2."""
    if "--verbose" in sys.argv[1:]:
        os.environ["CUSTOMLOOP_VERBOSE"] = "1"
    sys.excepthook = _interrupted_quietly
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _exit_at_once)
    try:
        import core  # noqa: F401  (Keras imported now, its start-up log hidden, before the program imports it)
    except Exception as e:  # whatever the engines raise half-imported: ImportError, MemoryError, AttributeError...
        why = " ".join(str(e).split())[:300] or type(e).__name__
        if type(e).__name__ != "StartupError":  # core's own check of the environment says it all
            backend = os.environ.get("KERAS_BACKEND") or "its configured backend"
            why = f"Keras could not start on {backend} ({type(e).__name__}: {why}); is memory limited (ulimit -v)?"
        print(f"{_prog()}: error: {why}", file=sys.stderr, flush=True)
        sys.exit(2)


def dispatch(
    flag: str, default: str, programs: dict[str, str], argv: list[str] | None = None, keep_flag: bool = True
) -> int:
    """Run the program module that ``flag``'s value names (``programs``: value -> module) with ``argv``; the flag
    stays in its arguments (``keep_flag``, when the program has it too) or is taken out. ``--help`` without the
    flag describes the choice and where each program's own flags are listed. Returns the program's exit code."""
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    value, rest = _take(flag, argv)
    if value is None and ("-h" in argv or "--help" in argv):
        choices = "\n".join(f"  {flag} {v:<10} python -m {m}" for v, m in programs.items())
        print(f"usage: {_prog()} [{flag} {{{','.join(programs)}}}] [flags of that program]\n\n{flag} picks the "
              f"program (default {default}); each lists its own flags with --help:\n{choices}")  # fmt: skip
        return 0
    choice = default if value is None else value
    if choice not in programs:
        print(f"{_prog()}: error: argument {flag}: invalid choice: {choice!r} (choose from "
              f"{', '.join(map(repr, programs))})", file=sys.stderr)  # fmt: skip
        return 2
    module = importlib.import_module(programs[choice])
    return module.main(argv if keep_flag else rest)


def _take(flag: str, argv: list[str]) -> tuple[str | None, list[str]]:
    """``flag``'s value in ``argv`` (``--flag v`` or ``--flag=v``; the last one wins, as argparse) and the rest."""
    value, rest, i = None, [], 0
    while i < len(argv):
        if argv[i] == flag and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith(flag + "="):
            value = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    return value, rest


def _prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "customloop"


def not_a_command(module: str) -> int:
    """For ``python -m`` of a library module: one line naming the commands, code 2 (it would do nothing)."""
    print(f"{module}: not a command; run python3 -m examples.sum|gan|gan_2d|gan_images|reinforce|ppo|reinforce_mc "
          "(--help)", file=sys.stderr)  # fmt: skip
    return 2


def _exit_at_once(signum, frame):
    print("\ninterrupted", file=sys.stderr, flush=True)
    os._exit(130)


def _interrupted_quietly(exc_type, exc, tb):
    if issubclass(exc_type, KeyboardInterrupt):  # raised before the handler was in place
        _exit_at_once(None, None)
    sys.__excepthook__(exc_type, exc, tb)


_exit_at_once.start_up_guard = True  # core.cli.end_start_up_guard recognises these by the mark
_interrupted_quietly.start_up_guard = True
