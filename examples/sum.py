"""Learn a + b with one Dense unit: the classic Keras custom-training-loop article, on Keras 3.

python -m examples.sum --out runs/sum
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below, which take seconds (examples/command.py)
    from examples.command import guard_start_up

    guard_start_up()

import dataclasses
import functools
import sys
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
from keras import ops

import core
from examples import PROGRAMS


@dataclass
class Config(core.RunConfig):
    """Train a one-unit Dense layer to add two integers, with a compiled custom loop."""

    epochs: int = core.arg(50, min=1, max=10**6)
    """passes over the 100 training samples"""
    lr: float = core.arg(0.01, above=0)
    """Adam learning rate (the article used 1e-4, which needs far more epochs)"""
    batch_size: int = core.arg(1, min=1)
    """samples per step (the article: 1)"""
    accumulate: int = core.arg(1, min=1, max=10_000)
    """gradient accumulation: Adam updates once every N steps, with the mean of their gradients (Keras'
    gradient_accumulation_steps), so a batch N times --batch-size trains without being held at once"""
    steps_per_call: int = core.arg(1, min=1, max=100_000)
    """train steps fused into one compiled call (100 with batch size 1 = one call per epoch)"""
    train_samples: int = core.arg(100, min=1, max=10_000_000)
    """size of the training set"""
    test_samples: int = core.arg(10, min=1, max=10_000_000)
    """size of the test set"""
    population: int = core.arg(1, min=1, max=4096)
    """runs trained side by side in one compiled call (core.Population): seeds --seed to --seed + N - 1, each
    member equal to its own run; summary.json gets one row per member"""
    devices: str = "1"
    """devices to step on, data parallel: N or all (CUSTOMLOOP_CPU_DEVICES=N shows a CPU as N devices); the
    batch size and the test set must divide by the device count"""
    mode: Literal["eager", "graph", "xla"] = "xla"
    """how steps are compiled: eager (plain Python, for debugging), graph (tf.function; jax.jit on JAX) or
    xla (tf.function with jit_compile; jax.jit on JAX)"""

    def validate(self) -> None:
        if self.batch_size > self.train_samples:
            raise core.UsageError(f"--batch-size {self.batch_size} exceeds --train-samples {self.train_samples}")
        if self.population > 1 and self.devices != "1":
            raise core.UsageError("--population trains its members on one device; leave --devices at 1")


def make_dataset(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The article's data: pairs of integers in [0, 9) and their sum, as float32."""
    x = rng.integers(0, 9, size=(n, 2))
    return x.astype("float32"), x.sum(axis=1, keepdims=True).astype("float32")


def sse(y_true, y_pred):
    """A free-form loss: sum of squared errors."""
    return ops.sum(ops.square(y_true - y_pred))


def build(config: Config, parallel: core.DataParallel | core.SingleDevice):
    """Model, symbolic graph and the compiled train / test functions (the article's steps 2-4)."""
    x = keras.Input(shape=[2], name="x")
    y_true = keras.Input(shape=[1], name="y_true")
    with parallel.scope():
        model = keras.Model(x, keras.layers.Dense(1)(x))
        accumulate = config.accumulate if config.accumulate > 1 else None
        optimizer = keras.optimizers.Adam(learning_rate=config.lr, gradient_accumulation_steps=accumulate)
    y_pred = model(x)
    loss = sse(y_true, y_pred)
    # A mean over rows is the same figure however the rows are split over devices; a sum is not.
    mse = ops.mean(ops.square(y_true - y_pred))
    updates = core.minimize(loss, model.trainable_variables, optimizer)
    kw = {"inputs": [x, y_true], "mode": config.mode, "parallel": parallel}
    train = core.function(outputs={"loss": loss}, updates=updates, **kw)
    test = core.function(outputs={"mse": mse}, **kw)
    return model, optimizer, train, test


def check_divisible(config: Config, devices: int) -> None:
    for flag, rows in (("--batch-size", config.batch_size), ("--test-samples", config.test_samples)):
        if rows % devices:
            raise core.UsageError(f"{flag} {rows} does not divide over {devices} devices")


