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
