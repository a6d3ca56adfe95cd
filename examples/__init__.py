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


def _refuse_modules_that_are_not_commands() -> None:
    # `python -m examples.ppo` would import a library module, run nothing and exit 0: say which commands exist.
    argv = getattr(sys, "orig_argv", [])
    target = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else ""
    if target != "examples" and not target.startswith("examples."):
        return
    source = os.path.join(os.path.dirname(__file__), target.split(".")[1] + ".py") if "." in target else ""
    if source and (not os.path.exists(source) or '__name__ == "__main__"' in open(source).read()):
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
