"""One module per Keras backend; everything backend-specific about a step lives there."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import keras

from core._quiet import SUPPORTED_BACKENDS as SUPPORTED


def get_backend() -> ModuleType:
    name = keras.backend.backend()
    if name not in SUPPORTED:
        raise NotImplementedError(
            f"customloop supports the Keras backend(s) {', '.join(SUPPORTED)}; "
            f"KERAS_BACKEND={name!r} is not implemented yet"
        )
    return importlib.import_module(f"{__name__}.{name}")


def split_loss(out: Any) -> tuple[Any, dict]:
    """A loss function returns ``loss`` or ``(loss, aux_dict)``; always give both."""
    if isinstance(out, tuple):
        loss, aux = out
        return loss, dict(aux)
    return out, {}
