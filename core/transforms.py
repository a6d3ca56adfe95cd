"""Gradient transforms: plain functions from a gradient list to a gradient list.

They run inside the compiled step, written in ``keras.ops`` so every backend can trace them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from keras import ops

GradientTransform = Callable[[list], list]


def global_norm(grads: Sequence[Any]) -> Any:
    """Euclidean norm of all gradients taken together."""
    return ops.sqrt(sum(ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads))


def clip_by_global_norm(max_norm: float) -> GradientTransform:
    """Scale all gradients by ``max_norm / global_norm`` when the global norm exceeds it."""
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")

    def transform(grads: list) -> list:
        norm = global_norm(grads)
        scale = ops.minimum(1.0, max_norm / ops.maximum(norm, 1e-12))
        return [g * ops.cast(scale, g.dtype) for g in grads]

    return transform


def clip_by_value(min_value: float, max_value: float) -> GradientTransform:
    """Clip every gradient element into ``[min_value, max_value]``."""
    if min_value > max_value:
        raise ValueError(f"min_value {min_value} exceeds max_value {max_value}")

    def transform(grads: list) -> list:
        return [ops.clip(g, min_value, max_value) for g in grads]

    return transform


def chain(*transforms: GradientTransform) -> GradientTransform:
    """Apply transforms left to right."""

    def transform(grads: list) -> list:
        for t in transforms:
            grads = list(t(grads))
        return grads

    return transform
