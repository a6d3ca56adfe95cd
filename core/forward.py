"""Compiled forward calls: a non-training function of declared inputs (acting, inference).

``make_step`` compiles updates; some loops also need a compiled call that updates no
weights, e.g. an agent sampling actions for a batch of environments once per
environment step. Such a call is dominated by the fixed cost of entering the
compiled function, so the backend gives it its cheapest entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras

from core.backends import get_backend
from core.step import MODES, InputChecker, InputSpec


class ForwardFunction:
    """``fn(batch)`` compiled for the declared ``inputs``; called with a dict of arrays, returns NumPy.

    The inputs are checked against their specs (shape with ``None`` for any size,
    dtype; once per new signature), so a call never retraces on TensorFlow;
    ``tracing_count()`` tells.
    """

    def __init__(self, fn: Callable[[dict], Any], inputs: Mapping[str, InputSpec], mode: str = "graph"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not inputs:
            raise ValueError("a forward function needs at least one declared input")
        self.inputs = dict(inputs)
        self._check = InputChecker(self.inputs)
        self.mode = mode
        self._backend = b = get_backend()
        signature = [{k: b.tensor_spec(s.shape, s.dtype) for k, s in self.inputs.items()}]
        self._compiled = b.compile_fn(fn, mode, signature)
        self._call = None  # the cheapest entry point, made on first call
        self._signature = signature

    def __call__(self, batch: Mapping[str, Any]) -> Any:
        self._check(batch)
        if self._call is None:
            self._call = self._backend.fast_entry(self._compiled, self._signature)
        prepared = {k: self._backend.to_tensor(batch[k], s.dtype) for k, s in self.inputs.items()}
        return keras.tree.map_structure(self._backend.to_numpy, self._call(prepared))

    def tracing_count(self) -> int | None:
        """How often the function has been traced (None in eager mode)."""
        return self._backend.tracing_count(self._compiled)


def make_forward(fn: Callable[[dict], Any], inputs: Mapping[str, InputSpec], mode: str = "graph") -> ForwardFunction:
    """Compile ``fn(batch) -> tensor or dict of tensors`` for declared ``inputs``; no weight updates.

    ``mode`` is "eager", "graph" (tf.function) or "xla". Random ops inside should take a
    ``keras.random.SeedGenerator`` so each call draws fresh numbers.
    """
    return ForwardFunction(fn, inputs, mode)
