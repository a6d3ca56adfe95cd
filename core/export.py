"""Trained networks out as ``.keras`` files: what ``keras.saving.load_model`` reads without this project's code.

A run exports its networks next to its checkpoint (``core.Run(export={"generator": G, ...})``), at every
checkpoint and at the end. ``checkpoint.npz`` is for resuming (optimizer slots, seeds, counters); a ``.keras``
file is for using the network elsewhere: ``keras.saving.load_model("out/generator.keras")``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras

from core.run_log import file_mode

Exported = keras.Model | Callable[[], keras.Model]


def save_keras(model: keras.Model, path: str | os.PathLike) -> Path:
    """``model.save(path)``, written beside the target and renamed: a crash never leaves a half-written file."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"a Keras model file ends in .keras, got {path.name}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def export_models(out: str | os.PathLike, models: Mapping[str, Exported]) -> list[Path]:
    """Each named model (or a function that builds it now, e.g. a policy with the current observation statistics
    folded in) saved as ``out/<name>.keras``."""
    written = []
    for name, model in models.items():
        built: Any = model() if callable(model) and not isinstance(model, keras.Model) else model
        written.append(save_keras(built, Path(out) / f"{name}.keras"))
    return written
