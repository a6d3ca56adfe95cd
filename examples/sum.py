"""Learn a + b with one Dense unit: the classic Keras custom-training-loop article, on Keras 3.

python -m examples.sum --out runs/sum
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass

import keras
import numpy as np
from keras import ops

import core


@dataclass
class Config:
    """Train a one-unit Dense layer to add two integers, with a compiled custom loop."""

    epochs: int = 50
    """passes over the 100 training samples"""
    lr: float = 0.01
    """Adam learning rate (the article used 1e-4, which needs far more epochs)"""
    batch_size: int = 1
    """samples per step (the article: 1)"""
    steps_per_call: int = 1
    """train steps fused into one compiled call (100 with batch size 1 = one call per epoch)"""
    jit: bool = True
    """compile the step with XLA (else a plain tf.function graph)"""
    eager: bool = False
    """run the step eagerly, uncompiled, for debugging"""
    train_samples: int = 100
    """size of the training set"""
    test_samples: int = 10
    """size of the test set"""
    seed: int = 0
    """seed for the data, the initial weights and the shuffling"""
    out: str | None = None
    """folder for summary.json and TensorBoard scalars"""

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "steps_per_call", "train_samples", "test_samples"):
            if getattr(self, name) < 1:
                raise core.UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.batch_size > self.train_samples:
            raise core.UsageError(f"--batch-size {self.batch_size} exceeds --train-samples {self.train_samples}")
        if not self.lr > 0:
            raise core.UsageError(f"--lr must be positive, got {self.lr}")


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
    mode = "eager" if config.eager else ("xla" if config.jit else "graph")
    train = core.function(inputs=[x, y_true], outputs={"loss": loss}, updates=updates, mode=mode)
    test = core.function(inputs=[x, y_true], outputs={"loss": loss}, mode=mode)
    return model, train, test


def train(config: Config) -> dict:
    """Run the article's loop; return the summary."""
    rng = core.seed_everything(config.seed)
    x_train, y_train = make_dataset(config.train_samples, rng)
    x_test, y_test = make_dataset(config.test_samples, rng)
    model, train_fn, test_fn = build(config)
    print(f"stepping on {core.describe_device()}")

    bsz = config.batch_size
    num_batches = -(-config.train_samples // bsz)
    # Data small enough to live on the device: one tensor each, reshuffled per epoch there.
    x_dev, y_dev = ops.convert_to_tensor(x_train), ops.convert_to_tensor(y_train)
    log = core.RunLogger(config.out)
    start = time.perf_counter()
    step = 0
    for epoch in range(1, config.epochs + 1):
        perm = ops.convert_to_tensor(rng.permutation(config.train_samples))
        xs, ys = ops.take(x_dev, perm, axis=0), ops.take(y_dev, perm, axis=0)
        loss_sum, loss_count = 0.0, 0  # the running mean the bar shows
        with log.progress(num_batches, desc=f"epoch {epoch}/{config.epochs}") as bar:
            b = 0
            while b < num_batches:
                n = min(config.steps_per_call, config.train_samples // bsz - b)
                if n > 1:  # full batches stacked on a steps axis, one compiled call
                    sl = slice(b * bsz, (b + n) * bsz)
                    out = train_fn.fused([ops.reshape(xs[sl], (n, bsz, 2)), ops.reshape(ys[sl], (n, bsz, 1))])
                    loss_sum += float(out["loss"].sum())
                else:  # the article's loop: one call per batch
                    n = 1
                    sl = slice(b * bsz, (b + 1) * bsz)
                    loss_sum += train_fn([xs[sl], ys[sl]])["loss"]
                b += n
                step += n
                loss_count += n
                bar.update(n, {"mean_loss": loss_sum / loss_count})
            test_loss = test_fn([x_test, y_test])["loss"]
            if epoch % max(1, config.epochs // 10) == 0 or epoch == config.epochs:
                bar.write(f"epoch {epoch}: mean train SSE {loss_sum / loss_count:.4g}, test SSE {test_loss:.4g}")
        log.scalars(
            step, {"losses/train_sse": loss_sum / loss_count, "losses/test_mse": test_loss / config.test_samples}
        )
    log.close()
    train_seconds = time.perf_counter() - start

    kernel, bias = (keras.ops.convert_to_numpy(w).astype("float64") for w in model.layers[-1].weights)
    test_mse = test_fn([x_test, y_test])["loss"] / config.test_samples
    print(f"test MSE {test_mse:.3g}")
    print(f"learned kernel {kernel.ravel().round(4).tolist()}  bias {bias.round(4).tolist()}  (exact: [1, 1], [0])")
    summary = {
        "test_mse": test_mse,
        "kernel": kernel.ravel().tolist(),
        "bias": bias.ravel().tolist(),
        "epochs": config.epochs,
        "train_seconds": train_seconds,
        "config": asdict(config),
    }
    if config.out:
        print(f"wrote {core.write_summary(config.out, summary)}")
    return summary


def main(argv: list[str] | None = None) -> int:
    return core.run_main(train, Config, argv)


if __name__ == "__main__":
    sys.exit(main())
