"""Learn a + b with one Dense unit: the classic Keras custom-training-loop article, on Keras 3.

python -m examples.sum --out runs/sum
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
from keras import ops

import core


@dataclass
class Config(core.RunConfig):
    """Train a one-unit Dense layer to add two integers, with a compiled custom loop."""

    epochs: int = core.arg(50, min=1)
    """passes over the 100 training samples"""
    lr: float = core.arg(0.01, above=0)
    """Adam learning rate (the article used 1e-4, which needs far more epochs)"""
    batch_size: int = core.arg(1, min=1)
    """samples per step (the article: 1)"""
    steps_per_call: int = core.arg(1, min=1)
    """train steps fused into one compiled call (100 with batch size 1 = one call per epoch)"""
    train_samples: int = core.arg(100, min=1)
    """size of the training set"""
    test_samples: int = core.arg(10, min=1)
    """size of the test set"""
    mode: Literal["eager", "graph", "xla"] = "xla"
    """how steps are compiled: eager (plain Python, for debugging), graph (tf.function; jax.jit on JAX) or
    xla (tf.function with jit_compile; jax.jit on JAX)"""

    def validate(self) -> None:
        if self.batch_size > self.train_samples:
            raise core.UsageError(f"--batch-size {self.batch_size} exceeds --train-samples {self.train_samples}")


def make_dataset(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The article's data: pairs of integers in [0, 9) and their sum, as float32."""
    x = rng.integers(0, 9, size=(n, 2))
    return x.astype("float32"), x.sum(axis=1, keepdims=True).astype("float32")


def sse(y_true, y_pred):
    """A free-form loss: sum of squared errors."""
    return ops.sum(ops.square(y_true - y_pred))


def build(config: Config):
    """Model, symbolic graph and the compiled train / test functions (the article's steps 2-4)."""
    x = keras.Input(shape=[2], name="x")
    y_true = keras.Input(shape=[1], name="y_true")
    model = keras.Model(x, keras.layers.Dense(1)(x))
    y_pred = model(x)
    loss = sse(y_true, y_pred)
    optimizer = keras.optimizers.Adam(learning_rate=config.lr)
    updates = core.minimize(loss, model.trainable_variables, optimizer)
    train = core.function(inputs=[x, y_true], outputs={"loss": loss}, updates=updates, mode=config.mode)
    test = core.function(inputs=[x, y_true], outputs={"loss": loss}, mode=config.mode)
    return model, optimizer, train, test


def train(config: Config) -> dict:
    """Run the article's loop; return the summary."""
    rng = core.seed_everything(config.seed)
    x_train, y_train = make_dataset(config.train_samples, rng)
    x_test, y_test = make_dataset(config.test_samples, rng)
    model, optimizer, train_fn, test_fn = build(config)
    print(f"stepping on {core.describe_device()}")
    per_epoch = config.train_samples // config.batch_size  # full batches; the remainder waits for a reshuffle
    total = config.epochs * per_epoch
    objects = {"model": model, "optimizer": optimizer}
    with core.Run(config, objects, total=total, desc="sum", bar_keys=["loss"], checkpoint_every=per_epoch) as run:
        while run.running:
            epoch, done = divmod(run.step, per_epoch)
            xs, ys = epoch_batches(x_train, y_train, config, epoch)
            while done < per_epoch and not run.stop_requested:
                n = min(config.steps_per_call, per_epoch - done)
                if n > 1:  # n batches stacked on a steps axis, one compiled call
                    loss = train_fn.fused([xs[done : done + n], ys[done : done + n]])["loss"]
                else:  # the article's loop: one call per batch
                    loss = train_fn([xs[done], ys[done]])["loss"]
                run.advance(n, {"loss": loss})
                done += n
            if done == per_epoch:
                test_mse = test_fn([x_test, y_test])["loss"] / config.test_samples
                run.log({"losses/train_sse": np.mean(loss), "losses/test_mse": test_mse})
                if (epoch + 1) % max(1, config.epochs // 10) == 0 or epoch + 1 == config.epochs:
                    run.write(f"epoch {epoch + 1}: train SSE {np.mean(loss):.4g}, test MSE {test_mse:.4g}")

    kernel, bias = (keras.ops.convert_to_numpy(w).astype("float64") for w in model.layers[-1].weights)
    test_mse = test_fn([x_test, y_test])["loss"] / config.test_samples
    print(f"test MSE {test_mse:.3g}")
    print(f"learned kernel {kernel.ravel().round(4).tolist()}  bias {bias.round(4).tolist()}  (exact: [1, 1], [0])")
    figures = {"test_mse": test_mse, "kernel": kernel.ravel().tolist(), "bias": bias.ravel().tolist()}
    return run.write_summary({**figures, "epochs": run.step // per_epoch})


def epoch_batches(x: np.ndarray, y: np.ndarray, config: Config, epoch: int):
    """One epoch's full batches, shuffled by (seed, epoch) so a resumed run sees the same order, on the device."""
    order = np.random.default_rng([config.seed, 2, epoch]).permutation(len(x))
    per_epoch = len(x) // config.batch_size
    keep = order[: per_epoch * config.batch_size]
    xs = ops.convert_to_tensor(x[keep].reshape(per_epoch, config.batch_size, 2))
    ys = ops.convert_to_tensor(y[keep].reshape(per_epoch, config.batch_size, 1))
    return xs, ys


def main(argv: list[str] | None = None) -> int:
    return core.run_main(train, Config, argv)


if __name__ == "__main__":
    sys.exit(main())
