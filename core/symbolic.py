"""The article's symbolic form: declare inputs, outputs and updates once, get callables.

Keras 2 spelled it ``K.function(inputs, outputs, updates=optimizer.get_updates(...))``.
Here the symbolic tensors become functional models and the updates become
update groups of a compiled step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from core.errors import InputError
from core.step import InputSpec, StepFunctions, UpdateGroup, make_step
from core.transforms import GradientTransform


@dataclass
class Minimize:
    """A symbolic loss to minimise over ``variables`` with ``optimizer``."""

    loss: Any
    variables: Sequence[Any]
    optimizer: keras.optimizers.Optimizer
    transform: GradientTransform | None = None
    name: str = "train"


def minimize(
    loss: Any,
    variables: Sequence[Any],
    optimizer: keras.optimizers.Optimizer,
    transform: GradientTransform | None = None,
    name: str = "train",
) -> Minimize:
    """The successor of ``optimizer.get_updates(params, loss)``."""
    return Minimize(loss, list(variables), optimizer, transform, name)


class Function:
    """A compiled call over symbolic inputs; see :func:`function`."""

    def __init__(
        self,
        inputs: Sequence[Any],
        outputs: Mapping[str, Any],
        updates: Sequence[Minimize],
        mode: str,
        parallel: Any = None,
    ):
        self.input_names = [t.name for t in inputs]
        if len(set(self.input_names)) != len(self.input_names):
            raise ValueError(f"symbolic inputs need distinct names, got {self.input_names}")
        specs = {t.name: InputSpec(tuple(t.shape), t.dtype) for t in inputs}
        outputs = dict(outputs)

        def graph(tensors: list) -> keras.Model:
            return keras.Model(inputs=list(inputs), outputs=tensors)

        groups = []
        for i, update in enumerate(updates):
            # The first group's forward pass also yields the declared outputs, so they
            # are the values before any update, as K.function returned them.
            extra = list(outputs.values()) if i == 0 else []
            model = graph([update.loss, *extra])
            groups.append(
                UpdateGroup(
                    update.name,
                    self._loss_fn(model, list(outputs) if i == 0 else []),
                    update.variables,
                    update.optimizer,
                    update.transform,
                )
            )
        outputs_fn = None
        if outputs and not updates:
            out_model = graph(list(outputs.values()))
            names = list(outputs)

            def outputs_fn(batch: dict) -> dict:
                values = out_model([batch[n] for n in self.input_names])
                values = values if isinstance(values, (list, tuple)) else [values]
                return dict(zip(names, values))

        self.has_updates = bool(updates)
        self.step: StepFunctions = make_step(groups, specs, outputs_fn, mode, parallel=parallel)

    def _loss_fn(self, model: keras.Model, output_names: list[str]):
        def loss_fn(batch: dict):
            values = model([batch[n] for n in self.input_names])
            values = values if isinstance(values, (list, tuple)) else [values]
            return values[0], dict(zip(output_names, values[1:]))

        return loss_fn

    def _as_dict(self, values: Any) -> dict:
        if isinstance(values, Mapping):
            return dict(values)
        values = list(values)
        if len(values) != len(self.input_names):
            raise InputError(f"expected {len(self.input_names)} inputs {self.input_names}, got {len(values)}")
        return dict(zip(self.input_names, values))

    def __call__(self, values: Any) -> dict[str, Any]:
        """One call: a train step when the function has updates, else forward only."""
        batch = self._as_dict(values)
        return self.step.train_step(batch) if self.has_updates else self.step.test_step(batch)

    def fused(self, values: Any) -> dict[str, np.ndarray]:
        """Several train steps in one call; inputs stacked on a leading steps axis."""
        if not self.has_updates:
            raise TypeError("fused() runs train steps; this function has no updates")
        return self.step.train_steps(self._as_dict(values))


def function(
    inputs: Sequence[Any],
    outputs: Mapping[str, Any] | None = None,
    updates: Sequence[Minimize] | Minimize | None = None,
    mode: str = "graph",
    parallel: Any = None,
) -> Function:
    """Compile symbolic ``outputs`` of ``keras.Input`` tensors, optionally with ``updates``.

    With updates, a call runs forward + backward + every update in order and
    returns the outputs (computed before the updates) with each group's loss
    and gradient norms. Without, a call is forward only. ``parallel``: see ``make_step``.
    """
    if isinstance(updates, Minimize):
        updates = [updates]
    return Function(list(inputs), dict(outputs or {}), list(updates or []), mode, parallel)
