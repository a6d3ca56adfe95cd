"""Checkpoints without pickle: every variable as a named array in one .npz, plus JSON metadata.

Written atomically, so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.run_log import atomic_write_bytes

_META = "__meta__"


def _variables(obj: Any) -> list:
    """The variables whose values make up ``obj``'s state."""
    if isinstance(obj, keras.optimizers.Optimizer):
        return list(obj.variables)
    if isinstance(obj, keras.random.SeedGenerator):
        return [obj.state]
    if isinstance(obj, keras.Layer):  # models are layers
        return list(obj.weights)
    if isinstance(obj, keras.Variable):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [v for item in obj for v in _variables(item)]
    raise TypeError(f"cannot checkpoint an object of type {type(obj).__name__}")


def save_checkpoint(path: str | os.PathLike, objects: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
    """Save the variables of named ``objects`` (models, optimizers, seed generators, variables) and ``meta``.

    ``meta`` must be JSON-serialisable (step counters, NumPy bit-generator state, config).
    """
    arrays: dict[str, np.ndarray] = {}
    for name, obj in objects.items():
        for i, v in enumerate(_variables(obj)):
            arrays[f"{name}/{i}"] = keras.ops.convert_to_numpy(v.value)
    arrays[_META] = np.array(json.dumps(dict(meta or {})))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: str | os.PathLike, objects: Mapping[str, Any]) -> dict[str, Any]:
    """Assign saved values into the variables of ``objects``; return the metadata.

    Optimizers must be built (their slots created) before loading.
    """
    with np.load(path, allow_pickle=False) as data:
        # Check everything first: a mismatch must not leave some objects loaded and others not.
        pending = []
        for name, obj in objects.items():
            variables = _variables(obj)
            pattern = re.compile(rf"{re.escape(name)}/(\d+)")
            saved = sorted((k for k in data.files if pattern.fullmatch(k)), key=lambda k: int(k.rsplit("/", 1)[1]))
            if len(saved) != len(variables):
                raise ValueError(
                    f"checkpoint {path}: {name!r} has {len(saved)} saved arrays "
                    f"but the object has {len(variables)} variables"
                )
            for key, v in zip(saved, variables):
                value = data[key]
                if tuple(value.shape) != tuple(v.shape):
                    raise ValueError(
                        f"checkpoint {path}: {key} has shape {value.shape}, variable {v.path} has {v.shape}"
                    )
                pending.append((v, value))
        for v, value in pending:
            v.assign(value)
        return json.loads(str(data[_META]))
