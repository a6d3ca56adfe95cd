"""Checkpoints without pickle: every variable as a named array in one .npz, plus JSON metadata.

Each array is keyed ``<object name>/<variable path>`` (``g/generator/dense/kernel``), so reordering
named layers does not hand one layer's weights to another. Keras numbers auto-generated names per
process (``dense_3``, ``adam_1``, and inside optimizer slot names), so the same model built twice
gets different paths; those numbers are left out of the keys, and variables whose keys then coincide
(the unnamed Dense layers of one Sequential) are told apart by their order: ``.../kernel``,
``.../kernel#1``. Name layers to make a checkpoint independent of their order.

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

from core.errors import CheckpointError
from core.run_log import atomic_write_bytes

_META = "__meta__"
# Keras' per-process uniquifier: "dense_3/kernel", "adam_1/...", "sequential_1_dense_2_kernel_momentum".
_AUTO_NUMBER = re.compile(r"_\d+(?=[/_]|$)")
_SHOWN = 3  # names listed in an error before "and N more"


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


def _keyed(name: str, obj: Any) -> dict[str, Any]:
    """``obj``'s variables by checkpoint key, in the object's variable order."""
    if "/" in name:
        raise ValueError(f"checkpoint object names cannot contain '/': {name!r}")
    keyed: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for v in _variables(obj):
        base = f"{name}/{_AUTO_NUMBER.sub('', v.path)}"
        n = seen.get(base, 0)
        seen[base] = n + 1
        keyed[base if n == 0 else f"{base}#{n}"] = v
    return keyed


def keyed_variables(objects: Mapping[str, Any]) -> dict[str, Any]:
    """Every variable of named ``objects`` by its checkpoint key (``g/generator/dense/kernel``), in order."""
    keyed: dict[str, Any] = {}
    for name, obj in objects.items():
        keyed.update(_keyed(name, obj))
    return keyed


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown if len(names) <= _SHOWN else f"{shown} and {len(names) - _SHOWN} more"


def save_checkpoint(path: str | os.PathLike, objects: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
    """Save the variables of named ``objects`` (models, optimizers, seed generators, variables) and ``meta``.

    ``meta`` must be JSON-serialisable (step counters, NumPy bit-generator state, config).
    """
    arrays: dict[str, np.ndarray] = {}
    for name, obj in objects.items():
        for key, v in _keyed(name, obj).items():
            arrays[key] = keras.ops.convert_to_numpy(v.value)
    arrays[_META] = np.array(json.dumps(dict(meta or {})))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every array and the metadata of the checkpoint at ``path``; CheckpointError if it is not one."""
    if Path(path).exists() and not Path(path).is_file():  # a folder, a FIFO (reading one would wait forever)
        raise CheckpointError(f"checkpoint {path} is not a regular file")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, Mapping):  # a bare .npy array, not an archive of named ones
            raise CheckpointError(f"checkpoint {path} is not an .npz archive")
        with data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop(_META)))
    except (FileNotFoundError, PermissionError, MemoryError, CheckpointError):
        raise
    except KeyError:
        raise CheckpointError(f"checkpoint {path} has no {_META} entry (not written by save_checkpoint)") from None
    except Exception as e:  # zipfile and NumPy raise many kinds on damaged bytes (NotImplementedError, RuntimeError,
        # BadZipFile, zlib.error, EOFError, ValueError, OverflowError, ...): whatever they raise, the file is damaged
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: {_META} is not a JSON object")
    return arrays, meta


def _kind(dtype: Any) -> str:
    """float, int or bool: a float variable takes any float width (precision policies), never an integer."""
    name = keras.backend.standardize_dtype(dtype)
    return next((kind for kind in ("bool", "float", "int") if kind in name), name)  # bfloat16, uint8: float, int


def load_checkpoint(path: str | os.PathLike, objects: Mapping[str, Any]) -> dict[str, Any]:
    """Assign saved values into the variables of ``objects``; return the metadata.

    All or nothing: every object is checked before any variable is assigned. Arrays of objects
    not named in ``objects`` are ignored, so one network can be loaded from a whole run.
    Optimizers must be built (their slots created) before loading.
    """
    arrays, meta = _read(path)
    pending, missing, unexpected, wrong_shape, wrong_kind, non_finite = [], [], [], [], [], []
    for name, obj in objects.items():
        keyed = _keyed(name, obj)
        unexpected += [k for k in arrays if k.startswith(f"{name}/") and k not in keyed]
        for key, v in keyed.items():
            saved = arrays.get(key)
            if saved is None:
                missing.append(key)
            elif tuple(saved.shape) != tuple(v.shape):
                wrong_shape.append(f"{key} saved {tuple(saved.shape)}, variable {tuple(v.shape)}")
            elif _kind(saved.dtype) != _kind(v.dtype):
                wrong_kind.append(f"{key} saved {saved.dtype}, variable {keras.backend.standardize_dtype(v.dtype)}")
            elif _kind(saved.dtype) == "float" and not np.isfinite(saved.astype("float32")).all():
                non_finite.append(key)  # never written by a run (its guard stops first): a damaged file
            else:
                pending.append((v, saved))
    problems = [
        f"{label} {_some(names)}"
        for label, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch:", wrong_shape),
            ("dtype mismatch:", wrong_kind),
            ("non-finite values in", non_finite),
        )
        if names
    ]
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the objects: " + "; ".join(problems))
    for v, value in pending:
        v.assign(value)
    return meta