def train(config: Config) -> dict:
    """Run the article's loop; return the summary."""
    if config.population > 1:
        return train_population(config)
    parallel = core.devices_from_flag(config.devices)  # first: a cluster forms before any tensor exists
    check_divisible(config, parallel.num_devices)
    rng = core.seed_everything(config.seed)
    x_train, y_train = make_dataset(config.train_samples, rng)
    x_test, y_test = make_dataset(config.test_samples, rng)
    x_test, y_test = parallel.local_rows(x_test), parallel.local_rows(y_test)
    model, optimizer, train_fn, test_fn = build(config, parallel)
    print(f"stepping on {core.describe_device()}, {parallel.describe()}")
    per_epoch = config.train_samples // config.batch_size  # full batches; the remainder waits for a reshuffle
    total = config.epochs * per_epoch
    objects = {"model": model, "optimizer": optimizer}
    run = core.Run(
        config,
        objects,
        total=total,
        desc="sum",
        bar_keys=["loss"],
        checkpoint_every=per_epoch,
        may_change=("epochs", "steps_per_call", "test_samples", "devices"),  # the rest would change what is trained
        chief=parallel.is_chief,
        export={"model": model},
    )
    with run:
        while run.running:
            epoch, done = divmod(run.step, per_epoch)
            xs, ys = epoch_batches(x_train, y_train, config, epoch, parallel)
            while done < per_epoch and not run.stop_requested:
                n = min(config.steps_per_call, per_epoch - done)
                if n > 1:  # n batches stacked on a steps axis, one compiled call
                    loss = train_fn.fused([xs[done : done + n], ys[done : done + n]])["loss"]
                else:  # the article's loop: one call per batch
                    loss = train_fn([xs[done], ys[done]])["loss"]
                run.advance(n, {"loss": loss})
                done += n
            if done == per_epoch:
                test_mse = test_fn([x_test, y_test])["mse"]
                run.log({"losses/train_sse": np.mean(loss), "losses/test_mse": test_mse})
                if (epoch + 1) % max(1, config.epochs // 10) == 0 or epoch + 1 == config.epochs:
                    run.write(f"epoch {epoch + 1}: train SSE {np.mean(loss):.4g}, test MSE {test_mse:.4g}")

    kernel, bias = (keras.ops.convert_to_numpy(w).astype("float64") for w in model.layers[-1].weights)
    test_mse = test_fn([x_test, y_test])["mse"]
    print(f"test MSE {test_mse:.3g}")
    print(f"learned kernel {kernel.ravel().round(4).tolist()}  bias {bias.round(4).tolist()}  (exact: [1, 1], [0])")
    figures = {
        "test_mse": test_mse,
        "kernel": kernel.ravel().tolist(),
        "bias": bias.ravel().tolist(),
        "devices": parallel.num_devices,
    }
    return run.write_summary({**figures, "epochs": run.step // per_epoch})


def train_population(config: Config) -> dict:
    """The same loop for ``--population`` members at once: each built and fed as its own run (its seed's data,
    weights and batch order), stepped together by core.Population; the summary has one row per member."""
    seeds = [config.seed + i for i in range(config.population)]
    members = [member_run(dataclasses.replace(config, seed=seed, population=1)) for seed in seeds]
    population = core.Population(members[0]["train"].step, [m["objects"] for m in members])
    print(f"stepping on {core.describe_device()}, {config.population} members (seeds {seeds[0]}-{seeds[-1]})")
    per_epoch = config.train_samples // config.batch_size
    model = members[0]["model"]  # the models member 0's step trains: a member's values are loaded there to use it

    def member_model(i: int) -> keras.Model:
        population.member(i)
        return model

    exported = {f"model_seed{seed}": functools.partial(member_model, i) for i, seed in enumerate(seeds)}
    run = core.Run(config, {"population": population.stacked}, total=config.epochs * per_epoch, desc="sum",
                   checkpoint_every=per_epoch, may_change=("epochs", "steps_per_call", "test_samples"),
                   export=exported)  # fmt: skip
    with run:
        while run.running:
            epoch, done = divmod(run.step, per_epoch)
            batches = [epoch_batches(*m["train_data"], m["config"], epoch, core.SingleDevice()) for m in members]
            xs, ys = (np.stack([np.asarray(b[k]) for b in batches]) for k in (0, 1))
            while done < per_epoch and not run.stop_requested:
                n = min(config.steps_per_call, per_epoch - done)
                logs = population.train_steps({"x": xs[:, done : done + n], "y_true": ys[:, done : done + n]})
                run.advance(n, {"loss": logs["loss"]})
                done += n
    rows = []
    for i, m in enumerate(members):
        kernel, bias = (keras.ops.convert_to_numpy(w).astype("float64") for w in member_model(i).layers[-1].weights)
        test_mse = members[0]["test"](list(m["test_data"]))["mse"]
        rows.append({"seed": seeds[i], "test_mse": test_mse, "kernel": kernel.ravel().tolist(), "bias": bias.tolist()})
        print(f"seed {seeds[i]}: test MSE {test_mse:.3g}, kernel {kernel.ravel().round(4).tolist()}")
    mse = [r["test_mse"] for r in rows]
    aggregate = {"members": len(rows), "median_test_mse": float(np.median(mse)), "worst_test_mse": max(mse)}
    return run.write_summary({"population": rows, **aggregate, "epochs": run.step // per_epoch})


def member_run(config: Config) -> dict:
    """One member as its own run builds it: its seed's data, then its model, optimizer and functions."""
    rng = core.seed_everything(config.seed)
    train_data = make_dataset(config.train_samples, rng)
    test_data = make_dataset(config.test_samples, rng)
    model, optimizer, train_fn, test_fn = build(config, core.SingleDevice())
    return {"config": config, "train_data": train_data, "test_data": test_data, "model": model,
            "objects": {"model": model, "optimizer": optimizer}, "train": train_fn, "test": test_fn}  # fmt: skip


def epoch_batches(x: np.ndarray, y: np.ndarray, config: Config, epoch: int, parallel):
    """One epoch's full batches, shuffled by (seed, epoch) so a resumed run (and every process) sees the same
    order; this process's rows of each, on the device."""
    order = core.derived_rng(config.seed, "batch-order", epoch).permutation(len(x))
    per_epoch = len(x) // config.batch_size
    keep = order[: per_epoch * config.batch_size]
    xs = parallel.local_rows(x[keep].reshape(per_epoch, config.batch_size, 2), axis=1)
    ys = parallel.local_rows(y[keep].reshape(per_epoch, config.batch_size, 1), axis=1)
    return ops.convert_to_tensor(xs), ops.convert_to_tensor(ys)


def main(argv: list[str] | None = None) -> int:
    return core.run_main(train, Config, argv, PROGRAMS)


if __name__ == "__main__":
    sys.exit(main())
