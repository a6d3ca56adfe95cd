"""Runnable examples: ``python -m examples.sum|gan|reinforce``."""

import os
import signal
import sys
import threading


def _interrupted_quietly(exc_type, exc, tb, _default=sys.excepthook):
    # Importing Keras and TensorFlow takes seconds: Ctrl-C then is a clean line, not an import traceback.
    if issubclass(exc_type, KeyboardInterrupt):
        print("\ninterrupted", file=sys.stderr, flush=True)
        os._exit(130)
    _default(exc_type, exc, tb)


def _exit_at_once(signum, frame):
    # During the imports there is nothing to save, and a KeyboardInterrupt raised inside a C extension's
    # initialisation can come out as another error (NumPy turns it into an ImportError with a long message).
    print("\ninterrupted", file=sys.stderr, flush=True)
    os._exit(130)


COMMANDS = ("sum", "gan", "reinforce")


def _module_run() -> str:
    """The module of ``python -m MODULE`` ("" for a script or ``-c``): the first non-option argument ends the
    interpreter's own options, of which -W and -X take a value."""
    argv = getattr(sys, "orig_argv", [])[1:]
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] == "-m":
            return argv[i + 1] if i + 1 < len(argv) else ""
        if argv[i].startswith("-m"):  # -mexamples.ppo
            return argv[i][2:]
        if argv[i] == "-c" or argv[i] == "-":
            return ""
        i += 2 if argv[i] in ("-W", "-X") else 1
    return ""


def _runs_as_main(source: str) -> bool:
    with open(source, encoding="utf-8") as f:
        return '__name__ == "__main__"' in f.read()


def _refuse_modules_that_are_not_commands() -> None:
    # `python -m examples.ppo` would import a library module, run nothing and exit 0: say which commands exist.
    target = _module_run()
    if target != "examples" and not target.startswith("examples."):
        return
    name = target.split(".")[1] if "." in target else "__init__"
    source = os.path.join(os.path.dirname(__file__), name + ".py")
    if name != "__init__" and (not os.path.exists(source) or _runs_as_main(source)):
        return  # a command (it runs as __main__), or no such module: Python says so itself
    print(f"{target}: not a command; run python3 -m examples.{'|'.join(COMMANDS)} (--help)", file=sys.stderr)
    sys.exit(2)


_refuse_modules_that_are_not_commands()
sys.excepthook = _interrupted_quietly
# signal.signal works in the main thread only (an import from another thread keeps the excepthook alone).
_in_main_thread = threading.current_thread() is threading.main_thread()
_previous = signal.signal(signal.SIGINT, _exit_at_once) if _in_main_thread else None

# Importing core first hides TensorFlow's start-up log (unless --verbose) before any
# example module imports keras.
import core  # noqa: E402, F401

# From here on Ctrl-C is what it was (a KeyboardInterrupt): core.run_main and core's training loop handle it.
if _previous is not None:
    signal.signal(signal.SIGINT, _previous)
