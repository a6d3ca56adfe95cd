"""Runnable examples: ``python -m examples.sum|gan|reinforce``."""

import os
import sys


def _interrupted_quietly(exc_type, exc, tb, _default=sys.excepthook):
    # Importing Keras and TensorFlow takes seconds: Ctrl-C then is a clean line, not an import traceback.
    if issubclass(exc_type, KeyboardInterrupt):
        print("\ninterrupted", file=sys.stderr, flush=True)
        os._exit(130)
    _default(exc_type, exc, tb)


sys.excepthook = _interrupted_quietly

# Importing core first hides TensorFlow's start-up log (unless --verbose) before any
# example module imports keras.
import core  # noqa: E402, F401
