"""Backend-specific operations a loss or a step body may call, with one signature on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.backends import get_backend


def input_gradient(fn: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
    """``(fn(x), d sum(fn(x)) / dx)``, differentiable again: for R1 and WGAN-GP penalties inside a loss."""
    return get_backend().input_gradient(fn, x)


def scan(f: Callable, init: Any, xs: Any = None, length: Any = None, reverse: bool = False) -> tuple:
    """``keras.ops.scan`` whose body may read and assign Keras variables (a seed generator, environment state in
    variables) inside a compiled step: on JAX the touched variables' values travel in the loop's carry."""
    return get_backend().scan(f, init, xs, length, reverse)
