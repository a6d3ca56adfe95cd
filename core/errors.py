"""Every error customloop raises on purpose, at the bottom of the core: any module may import it, it imports none.

The command entry point (core/cli.py) turns them into exit codes: bad input (``UsageError``, ``InputError``,
``CheckpointError``, ``StartupError``) is one line and code 2; a non-finite value is one line and code 1.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad user input (a flag, a folder, a resume that does not fit): one line and exit code 2, never a traceback."""


class StartupError(RuntimeError):
    """The engine cannot start as configured (a bad ``KERAS_BACKEND`` or ``CUSTOMLOOP_CPU_DEVICES``)."""


class InputError(ValueError):
    """A batch does not match a step's declared inputs."""


class StepDefinitionError(ValueError):
    """The update groups of a step are inconsistent."""


class AfterUpdateError(ValueError):
    """An after-update rule is inconsistent (lists of different lengths, shapes that differ, a bad decay)."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or whose variables do not fit the objects loaded from it."""


class NonFiniteLossError(RuntimeError):
    """A logged loss became NaN or infinite; the run stops without saving over good state."""
