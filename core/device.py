"""What a run steps on."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from core.backends import get_backend


def describe_device() -> str:
    """``"<backend> on GPU: <name>"`` or ``"<backend> on CPU"``."""
    return f"{keras.backend.backend()} on {get_backend().describe_device()}"


def gpu_available() -> bool:
    return get_backend().gpu_available()


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled programs on disk so a repeated run (same shapes, any seed) skips compiling them.

    JAX: ``jax_compilation_cache_dir``; on the CPU it cuts a small agent's start-up from seconds to a fraction
    of one. TensorFlow has no cache for graphs (returns None). ``path`` defaults to
    ``$CUSTOMLOOP_COMPILE_CACHE`` or ``~/.cache/customloop/xla``; ``CUSTOMLOOP_COMPILE_CACHE=off`` turns it off.
    """
    setting = os.environ.get("CUSTOMLOOP_COMPILE_CACHE", "")
    if setting.lower() == "off":
        return None
    folder = Path(path or setting or Path.home() / ".cache" / "customloop" / "xla").expanduser()
    return get_backend().enable_compilation_cache(folder)
