"""Many members of one step trained as one compiled program: seeds and hyperparameters of a sweep side by side.

    members = [build(seed=s, lr=lr) for s, lr in settings]          # each: its own models, optimizers, step
    population = core.Population(members[0].step, [m.objects for m in members])
    logs = population.train_steps(num_steps=100)                     # every member, 100 steps, one call
    population.member(3)                                             # member 3's weights into members[0]'s models

Each member is built as its own run would build it (its seed, its hyperparameters), so its initial weights, seed
generators and optimizer slots are that run's. The population keeps every variable of the members' ``objects``
(what a checkpoint holds) stacked along a new leading axis, one row per member, and compiles member 0's step once
for all of them: on JAX ``jax.vmap`` over the pure step (every member in one vectorised program), on TensorFlow a
loop over the members inside one compiled call. Hyperparameters that live in variables differ per member without
recompiling: a learning rate given as a float is the optimizer's ``learning_rate`` variable; an example holds
others (PPO's entropy coefficient, clip range) in ``keras.Variable``s its loss reads. A member steps exactly as
its own run does (``tests/test_population.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from core.backends import get_backend
from core.checkpoint import keyed_variables
from core.errors import InputError, StepDefinitionError
from core.step import StepFunctions


class Population:
    """``members`` (each a run's ``objects``: models, optimizers, seed generators, variables) of ``step``, which
    member 0's objects were built with; see the module docstring."""

    def __init__(self, step: StepFunctions, members: Sequence[Mapping[str, Any]]):
        if len(members) < 1:
            raise StepDefinitionError("a population needs at least one member")
        if step.parallel is not None:
            raise StepDefinitionError("a population of data-parallel steps is not supported; use one device")
        keyed = [keyed_variables(objects) for objects in members]
        _check_alike(keyed)
        self.size = len(members)
        self.keys = list(keyed[0])
        self.variables = [keyed[0][k] for k in self.keys]
        self._position = {id(v): i for i, v in enumerate(self.variables)}
        self.stacked = [_stack(k, [member[k] for member in keyed]) for k in self.keys]
        self.step = step
        self._build_calls()

    def _build_calls(self) -> None:
        b, step, n = get_backend(), self.step, self.size
        single = [{k: b.tensor_spec((n, *s.shape), s.dtype) for k, s in step.inputs.items()}]
        stacked = [{k: b.tensor_spec((n, None, *s.shape), s.dtype) for k, s in step.inputs.items()}]
        self._one = b.compile_population(step._one_step_math, step.mode, single, self)
        if step.inputs:
            self._many = b.compile_population(step._many_steps_math, step.mode, stacked, self)
        else:
            self._many = b.compile_population(step._many_steps_without_inputs, step.mode, None, self)

    def position(self, variable: Any) -> int | None:
        """Where ``variable`` (of member 0's objects) is in :attr:`stacked`; None if it is not a member's."""
        return self._position.get(id(variable))

    def _inputs(self, batch: Mapping[str, Any] | None, leading: int) -> dict:
        """Each member's inputs stacked on a leading members axis, checked against the step's specs."""
        batch = {} if batch is None else batch
        for name, value in batch.items():
            if np.shape(value)[:1] != (self.size,):
                raise InputError(f"input {name!r}: expected {self.size} members on axis 0, got shape {np.shape(value)}")
        self.step._check({k: np.asarray(v)[0] for k, v in batch.items()}, leading)
        b = get_backend()
        return {k: b.to_tensor(batch[k], s.dtype) for k, s in self.step.inputs.items()}

    def train_step(self, batch: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
        """One train step of every member; each log an array with one value per member."""
        self.step._require_groups()
        return self.step._numpy(self._one(self._inputs(batch, 0)))

    def train_steps(self, batches: Mapping[str, Any] | None = None, num_steps: int | None = None) -> dict:
        """Several train steps of every member in one compiled call; each log an array (members, steps).
        With declared inputs, ``batches`` holds them as (members, steps, ...); without, give ``num_steps``."""
        self.step._require_groups()
        if self.step.inputs:
            return self.step._numpy(self._many(self._inputs(batches, 1)))
        if batches or num_steps is None or num_steps < 1:
            raise InputError(f"this step declares no inputs; pass num_steps (a positive int), got {num_steps!r}")
        return self.step._numpy(self._many(int(num_steps)))

    def member(self, i: int) -> None:
        """Member ``i``'s values into member 0's variables (the step's models), to evaluate, export or render it."""
        if not 0 <= i < self.size:
            raise IndexError(f"member {i} of a population of {self.size}")
        for v, s in zip(self.variables, self.stacked):
            v.assign(keras.ops.convert_to_numpy(s.value)[i])

    def values(self, variable: Any) -> np.ndarray:
        """Every member's value of one of member 0's variables (members on axis 0)."""
        return np.asarray(keras.ops.convert_to_numpy(self.stacked[self._index(variable)].value))

    def assign(self, variable: Any, values: Any) -> None:
        """Set every member's value of ``variable`` (a hyperparameter held in a variable, a learning rate after
        a member solved): ``values`` has one row per member."""
        stacked = self.stacked[self._index(variable)]
        values = np.asarray(values, dtype=keras.backend.standardize_dtype(stacked.dtype))
        if values.shape != tuple(stacked.shape):
            raise ValueError(f"values of shape {values.shape} for {tuple(stacked.shape)} (members first)")
        stacked.assign(values)

    def _index(self, variable: Any) -> int:
        index = self.position(variable)
        if index is None:
            raise KeyError(f"{getattr(variable, 'path', variable)!r} is not a variable of the population's members")
        return index

    def member_values(self, i: int) -> dict[str, np.ndarray]:
        """Member ``i``'s values by checkpoint key."""
        return {k: np.asarray(keras.ops.convert_to_numpy(s.value))[i] for k, s in zip(self.keys, self.stacked)}

    def tracing_counts(self) -> dict[str, int | None]:
        tc = get_backend().tracing_count
        return {"train_step": tc(self._one), "train_steps": tc(self._many)}


def _check_alike(keyed: list[dict[str, Any]]) -> None:
    first = keyed[0]
    for i, member in enumerate(keyed[1:], start=1):
        if list(member) != list(first):
            extra, missing = sorted(set(member) - set(first)), sorted(set(first) - set(member))
            raise StepDefinitionError(f"population member {i} differs from member 0: {extra} and not {missing}")
        for key, v in member.items():
            if tuple(v.shape) != tuple(first[key].shape) or v.dtype != first[key].dtype:
                raise StepDefinitionError(
                    f"population member {i}: {key} is {tuple(v.shape)} {v.dtype}, member 0's "
                    f"{tuple(first[key].shape)} {first[key].dtype}"
                )


def _stack(key: str, variables: list) -> keras.Variable:
    """The members' values of one variable, stacked (a variable itself: checkpoints save it)."""
    values = np.stack([np.asarray(keras.ops.convert_to_numpy(v.value)) for v in variables])
    name = "population." + key.replace("/", ".")
    return keras.Variable(values, dtype=variables[0].dtype, trainable=False, name=name)
