"""What a run steps on."""

from __future__ import annotations

import keras

from core.backends import get_backend


def describe_device() -> str:
    """``"<backend> on GPU: <name>"`` or ``"<backend> on CPU"``."""
    return f"{keras.backend.backend()} on {get_backend().describe_device()}"


def gpu_available() -> bool:
    return get_backend().gpu_available()
