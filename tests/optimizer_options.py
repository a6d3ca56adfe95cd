"""Keras optimizer options through an update group against the same optimizer applied by hand: shared by
tests/test_optimizer_options.py (one device) and its data-parallel child process (run as a script with
CUSTOMLOOP_CPU_DEVICES=2, it prints one JSON line of differences)."""

import json  # noqa: I001  (core first: it splits the CPU into devices before the backend starts)
import sys

import core
import keras
import numpy as np
from keras import ops

OPTIONS = {
    "plain": {},
    "gradient_accumulation_steps": {"gradient_accumulation_steps": 3},
    "use_ema": {"use_ema": True, "ema_momentum": 0.9},
    "ema_overwrite_frequency": {"use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 2},
    "global_clipnorm": {"global_clipnorm": 0.05},
    "clipnorm": {"clipnorm": 0.05},
    "clipvalue": {"clipvalue": 0.01},
    "loss_scale_factor": {"loss_scale_factor": 128.0},
    "weight_decay": {"weight_decay": 0.1},
}
STEPS, ROWS = 6, 8
_rng = np.random.default_rng(0)
X = _rng.normal(size=(STEPS, ROWS, 3)).astype("float32")
Y = _rng.normal(size=(STEPS, ROWS, 1)).astype("float32")
W0 = _rng.normal(size=(3, 1)).astype("float32")


def linear_model() -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(W0)
    return model


def values(variables) -> list:
    return [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in variables]


def by_hand(options: dict) -> tuple[list, list]:
    """The optimizer applied eagerly to gradients computed in NumPy (d/dw of the mean squared error, times the
    loss scale, as Keras' own trainers scale the loss): (kernel, optimizer variables) after STEPS updates."""
    model, optimizer = linear_model(), keras.optimizers.Adam(0.1, **options)
    kernel = model.layers[0].kernel
    optimizer.build([kernel])
    for i in range(STEPS):
        w = values([kernel])[0]
        grad = 2.0 / ROWS * X[i].T @ (X[i] @ w - Y[i]) * options.get("loss_scale_factor", 1.0)
        optimizer.apply([ops.convert_to_tensor(grad)], [kernel])
    return values([kernel]), values(optimizer.variables)


def through_a_step(options: dict, mode: str, fused: bool, parallel=None) -> tuple[list, list, dict]:
    """The same updates through core.make_step: one step per call, or all of them fused into one call."""
    parallel = parallel or core.SingleDevice()
    with parallel.scope():
        model, optimizer = linear_model(), keras.optimizers.Adam(0.1, **options)
    group = core.UpdateGroup("g", lambda b: ops.mean(ops.square(model(b["x"]) - b["y"])), model.trainable_variables,
                             optimizer)  # fmt: skip
    inputs = {"x": core.InputSpec((None, 3)), "y": core.InputSpec((None, 1))}
    step = core.make_step([group], inputs, mode=mode, parallel=parallel)
    if fused:
        logs = {k: v[-1] for k, v in step.train_steps({"x": X, "y": Y}).items()}
    else:
        logs = [step.train_step({"x": X[i], "y": Y[i]}) for i in range(STEPS)][-1]
    return values(model.trainable_variables), values(optimizer.variables), logs


def max_diff(a: list, b: list) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


if __name__ == "__main__":  # the data-parallel child: differences per option, mode and call style, or the error
    parallel, results = core.DataParallel(2), {"backend": keras.backend.backend()}
    for name, options in OPTIONS.items():
        kernel, slots = by_hand(options)
        for mode in ("graph", "xla"):
            for fused in (False, True):
                try:
                    got, got_slots, _ = through_a_step(options, mode, fused, parallel)
                    results[f"{name}/{mode}/{fused}"] = max(max_diff(got, kernel), max_diff(got_slots, slots))
                except core.StepDefinitionError as e:
                    results[f"{name}/{mode}/{fused}"] = str(e)
    print(json.dumps(results))
    sys.stdout.flush()
