"""Child process of tests/test_parallel.py: data-parallel steps on 2 virtual CPU devices against one device.

Run with CUSTOMLOOP_CPU_DEVICES=2; prints one JSON line of measured differences and values.
"""

import json  # noqa: I001  (core first: it splits the CPU into devices before the backend starts)
import os

import core
import keras
import numpy as np
from keras import ops

ROWS = 8


def data(seed: int, width: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(ROWS, width)).astype("float32"), "y": rng.normal(size=(ROWS, 1)).astype("float32")}


def spec(width: int = 3) -> dict:
    return {"x": core.InputSpec((None, width)), "y": core.InputSpec((None, 1))}


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def weights(model) -> list:
    return [np.asarray(w.numpy()) for w in model.weights]


def sum_model(parallel, optimizer_cls=keras.optimizers.Adam):
    """The sum example's model (one Dense unit) with a per-row mean loss."""
    keras.utils.set_random_seed(1)
    with parallel.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        opt = optimizer_cls(0.05)

    def loss(b):
        return ops.mean(ops.square(model(b["x"]) - b["y"]))

    group = core.UpdateGroup("sum", loss, model.trainable_variables, opt, core.clip_by_global_norm(1.0))
    return model, core.make_step([group], spec(2), mode="graph", parallel=parallel)


def two_groups(parallel, synchronized: bool, optimizer_cls=keras.optimizers.Adam):
    """An encoder with BatchNormalization trained by one group, a head trained by a second on its features.

    ``synchronized``: TensorFlow's all-replica batch statistics; on JAX the default layer already computes the
    global batch's statistics (the flag exists on TensorFlow only)."""
    keras.utils.set_random_seed(2)
    bn = {"synchronized": True} if synchronized and keras.backend.backend() == "tensorflow" else {}
    with parallel.scope():
        enc = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(8, use_bias=False),
                keras.layers.BatchNormalization(**bn),
                keras.layers.ReLU(),
            ]
        )
        head = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        opts = optimizer_cls(0.02), optimizer_cls(0.03)

    def enc_loss(b):
        return ops.mean(ops.square(ops.sum(enc(b["x"], training=True), axis=1, keepdims=True) - b["y"]))

    def head_loss(b):
        return ops.mean(ops.square(head(ops.stop_gradient(enc(b["x"], training=False))) - b["y"]))

    groups = [
        core.UpdateGroup("enc", enc_loss, enc.trainable_variables, opts[0]),
        core.UpdateGroup("head", head_loss, head.trainable_variables, opts[1]),
    ]
    return enc, head, core.make_step(groups, spec(), mode="graph", parallel=parallel)


def compare_sum(one, two) -> dict:
    m1, s1 = sum_model(one)
    m2, s2 = sum_model(two)
    batch = data(0, 2)
    logs = [(s1.train_step(batch), s2.train_step(batch)) for _ in range(3)]
    stacked = {k: np.stack([v, v[::-1]]) for k, v in batch.items()}
    fused = s1.train_steps(stacked), s2.train_steps(stacked)
    grads = s1.gradients(batch)["sum"], s2.gradients(batch)["sum"]
    return {
        "log_diff": max(abs(a[k] - b[k]) for a, b in logs for k in a),
        "fused_diff": max(float(np.max(np.abs(fused[0][k] - fused[1][k]))) for k in fused[0]),
        "grad_diff": max_diff(*grads),
        "weight_diff": max_diff(weights(m1), weights(m2)),
        "grad_norm": logs[0][0]["sum/grad_norm"],
    }


def compare_two_groups(one, two, synchronized: bool) -> dict:
    e1, h1, s1 = two_groups(one, synchronized)
    e2, h2, s2 = two_groups(two, synchronized)
    logs = []
    for seed in range(3):
        batch = data(10 + seed)
        logs.append((s1.train_step(batch), s2.train_step(batch)))
    return {
        "log_diff": max(abs(a[k] - b[k]) for a, b in logs for k in a),
        "weight_diff": max_diff(weights(e1) + weights(h1), weights(e2) + weights(h2)),
    }


def per_replica_batchnorm(one, two) -> dict:
    """Unsynchronised BatchNormalization over 2 replicas, against single-device steps on each half (SGD, so
    an update is linear in the gradient): the loss is the halves' mean, gradients their mean, and the moving
    statistics the mean of the statistics each half would leave."""
    batch = data(20)
    halves = [{k: v[: ROWS // 2] for k, v in batch.items()}, {k: v[ROWS // 2 :] for k, v in batch.items()}]
    enc, head, step = two_groups(two, synchronized=False, optimizer_cls=keras.optimizers.SGD)
    start = weights(enc)
    logs = step.train_step(batch)
    half_logs, half_weights = [], []
    for half in halves:
        e, h, s = two_groups(one, synchronized=False, optimizer_cls=keras.optimizers.SGD)
        half_logs.append(s.train_step(half))
        half_weights.append(weights(e))
    expected = [(a + b) / 2 for a, b in zip(*half_weights)]
    return {
        "loss_diff": abs(logs["enc/loss"] - (half_logs[0]["enc/loss"] + half_logs[1]["enc/loss"]) / 2),
        "weight_diff": max_diff(weights(enc), expected),
        "moved": max_diff(weights(enc), start),
    }


def noise(one, two) -> dict:
    """A loss that draws its own noise: the rows each replica draws, and the seed state after the step."""
    out = {}
    for name, parallel in (("one", one), ("two", two)):
        keras.utils.set_random_seed(3)
        with parallel.scope():
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
            seeds = keras.random.SeedGenerator(7)
            opt = keras.optimizers.SGD(0.01)

        def loss(b, model=model, seeds=seeds):
            draw = keras.random.normal((ops.shape(b["x"])[0], 1), seed=seeds)
            return ops.mean(ops.square(model(b["x"]) + draw - b["y"])), {"noise_mean": ops.mean(draw)}

        def drawn(b, seeds=seeds):
            return {"noise": keras.random.normal((ops.shape(b["x"])[0], 1), seed=seeds)}

        group = core.UpdateGroup("m", loss, model.trainable_variables, opt)
        step = core.make_step([group], spec(), outputs_fn=drawn, mode="graph", parallel=parallel)
        step.train_step(data(30))
        out[name] = {
            "noise": step.test_step(data(30))["noise"].ravel().tolist(),
            "state": np.asarray(seeds.state.numpy()).tolist(),
        }
    return out


def bad_inputs(two) -> dict:
    _, step = sum_model(two)
    errors = {}
    try:
        step.train_step({k: v[:3] for k, v in data(0, 2).items()})
    except core.InputError as e:
        errors["rows"] = str(e)
    try:
        core.DataParallel(3)
    except core.UsageError as e:
        errors["devices"] = str(e)
    return errors


def main() -> None:
    one, two = core.SingleDevice(), core.DataParallel(2)
    results = {
        "backend": keras.backend.backend(),
        "devices": two.num_devices,
        "sum": compare_sum(one, two),
        "bn_sync": compare_two_groups(one, two, synchronized=True),
        "noise": noise(one, two),
        "bad": bad_inputs(two),
    }
    if keras.backend.backend() == "tensorflow":  # JAX has no per-replica statistics: bn_sync is its default layer
        results["bn_per_replica"] = per_replica_batchnorm(one, two)
    print(json.dumps(results))


if __name__ == "__main__":
    assert os.environ.get("CUSTOMLOOP_CPU_DEVICES") == "2"
    main()
