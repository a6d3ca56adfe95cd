"""Keep TensorFlow's start-up noise off the terminal unless the user asks for it (``CUSTOMLOOP_VERBOSE=1``)."""

from __future__ import annotations

import contextlib
import os
import sys


def verbose_requested() -> bool:
    """``CUSTOMLOOP_VERBOSE=1`` (a command's ``--verbose`` sets it before its imports: examples/command.py)."""
    return os.environ.get("CUSTOMLOOP_VERBOSE") == "1"


@contextlib.contextmanager
def silenced_stderr(enabled: bool = True):
    """Point file descriptor 2 at /dev/null.

    TensorFlow's C++ runtime prints oneDNN and CUDA-probing notices before absl
    logging is initialised, so TF_CPP_MIN_LOG_LEVEL alone does not hide them.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
