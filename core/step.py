"""The step builder: ordered update groups compiled into train / test / gradient calls.

The math of one step lives here, written with ``keras.ops`` and stateful Keras
optimizers; how it is compiled (tf.function, XLA, fused loops) is the backend
module's business.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from core.backends import get_backend, split_loss
from core.errors import InputError, StepDefinitionError
from core.transforms import GradientTransform, global_norm

MODES = ("eager", "graph", "xla")


@dataclass(frozen=True)
class InputSpec:
    """Shape (``None`` for any size) and dtype of one named input of a step."""

    shape: tuple[int | None, ...]
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "dtype", keras.backend.standardize_dtype(self.dtype))


@dataclass
class UpdateGroup:
    """One loss, the variables it trains, their optimizer and an optional gradient transform.

    ``loss_fn(batch)`` returns a scalar loss, or ``(loss, aux)`` where ``aux`` is a
    dict of extra scalars to log under their own keys.
    """

    name: str
    loss_fn: Callable[[dict], Any]
    variables: Sequence[Any]
    optimizer: keras.optimizers.Optimizer
    transform: GradientTransform | None = None
    repeats: int = 1
    """updates of this group per step, each on a fresh loss (e.g. several critic steps per generator step);
    the logs are those of the last one"""
    repeat_key: str | None = None
    """if set, the repeats run as one compiled loop and each update's batch holds its index (an int32 scalar
    tensor, 0 to repeats - 1) under this key: the loss picks its minibatch with it (PPO's epochs x minibatches)"""


class _Scaled:
    """A loss function times a loss scale; the unscaled loss travels in the aux under ``key``."""

    key = "__unscaled_loss__"

    def __init__(self, name: str, loss_fn: Callable[[dict], Any], scale: Any):
        self.name, self.loss_fn, self.scale = name, loss_fn, scale

    def __call__(self, batch: dict):
        loss, aux = split_loss(self.loss_fn(batch))
        return ops.cast(loss, "float32") * self.scale, {**aux, self.key: loss}


def _var_name(v: Any) -> str:
    return getattr(v, "path", None) or getattr(v, "name", repr(v))


def _check_groups(groups: Sequence[UpdateGroup]) -> None:
    seen: dict[int, str] = {}
    names = set()
    for group in groups:
        if group.name in names:
            raise StepDefinitionError(f"two update groups are named {group.name!r}")
        names.add(group.name)
        if not group.variables:
            raise StepDefinitionError(f"update group {group.name!r} has no variables")
        if not (isinstance(group.repeats, int) and group.repeats >= 1):
            raise StepDefinitionError(
                f"update group {group.name!r}: repeats must be an int >= 1, got {group.repeats!r}"
            )
        for other in groups:
            if other is not group and other.optimizer is group.optimizer:
                raise StepDefinitionError(
                    f"update groups {other.name!r} and {group.name!r} share one optimizer; give each group its own"
                )
        for v in group.variables:
            if id(v) in seen:
                raise StepDefinitionError(
                    f"variable {_var_name(v)!r} is in update groups "
                    f"{seen[id(v)]!r} and {group.name!r}; a variable may be trained by one group only"
                )
            seen[id(v)] = group.name


def _check_after_update(groups: Sequence[UpdateGroup], rules: Sequence[Callable[[], None]]) -> None:
    trained = {id(v): g.name for g in groups for v in g.variables}
    for rule in rules:
        if not callable(rule):
            raise StepDefinitionError(f"after_update holds {rule!r}, which is not callable (use core.ema(...))")
        for v in getattr(rule, "variables", ()):
            if id(v) in trained:
                raise StepDefinitionError(
                    f"{rule!r} assigns {_var_name(v)!r}, which update group {trained[id(v)]!r} trains; "
                    "an average needs its own copy of the variables"
                )


def _check_parallel(groups: Sequence[UpdateGroup], mechanics: Any) -> None:
    for group in groups:
        for option, instead in mechanics.unsupported_optimizer_options.items():
            if getattr(group.optimizer, option, None):
                raise StepDefinitionError(
                    f"update group {group.name!r}: the optimizer's {option} does not work data parallel on "
                    f"{keras.backend.backend()}; use {instead}"
                )
        if isinstance(group.optimizer, keras.optimizers.LossScaleOptimizer) and not mechanics.loops_with_updates:
            raise StepDefinitionError(
                f"update group {group.name!r}: float16 loss scaling is not supported in a data-parallel "
                "TensorFlow step; use mixed_bfloat16 or float32"
            )
        mechanics.check_variables(list(group.variables))


def check_batch(batch: Mapping[str, Any], specs: Mapping[str, InputSpec], leading: int = 0) -> None:
    """Raise InputError naming the input, expected and received shape/dtype on mismatch.

    ``leading`` extra leading axes (the steps axis of a fused call) are allowed.
    """
    if not isinstance(batch, Mapping):
        raise InputError(f"a batch must be a dict of named inputs {sorted(specs)}, got {type(batch).__name__}")
    missing = sorted(set(specs) - set(batch))
    extra = sorted(set(batch) - set(specs))
    if missing or extra:
        raise InputError(f"batch inputs do not match: missing {missing}, unexpected {extra}")
    for name, spec in specs.items():
        value = batch[name]
        shape = tuple(getattr(value, "shape", np.shape(value)))
        # Arrays and tensors must carry the declared dtype; plain Python lists have none and are cast to it.
        dtype = keras.backend.standardize_dtype(value.dtype) if hasattr(value, "dtype") else spec.dtype
        expected = (None,) * leading + spec.shape
        ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
        if not ok or dtype != spec.dtype:
            raise InputError(
                f"input {name!r}: expected shape {_fmt(expected)} dtype {spec.dtype}, "
                f"received shape {_fmt(shape)} dtype {dtype}"
            )


class InputChecker:
    """``check_batch`` that remembers signatures it has passed: checking costs tens of
    microseconds, a hot loop calls with the same few signatures again and again."""

    def __init__(self, specs: Mapping[str, InputSpec]):
        self.specs = dict(specs)
        self._passed: set = set()

    def __call__(self, batch: Mapping[str, Any], leading: int = 0) -> None:
        try:
            key = (leading, *((k, tuple(v.shape), v.dtype) for k, v in batch.items()))
        except (AttributeError, TypeError):  # no shape / dtype (lists, scalars): check every time
            check_batch(batch, self.specs, leading)
            return
        if key not in self._passed:
            check_batch(batch, self.specs, leading)
            self._passed.add(key)


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


class StepFunctions:
    """Compiled train / test / gradients calls built by :func:`make_step`."""

    def __init__(
        self,
        groups: Sequence[UpdateGroup],
        inputs: Mapping[str, InputSpec] | None,
        outputs_fn: Callable[[dict], dict] | None,
        mode: str,
        prepare_fn: Callable[[dict], dict] | None = None,
        after_update: Sequence[Callable[[], None]] = (),
        parallel: Any = None,
        fused_unroll: int = 1,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        _check_groups(groups)
        _check_after_update(groups, after_update)
        self.groups = list(groups)
        self.after_update = list(after_update)
        self.inputs = dict(inputs or {})
        self.outputs_fn = outputs_fn
        self.prepare_fn = prepare_fn
        self.mode = mode
        if not (isinstance(fused_unroll, int) and fused_unroll >= 1):
            raise StepDefinitionError(f"fused_unroll must be an int >= 1, got {fused_unroll!r}")
        self.fused_unroll = fused_unroll
        self._backend = get_backend()
        self._check = InputChecker(self.inputs)
        self.parallel = parallel if parallel is not None and parallel.enabled else None
        p = self._mechanics = self.parallel.mechanics if self.parallel is not None else None
        if p is not None:
            _check_parallel(self.groups, p)
        for group in self.groups:
            # Optimizer slots must exist before tracing, or they would be created inside the graph.
            if not group.optimizer.built:
                with self.parallel.scope() if self.parallel is not None else contextlib.nullcontext():
                    group.optimizer.build(list(group.variables))

        b = self._backend
        single = [{k: b.tensor_spec(s.shape, s.dtype) for k, s in self.inputs.items()}]
        stacked = [{k: b.tensor_spec((None, *s.shape), s.dtype) for k, s in self.inputs.items()}]
        # Data parallel: each call runs the math on every replica and reduces the outputs (TensorFlow), or
        # is the math itself over global arrays (JAX).
        self._one_step_on_devices = p.wrap(self._one_step_math, "train") if p else self._one_step_math
        self._compiled_step = b.compile_fn(self._one_step_on_devices, mode, single, p)
        self._compiled_test = b.compile_fn(p.wrap(self._test_math, "test") if p else self._test_math, mode, single, p)
        self._compiled_gradients = b.compile_fn(
            p.wrap(self._gradients_math, "grads") if p else self._gradients_math, mode, single, p
        )
        self._signature = single
        self._entries: dict[str, Any] = {}
        # The fused call takes the number of steps from the data; with no inputs the
        # count is a Python int, so each distinct count traces once.
        if self.inputs:
            self._compiled_steps = b.compile_fn(self._many_steps_math, mode, stacked, p)
        else:
            self._compiled_steps = b.compile_fn(self._many_steps_without_inputs, mode, None, p)

    # ----- the math of one step (backend-agnostic) -----
    def _group_grads(self, group: UpdateGroup, batch: dict):
        loss, aux, grads = self._backend.value_and_grad(lambda: group.loss_fn(batch), group.variables)
        unconnected = [_var_name(v) for v, g in zip(group.variables, grads) if g is None]
        if unconnected:
            raise StepDefinitionError(
                f"update group {group.name!r}: its loss gives no gradient to {unconnected}; "
                "remove them from the group or make the loss depend on them"
            )
        return loss, aux, grads

    def _with_derived(self, batch: dict) -> dict:
        """The batch plus what ``prepare_fn`` derives from it, once per step, outside every gradient."""
        if self.prepare_fn is None:
            return batch
        return {**batch, **self.prepare_fn(batch)}

    def _update(self, group: UpdateGroup, batch: dict) -> dict:
        """One update of ``group``: gradients, transform, optimizer; returns its logs."""
        if isinstance(group.optimizer, keras.optimizers.LossScaleOptimizer):
            return self._scaled_update(group, batch)
        # A Keras optimizer's fixed loss_scale_factor: the loss is scaled for the gradients (as Keras' own trainers
        # do) and the gradients unscaled for the logs and the transform; the optimizer unscales what it is given.
        scale = group.optimizer.loss_scale_factor
        if scale is None:
            loss, aux, grads = self._group_grads(group, batch)
        else:
            scaled = _Scaled(group.name, group.loss_fn, scale)
            _, aux, grads = self._group_grads(UpdateGroup(group.name, scaled, group.variables, group.optimizer), batch)
            loss, grads = aux.pop(scaled.key), [g / scale for g in grads]
        if self._mechanics is not None:  # the global batch's gradients, before the transform sees them
            grads = list(self._mechanics.mean_gradients(grads))
        logs = self._transformed(group, loss, grads)
        applied = self._mechanics.optimizer_gradients(grads) if self._mechanics is not None else grads
        group.optimizer.apply(applied if scale is None else [g * scale for g in applied], list(group.variables))
        return {**logs, **aux}

    def _transformed(self, group: UpdateGroup, loss: Any, grads: list) -> dict:
        """The group's transform applied to ``grads`` in place; the logs of the loss and both norms."""
        logs = {f"{group.name}/loss": loss, f"{group.name}/grad_norm": global_norm(grads)}
        if group.transform is not None:
            grads[:] = list(group.transform(list(grads)))
            logs[f"{group.name}/grad_norm_applied"] = global_norm(grads)
        else:
            logs[f"{group.name}/grad_norm_applied"] = logs[f"{group.name}/grad_norm"]
        return logs

    def _scaled_update(self, group: UpdateGroup, batch: dict) -> dict:
        """An update through a ``keras.optimizers.LossScaleOptimizer`` (float16), without branches: the loss is
        multiplied by the optimizer's dynamic scale, the gradients divided by it (so the logged norms and the
        transform see the unscaled ones); non-finite gradients skip the update (weights and the inner optimizer's
        state put back) and halve the scale; ``dynamic_growth_steps`` finite steps in a row double it. Keras'
        own ``apply`` branches with ``ops.cond`` around variable writes, which a JAX step cannot trace."""
        opt = group.optimizer
        scale = ops.copy(opt.dynamic_scale)  # a read now (TF: convert_to_tensor would read at each later use)
        scaled = _Scaled(group.name, group.loss_fn, scale)
        dummy = UpdateGroup(group.name, scaled, group.variables, opt)
        _, aux, grads = self._group_grads(dummy, batch)
        loss = aux.pop(scaled.key)
        grads = [ops.cast(g, "float32") / scale for g in grads]
        finite = ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in grads]))
        grads = [ops.where(finite, g, ops.zeros_like(g)) for g in grads]
        logs = self._transformed(group, loss, grads)
        state = list(group.variables) + list(opt.inner_optimizer.variables)
        before = [ops.copy(v) for v in state]
        opt.inner_optimizer.apply(grads, list(group.variables))
        for v, old in zip(state, before):
            v.assign(ops.where(finite, ops.convert_to_tensor(v), old))
        count = ops.copy(opt.step_counter)
        grow = ops.logical_and(finite, ops.equal(count, opt.dynamic_growth_steps - 1))
        opt.step_counter.assign(ops.where(finite, ops.where(grow, 0, count + 1), 0))
        opt.dynamic_scale.assign(ops.where(finite, ops.where(grow, scale * 2.0, scale), scale * 0.5))
        logs[f"{group.name}/loss_scale"] = scale
        logs[f"{group.name}/skipped"] = 1.0 - ops.cast(finite, "float32")
        return {**logs, **aux}

    def _looped_updates(self, group: UpdateGroup, batch: dict) -> dict:
        """``repeats`` updates in one loop, the index in the batch under ``repeat_key``: one traced update, not
        ``repeats`` unrolled copies (PPO's 16 minibatch updates would otherwise compile 16 times over)."""

        def body(carry, i):
            logs = self._update(group, {**batch, group.repeat_key: i})
            return carry, {k: ops.cast(v, "float32") for k, v in logs.items()}

        _, logs = self._backend.scan(body, (), ops.arange(group.repeats, dtype="int32"), None, False)
        return {k: v[-1] for k, v in logs.items()}

    def _one_step_math(self, batch: dict) -> dict:
        batch = self._with_derived(batch)
        logs: dict[str, Any] = {}
        for group in self.groups:
            if group.repeat_key is not None and (self._mechanics is None or self._mechanics.loops_with_updates):
                logs.update(self._looped_updates(group, batch))
                continue
            if group.repeat_key is not None:  # unrolled: this engine cannot apply an optimizer inside a loop
                for i in range(group.repeats):
                    logs.update(self._update(group, {**batch, group.repeat_key: ops.convert_to_tensor(i, "int32")}))
                continue
            for _ in range(group.repeats):
                logs.update(self._update(group, batch))
        for rule in self.after_update:  # non-gradient updates (moving averages), after every group
            rule()
        return {k: ops.cast(v, "float32") for k, v in logs.items()}

    def _test_math(self, batch: dict) -> dict:
        batch = self._with_derived(batch)
        logs: dict[str, Any] = {}
        for group in self.groups:
            loss, aux = split_loss(group.loss_fn(batch))
            logs[f"{group.name}/loss"] = loss
            logs.update(aux)
        if self.outputs_fn is not None:
            logs.update(self.outputs_fn(batch))
        return {k: ops.cast(v, "float32") for k, v in logs.items()}

    def _gradients_math(self, batch: dict) -> dict:
        batch = self._with_derived(batch)
        grads = {g.name: self._group_grads(g, batch)[2] for g in self.groups}
        if self._mechanics is not None:  # the global batch's gradients, as an update would use them
            grads = {name: list(self._mechanics.mean_gradients(gs)) for name, gs in grads.items()}
        return grads

    def _many_steps_math(self, batches: dict) -> dict:
        b = self._backend
        return b.fused_loop(self._one_step_on_devices, batches, b.leading_dim(batches), self.fused_unroll)

    def _many_steps_without_inputs(self, num_steps: int) -> dict:
        return self._backend.fused_loop(self._one_step_on_devices, {}, num_steps, self.fused_unroll)

    # ----- public calls -----
    def _checked_inputs(self, batch: Mapping[str, Any] | None, leading: int = 0) -> dict:
        """The declared inputs checked, converted to tensors and, with data parallel, split over the devices."""
        batch = {} if batch is None else batch
        self._check(batch, leading)
        prepared = {k: self._backend.to_tensor(batch[k], s.dtype) for k, s in self.inputs.items()}
        if self._mechanics is None:
            return prepared
        for name, value in prepared.items():
            rows = int(value.shape[leading])
            if rows % self.parallel.local_devices:
                raise InputError(
                    f"input {name!r}: a batch of {rows} rows does not divide over {self.parallel.local_devices} "
                    "devices; make the batch size a multiple of the device count"
                )
        return {k: self._mechanics.put(v, leading) for k, v in prepared.items()}

    def _entry(self, name: str) -> Any:
        """The backend's cheapest entry point into a compiled single-step call, made once."""
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = self._backend.fast_entry(getattr(self, name), self._signature)
        return entry

    def _numpy(self, logs: dict) -> dict[str, Any]:
        return {k: self._backend.to_numpy(v) for k, v in logs.items()}

    def _floats(self, logs: dict) -> dict[str, Any]:
        """Scalars as Python floats; non-scalar outputs (predictions, say) stay arrays."""
        return {k: float(v) if np.ndim(v) == 0 else v for k, v in self._numpy(logs).items()}

    def _require_groups(self) -> None:
        if not self.groups:
            raise StepDefinitionError("this step has no update groups: it can only run test_step")

    def train_step(self, batch: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One forward + backward + update per group, in order; returns the logs."""
        self._require_groups()
        prepared = self._checked_inputs(batch)  # check before the first call traces anything
        return self._floats(self._entry("_compiled_step")(prepared))

    def train_steps(
        self, batches: Mapping[str, Any] | None = None, num_steps: int | None = None
    ) -> dict[str, np.ndarray]:
        """Several train steps in one compiled call; returns each log as an array, one value per step.

        With declared inputs, ``batches`` holds them stacked on a new leading axis
        and its length is the number of steps; without inputs give ``num_steps``.
        """
        self._require_groups()
        if self.inputs:
            prepared = self._checked_inputs(batches, leading=1)
            steps = {k: int(v.shape[0]) for k, v in prepared.items()}
            n = next(iter(steps.values()))
            if len(set(steps.values())) > 1:
                raise InputError(f"the stacked inputs hold different numbers of steps: {steps}")
            if num_steps is not None and num_steps != n:
                raise InputError(f"num_steps={num_steps} but the batches hold {n} steps")
            if n < 1:
                raise InputError("a fused call needs at least one step")
            return self._numpy(self._compiled_steps(prepared))
        if batches:
            raise InputError("this step declares no inputs; pass num_steps only")
        if num_steps is None or num_steps < 1:
            raise InputError(f"num_steps must be a positive int, got {num_steps!r}")
        return self._numpy(self._compiled_steps(int(num_steps)))

    def test_step(self, batch: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Forward only: each group's loss (and aux) plus ``outputs_fn``; no updates."""
        prepared = self._checked_inputs(batch)
        return self._floats(self._entry("_compiled_test")(prepared))

    def gradients(self, batch: Mapping[str, Any] | None = None) -> dict[str, list[np.ndarray]]:
        """Each group's raw gradients at the current weights, without applying them."""
        self._require_groups()
        prepared = self._checked_inputs(batch)
        grads = self._entry("_compiled_gradients")(prepared)
        return {name: [self._backend.to_numpy(g) for g in gs] for name, gs in grads.items()}

    def tracing_counts(self) -> dict[str, int | None]:
        """How often each compiled call has been traced (None in eager mode)."""
        tc = self._backend.tracing_count
        return {
            "train_step": tc(self._compiled_step),
            "train_steps": tc(self._compiled_steps),
            "test_step": tc(self._compiled_test),
            "gradients": tc(self._compiled_gradients),
        }


def make_step(
    groups: Sequence[UpdateGroup],
    inputs: Mapping[str, InputSpec] | None = None,
    outputs_fn: Callable[[dict], dict] | None = None,
    mode: str = "graph",
    prepare_fn: Callable[[dict], dict] | None = None,
    after_update: Sequence[Callable[[], None]] = (),
    parallel: Any = None,
    fused_unroll: int = 1,
) -> StepFunctions:
    """Build compiled train / test / gradient calls for ordered update groups.

    Groups run in order inside one call, so a later group sees the weights the
    earlier groups just updated. ``mode`` is "eager" (debugging), "graph"
    (tf.function) or "xla" (tf.function with jit_compile). ``prepare_fn(batch)``
    returns extra named tensors computed once per step, before the groups and
    outside their gradients (targets several losses share, such as returns);
    every loss sees them in its batch. ``after_update`` holds non-gradient updates run after the groups in
    every train step, fused steps included: ``core.ema(targets, sources, decay)`` (averaged weights, target
    networks), or any callable that assigns variables with ``keras.ops``. ``parallel`` (a
    ``core.DataParallel``) steps data-parallel: gradients of the global batch, one update per group per step,
    logs reduced to one value (see core/parallel.py for what each engine does). ``fused_unroll``: steps of a
    fused call per loop iteration on JAX (``lax.scan``'s unroll; TensorFlow ignores it). XLA on a CPU runs
    convolutions inside a loop several times slower than outside one (the image GAN: 0.40 vs 1.47 steps/s), so a
    convolutional step fuses best fully unrolled (= steps per call), at the price of compile time.
    """
    return StepFunctions(groups, inputs, outputs_fn, mode, prepare_fn, after_update, parallel, fused_unroll)
