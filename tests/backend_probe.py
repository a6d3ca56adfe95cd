"""Runs fixed steps on the backend named by KERAS_BACKEND and prints the results as JSON.

Used by tests/test_backends.py to compare backends on the same initial weights and inputs.
"""

import json
import sys

import keras
import numpy as np
from keras import ops

import core as cl


def fixed_weights(model: keras.Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.trainable:
            w.assign(rng.normal(scale=0.5, size=w.shape).astype(w.dtype))


def sum_model() -> dict:
    x = np.arange(12, dtype="float32").reshape(6, 2) % 9
    y = x.sum(1, keepdims=True)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    fixed_weights(model, 0)
    group = cl.UpdateGroup(
        "m",
        lambda b: ops.sum(ops.square(b["y"] - model(b["x"]))),
        model.trainable_variables,
        keras.optimizers.Adam(0.05),
    )
    step = cl.make_step([group], {"x": cl.InputSpec((None, 2)), "y": cl.InputSpec((None, 1))})
    logs = step.train_steps({"x": np.stack([x] * 5), "y": np.stack([y] * 5)})
    return {"loss": logs["m/loss"].tolist(), "weights": [w.numpy().tolist() for w in model.weights]}


def two_group_bn() -> dict:
    """An encoder with BatchNormalization trained by one group, a head trained by another on its output."""
    enc = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization(), keras.layers.ReLU()]
    )
    head = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    fixed_weights(enc, 1)
    fixed_weights(head, 2)

    def enc_loss(b):
        return ops.mean(ops.square(ops.sum(enc(b["x"], training=True), -1, keepdims=True) - b["y"]))

    def head_loss(b):
        return ops.mean(ops.square(head(enc(b["x"], training=False)) - b["y"]))

    step = cl.make_step(
        [
            cl.UpdateGroup("enc", enc_loss, enc.trainable_variables, keras.optimizers.SGD(0.05)),
            cl.UpdateGroup("head", head_loss, head.trainable_variables, keras.optimizers.Adam(0.05)),
        ],
        {"x": cl.InputSpec((None, 3)), "y": cl.InputSpec((None, 1))},
    )
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(4, 8, 3)).astype("float32")
    ys = xs.sum(-1, keepdims=True).astype("float32")
    logs = [step.train_step({"x": xs[i], "y": ys[i]}) for i in range(4)]
    return {
        "enc_loss": [log["enc/loss"] for log in logs],
        "head_loss": [log["head/loss"] for log in logs],
        "weights": [w.numpy().tolist() for w in [*enc.weights, *head.weights]],
    }


if __name__ == "__main__":
    print(json.dumps({"backend": keras.backend.backend(), "sum": sum_model(), "bn": two_group_bn()}))
    sys.exit(0)
