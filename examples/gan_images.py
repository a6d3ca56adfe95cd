"""A GAN on pictures: MNIST's digits (optionally class-conditional) or a folder of PNG / JPEG files.

    python -m examples.gan_images --data-dir ../shared/data/mnist --out runs/mnist   # 22 epochs in bfloat16
    python -m examples.gan_images --data-dir ../shared/data/mnist --conditional --out runs/cond
    python -m examples.gan_images --dataset folder --data-dir pics/ --image-size 32 --out runs/pics

(``python -m examples.gan --dataset mnist|folder ...`` runs this program.) DCGAN-style convolutional networks; the
non-saturating loss (or WGAN-GP) with R1 on a quarter of the real batch. Images that fit (--device-data-mb) stay
on the device and several steps run per compiled call; D sees real and generated images randomly shifted
(--augment-shift). Samples, grids and quality figures come from an averaged copy of G (core.ema), normalised by
each batch's own statistics. MNIST runs are scored by a classifier trained on the same digits
(examples/gan_metrics.py). docs/gan.md has the details and the measurements behind the defaults.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below, which take seconds (examples/command.py)
    from examples.command import guard_start_up

    guard_start_up()

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras
import numpy as np
from keras import ops

import core
from examples import PROGRAMS, gan_data, gan_metrics, gan_parts

# JAX image steps unrolled per fused call at most: compile time grows with the unrolled steps (100 unrolled MNIST
# steps took over 90 s to compile on the 2-core CPU); longer calls loop over blocks of this many.
MAX_UNROLL = 10
Z_DIM = 64
# Flags a resumed run may change: budgets, sampling and scoring, speed knobs that keep the batches, the device
# count (the global batch stays), and where the data lie (the data themselves must match: check_same_data).
MAY_CHANGE = (
    "steps", "epochs", "steps_per_call", "device_data_mb", "num_samples", "quality", "classifier_cache", "devices",
    "data_dir",
)  # fmt: skip


# Measured on MNIST's 10,000 digits (docs/gan.md): batch 32 beat 64 at equal compute; R1 on a quarter of the batch
# pays for a third discriminator convolution, which learns faster per second at Adam 1e-3; Adam without momentum
# (beta_1 0, beta_2 0.99) reached a given Frechet distance in fewer epochs than beta_1 0.5.
@dataclass
class Config(core.RunConfig):
    """Train a GAN (generator + discriminator, two optimizers) on pictures with a compiled step."""

    dataset: Literal["mnist", "folder"] = "mnist"
    """mnist: digits (--data-dir, or a keras.datasets download); folder: the pictures in --data-dir"""
    data_dir: str | None = None
    """MNIST IDX files (*-images-idx3-ubyte[.gz] + labels) for mnist, or a folder of PNG/JPEG for folder"""
    steps: int | None = core.arg(None, min=1, max=10**12)
    """an optional cap on the generator updates, on top of --epochs"""
    epochs: int | None = core.arg(None, min=1, max=10**6)
    """passes over the images; default 22 computing in bfloat16, 18 in float32 (about 8 minutes of training on
    MNIST's 10,000 digits on a 2-core CPU either way)"""
    batch_size: int = core.arg(32, min=1, max=65_536)
    """samples per step"""
    loss: Literal["ns", "wgan-gp"] = "ns"
    """ns: non-saturating GAN loss; wgan-gp: Wasserstein loss with a gradient penalty (weight 10) on interpolates"""
    d_steps: int = core.arg(1, min=1, max=100)
    """discriminator updates per generator update, all inside the same compiled step"""
    g_lr: float = core.arg(1e-3, above=0, max=10)
    """generator Adam learning rate (constant)"""
    d_lr: float = core.arg(1e-3, above=0, max=10)
    """discriminator Adam learning rate (constant)"""
    beta1: float = core.arg(0.0, min=0, below=1)
    """Adam beta_1 of both optimizers (0, no momentum, reached a given quality in fewer epochs than 0.5; the
    averaged G smooths the noisier steps)"""
    beta2: float = core.arg(0.99, min=0, below=1)
    """Adam beta_2 of both optimizers"""
    r1: float = core.arg(1.0, min=0, max=1e6)
    """R1 penalty weight gamma: gamma/2 * E||grad_x D(x_real)||^2; 0 turns it off"""
    r1_fraction: float = core.arg(0.25, above=0, max=1)
    """share of the real batch the R1 expectation is estimated on (D still scores all of it): R1's double
    backward is the costliest part of D's step"""
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"
    """Keras dtype policy of both networks: mixed_* keep float32 weights and compute in bfloat16 / float16
    (the last layers and the losses stay float32); mixed_float16 scales each group's loss (LossScaleOptimizer;
    the logged gradient norms are of the unscaled gradients, d/loss_scale and d/skipped are logged too). auto:
    mixed_bfloat16 where the device computes bfloat16 natively (core.native_bfloat16: GPUs of compute
    capability 8+, CPUs with AVX512_BF16 or AMX on TensorFlow), else float32"""
    augment_shift: int = core.arg(2, min=0, max=32)
    """D sees real and generated images shifted by up to this many pixels, a fresh random shift per image and
    call, inside the step (differentiable augmentation: D cannot memorise the data, and G learns nothing from it
    because both kinds get the same); 0 turns it off"""
    ema_decay: float = core.arg(0.999, min=0, below=1)
    """keep an averaged copy of G (after every step: avg <- decay * avg + (1 - decay) * G, core.ema) and draw
    samples, grids and quality figures from it; 0 turns it off"""
    conditional: bool = False
    """mnist: class-conditional GAN: G draws a digit of a given class (one-hot label beside the noise), D scores
    image and label together (projection discriminator); samples come in the data's class proportions, grids one
    class per column. Sharper digits (98 percent confidently classified), no better Frechet distance (docs/gan.md)"""
    steps_per_call: int = core.arg(10, min=1, max=100_000)
    """train steps fused into one compiled call with the data on the device (unrolled on JAX up to 10 steps, as
    XLA's CPU convolutions run ~4x slower inside a loop); through the pipeline always 1"""
    device_data_mb: float = core.arg(1024.0, min=0)
    """images whose uint8 array (N x H x W x C bytes) is at most this many MiB are held on the device as one
    tensor and each step's batch is gathered there, --steps-per-call steps per compiled call; larger data go
    through the tf.data / NumPy pipeline, one step per call (0: always the pipeline)"""
    image_size: int = core.arg(28, min=8, max=128)
    """height and width of folder images (multiple of 4, 8 to 128); mnist is always 28"""
    channels: Literal[1, 3] = 3
    """colour channels of folder images: 1 (grey) or 3 (RGB)"""
    num_samples: int = core.arg(2500, min=1, max=1_000_000)
    """samples from G written to samples.npy"""
    quality: bool = True
    """mnist: score the samples with a classifier trained on the real data (98 percent held-out accuracy or
    more; cached): classes covered, class KL to uniform, confident fraction and a Frechet distance, each beside
    the same figure for held-out real digits"""
    classifier_cache: str = "~/.cache/customloop"
    """folder where the MNIST quality classifier is cached, keyed by a hash of the data, so it is trained once per
    dataset (about half a minute on 2 CPU cores for the 10,000 digits); --out if this one is not writable"""
    mode: Literal["eager", "graph", "xla"] = "graph"
    """how the step is compiled: eager (debugging), graph (tf.function; jax.jit on JAX) or xla (jit_compile:
    hurts the convolutional step on the CPU)"""
    devices: str = "1"
    """devices to step on, data parallel: N or all (CUSTOMLOOP_CPU_DEVICES=N shows a CPU as N devices); the
    batch size must divide by the device count"""

    def validate(self) -> None:
        if self.dataset == "folder" and self.data_dir is None:
            raise core.UsageError("--dataset folder needs --data-dir DIR (a folder of PNG/JPEG pictures)")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise core.UsageError(f"--data-dir {self.data_dir} is not a folder")
        if self.dataset == "mnist" and self.quality:
            check_cache_folder(self.classifier_cache)
        if self.image_size % 4:
            raise core.UsageError(f"--image-size must be a multiple of 4 from 8 to 128, got {self.image_size}")
        if self.conditional and self.dataset != "mnist":
            raise core.UsageError(f"--conditional needs labelled data (mnist); {self.dataset} has none")
        if self.augment_shift and 2 * self.augment_shift >= (28 if self.dataset == "mnist" else self.image_size):
            raise core.UsageError(f"--augment-shift {self.augment_shift} must be under half the image size")

    def compute_precision(self) -> str:
        """--precision, auto resolved for this device."""
        if self.precision != "auto":
            return self.precision
        return "mixed_bfloat16" if core.native_bfloat16() else "float32"

    def epoch_budget(self) -> int:
        """--epochs, or its default for the precision: 22 in bfloat16, 18 in float32 (about equal time)."""
        if self.epochs is not None:
            return self.epochs
        return 22 if self.compute_precision() == "mixed_bfloat16" else 18


def check_cache_folder(path: str) -> None:
    try:
        cache = Path(path).expanduser()
    except RuntimeError:  # ~user that does not exist, or no home folder
        raise core.UsageError(f"--classifier-cache {path}: cannot expand ~ here; give a full path") from None
    if cache.exists() and not cache.is_dir():
        raise core.UsageError(f"--classifier-cache {path} is a file, not a folder")


# ----- the networks: DCGAN-style -----


def conv_generator(z_dim: int, size: int, channels: int, classes: int = 0) -> keras.Model:
    """Dense to (size/4)^2 x 128, two stride-2 transposed convolutions (64 and 32 channels), then a 3x3
    convolution to the picture, tanh: the last one sees each output pixel's neighbourhood at full size.
    With ``classes`` its input is the noise and a one-hot label side by side (``GAN.g_input``)."""
    base = size // 4

    def up(units):
        return [
            keras.layers.Conv2DTranspose(units, 4, strides=2, padding="same", use_bias=False),
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.LeakyReLU(0.2),
        ]

    return keras.Sequential(
        [
            keras.Input((z_dim + classes,)),
            keras.layers.Dense(base * base * 128, use_bias=False),
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.LeakyReLU(0.2),
            keras.layers.Reshape((base, base, 128)),
            *up(64),
            *up(32),
            keras.layers.Conv2D(channels, 3, padding="same", activation="tanh", dtype="float32"),
        ],
        name="generator",
    )


def conv_discriminator(size: int, channels: int, classes: int = 0) -> keras.Model:
    """Two stride-2 convolutions and a 3x3 one with leaky ReLU, then one logit.

    With ``classes`` it takes ``[images, labels]`` and adds the projection ``<embed(label), features>`` to the
    logit (Miyato and Koyama 2018; on the flattened features: with them averaged over the positions the labels
    took effect later and the Frechet distance was worse, docs/gan.md): D judges whether the image is a real
    digit of that class."""
    x = keras.Input((size, size, channels))
    h = x
    for units, kernel, strides in ((64, 4, 2), (128, 4, 2), (256, 3, 1)):
        h = keras.layers.Conv2D(units, kernel, strides=strides, padding="same")(h)
        h = keras.layers.LeakyReLU(0.2)(h)
    h = keras.layers.Flatten()(h)
    logit = keras.layers.Dense(1, dtype="float32")(h)  # logits in float32 under mixed precision
    if not classes:
        return keras.Model(x, logit, name="discriminator")
    y = keras.Input((), dtype="int32")
    embedded = keras.layers.Embedding(classes, h.shape[-1], embeddings_initializer="zeros")(y)
    projection = keras.layers.Dot(axes=1, dtype="float32")([embedded, h])
    return keras.Model([x, y], keras.layers.Add(dtype="float32")([logit, projection]), name="discriminator")


class ImageGAN(gan_parts.GAN):
    """The shared two-group step on images: the real batch is gathered on the device by index (data that fit) or
    fed in by the pipeline; D sees both kinds shifted; conditional, the labels go with them."""

    z_dim = Z_DIM

    def __init__(self, config: Config, images: np.ndarray, labels: np.ndarray | None = None, parallel=None):
        self.precision = config.compute_precision()
        self.fused_unroll = min(config.steps_per_call, MAX_UNROLL)  # JAX: XLA's CPU convolutions slow in a loop
        if config.conditional:
            if labels is None or len(labels) != len(images):
                raise ValueError("a conditional GAN needs one label per image")
            self.classes, self.labels_np = int(labels.max()) + 1, labels
        self._data = images, labels
        super().__init__(config, parallel)

    def build_networks(self):
        h, w, c = self._data[0].shape[1:]
        return conv_generator(self.z_dim, h, c, self.classes), conv_discriminator(h, c, self.classes)

    def step_inputs(self) -> dict:
        """Data on the device (a uint8 variable, batches drawn by index inside the step) when they fit; else
        the batches themselves are the step's input (with their labels as "y" for a conditional GAN)."""
        images, labels = self._data
        self.on_device = images.nbytes <= self.config.device_data_mb * 2**20
        if not self.on_device:
            spec = {"x": core.InputSpec((None, *images.shape[1:]))}
            return {**spec, "y": core.InputSpec((None,), "int32")} if self.classes else spec
        self.images = keras.Variable(images, dtype="uint8", trainable=False, name="images")
        if self.classes:
            self.labels = keras.Variable(labels.astype("int32"), dtype="int32", trainable=False, name="labels")
        return {"idx": core.InputSpec((self.batch_size,), "int32")}

    def real_batch(self, batch):
        if "idx" in batch:  # gathered on the device, scaled to [-1, 1] like the pipeline's batches
            return ops.cast(ops.take(self.images, batch["idx"], axis=0), "float32") / 127.5 - 1.0
        return batch["x"]

    def batch_rows(self, batch):
        return ops.shape(batch.get("x", batch.get("idx")))[0]

    def batch_labels(self, batch):
        """Generated images of a step take the real batch's labels: D sees both in the same class proportions."""
        if not self.classes:
            return None
        return ops.take(self.labels, batch["idx"], axis=0) if "idx" in batch else batch["y"]

    def augment(self, x):
        shift = self.config.augment_shift
        return gan_parts.random_shift(x, shift, self.seed_gen) if shift else x

    def train_on_indices(self, idx) -> dict:
        """One compiled call over the images held on the device: a step per row of ``idx`` (steps x batch)."""
        return self.step.train_steps({"idx": idx}) if len(idx) > 1 else self.step.train_step({"idx": idx[0]})

    def sample(self, z: np.ndarray, labels: np.ndarray | None = None, statistics: str = "batch") -> np.ndarray:
        """Images in [0, 1] from G(z) (G(z, label) if conditional). ``statistics``: batch (each batch of
        --batch-size normalised by its own statistics, as in training: a lower Frechet distance on every seed
        measured, docs/gan.md) or moving (the moving averages: a sample does not depend on the others)."""
        x = self.generate(z, labels, by_batch=statistics == "batch")
        return np.clip((x + 1.0) / 2.0, 0.0, 1.0)

    def draw_labels(self, n: int, seed: int) -> np.ndarray | None:
        """Labels in the data's class proportions for n samples (None unconditional)."""
        if not self.classes:
            return None
        p = np.bincount(self.labels_np, minlength=self.classes) / len(self.labels_np)
        return np.random.default_rng(seed).choice(self.classes, size=n, p=p).astype("int32")


# ----- the run -----


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's image order (a resumed run redraws the same order)."""
    return core.derive_seed(seed, "batch-order", epoch)


def scoring_inputs(config: Config, gan: ImageGAN, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The noise (and labels, conditional) of the samples a run writes and scores."""
    z = core.derived_rng(config.seed, "sample-noise").standard_normal((n, gan.z_dim))
    return z, gan.draw_labels(n, core.derive_seed(config.seed, "sample-labels"))


def load_images(config: Config) -> tuple[np.ndarray, np.ndarray | None]:
    if config.dataset == "mnist":
        return gan_data.load_mnist(config.data_dir)
    images, skipped = gan_data.load_folder(config.data_dir, config.image_size, config.channels)
    named = ", ".join(p.name for p in skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
    note = f", skipped {len(skipped)} unreadable file(s): {named}" if skipped else ""
    print(f"loaded {len(images)} pictures from {config.data_dir}{note}")
    return images, None


def train(config: Config) -> dict:
    """A fixed batch order per (seed, epoch); a grid of samples from fixed noise per epoch. Returns the summary
    (also written to --out/summary.json)."""
    parallel = core.devices_from_flag(config.devices)  # first: a cluster forms before any tensor exists
    if config.batch_size % parallel.num_devices:
        raise core.UsageError(f"--batch-size {config.batch_size} does not divide over {parallel.num_devices} devices")
    rng = core.seed_everything(config.seed)
    images, labels = load_images(config)
    if config.batch_size > len(images):
        raise core.UsageError(f"--batch-size {config.batch_size} exceeds the {len(images)} images")
    gan = ImageGAN(config, images, labels, parallel)
    per_epoch = len(images) // gan.batch_size
    epochs = config.epoch_budget()
    total = epochs * per_epoch if config.steps is None else min(config.steps, epochs * per_epoch)
    where = "on the device" if gan.on_device else "through the input pipeline, 1 step per call"
    print(
        f"stepping on {core.describe_device()}, {parallel.describe()}; {images.nbytes / 2**20:.1f} MiB of images "
        f"{where}; {gan.precision}, {epochs} epochs"
    )
    run = core.Run(
        config,
        gan.checkpoint_objects(),
        total=total,
        desc=config.dataset,
        bar_keys=gan_parts.BAR_KEYS,
        checkpoint_every=per_epoch,
        rng=rng,
        may_change=MAY_CHANGE,
        resolve=lambda saved: {"precision": Config(precision=saved["precision"]).compute_precision()},
        chief=parallel.is_chief,
        export=gan.networks(),
    )
    grid = Grid(gan, config.seed, scale=2 if images.shape[1] < 64 else 1)
    with run:
        train_epochs(run, gan, images, labels, grid)
    print(f"{config.dataset}: {run.step} steps in {run.elapsed():.1f} s")
    figures = {"dataset": config.dataset, "steps": run.step, "epochs": run.step / per_epoch}
    summary = run.write_summary({**figures, "precision": gan.precision, "devices": parallel.num_devices})
    return finish(run, gan, images, labels, grid, summary)


class Grid:
    """Samples from fixed noise, 8 rows (conditional: one class per column), drawn each epoch and at the end."""

    def __init__(self, gan: ImageGAN, seed: int, scale: int):
        self.gan, self.scale, self.cols = gan, scale, gan.classes or 8
        self.z = core.derived_rng(seed, "grid-noise").standard_normal((8 * self.cols, gan.z_dim)).astype("float32")
        self.labels = np.tile(np.arange(self.cols, dtype="int32"), 8) if gan.classes else None

    def picture(self) -> np.ndarray:
        return core.image_grid(self.gan.sample(self.z, self.labels), cols=self.cols)


def train_epochs(run: core.Run, gan: ImageGAN, images: np.ndarray, labels: np.ndarray | None, grid: Grid) -> None:
    """Train to the run's end (or Ctrl-C), checking a resumed run's data first; a grid and a line per epoch."""
    check_same_data(run, images, labels)
    gan_parts.forget_frames(run, "grids")
    per_epoch = len(images) // gan.batch_size
    while run.running:
        for n, logs in epoch_calls(gan, images, run, per_epoch):
            if run.step // 50 > (run.step - n) // 50:
                run.log(logs)
        if run.step % per_epoch == 0 or run.step >= run.total:
            if run.out is not None and run.chief:
                path = run.out / "grids" / f"epoch_{run.step / per_epoch:07.2f}.png"
                core.save_png(grid.picture(), path, scale=grid.scale)
            bar = ", ".join(f"{k} {float(np.mean(logs[k])):.4g}" for k in gan_parts.BAR_KEYS)
            run.write(f"epoch {run.step / per_epoch:.2f}: {bar}")


def check_same_data(run: core.Run, images: np.ndarray, labels: np.ndarray | None) -> None:
    """A resumed run trains on the data it started on (--data-dir may name another copy of it, not other data)."""
    digest = gan_metrics.arrays_key(images, labels)
    if run.state.setdefault("data_sha256", digest) != digest:
        source = run.config.data_dir or "keras.datasets"
        raise core.UsageError(f"--resume: the checkpoint was trained on other data than {source} holds")


def epoch_calls(gan: ImageGAN, images: np.ndarray, run: core.Run, per_epoch: int):
    """The rest of the current epoch, one compiled call at a time; yields (steps, logs) after ``run.advance``.

    One fixed order per (seed, epoch), so a resumed run skips exactly the batches it has seen. Data on the
    device: only the indices of ``--steps-per-call`` batches travel per call; else one tf.data batch per call.
    """
    seed = gan.config.seed
    epoch, offset = divmod(run.step, per_epoch)
    if gan.on_device:
        while run.running:
            n = min(gan.config.steps_per_call, run.total - run.step, per_epoch - run.step % per_epoch)
            order = gan_data.batch_indices(len(images), gan.batch_size, lambda e: epoch_seed(seed, e), run.step, n)
            logs = gan.train_on_indices(gan.parallel.local_rows(order, 1))
            run.advance(n, logs)
            yield n, logs
            if run.step % per_epoch == 0:
                return
        return
    batches = gan_data.image_batches(images, gan.batch_size, epoch_seed(seed, epoch), offset, labels=gan.labels_np)
    for batch in batches:
        x, y = batch if gan.classes else (batch, None)
        inputs = {"x": gan.parallel.local_rows(x)}
        logs = gan.step.train_step(inputs if y is None else {**inputs, "y": gan.parallel.local_rows(y)})
        run.advance(1, logs)
        yield 1, logs
        if not run.running:
            return


def finish(run: core.Run, gan: ImageGAN, images, labels, grid: Grid, summary: dict) -> dict:
    """Samples (scored on MNIST: the classifier's figures join the summary), the last grid and the GIF."""
    config = run.config
    scoring = labels is not None and config.quality and run.chief
    n = max(config.num_samples, gan_metrics.scored_samples(len(images)) if scoring else 0)
    samples = gan.sample(*scoring_inputs(config, gan, n))
    if scoring:
        cache = [Path(config.classifier_cache).expanduser()] + ([run.out] if run.out else [])
        quality = gan_metrics.classifier_quality(images, labels, samples, cache, gan_metrics.CLASSIFIER_EPOCHS)
        summary = run.write_summary(quality)
        print(gan_metrics.fmt_quality(summary))
    frames = gan_parts.frames_on_disk(run, "grids")
    picture = grid.picture()
    gan_parts.write_outputs(run, samples[: config.num_samples], picture, frames, "grids.gif", fps=2, scale=grid.scale)
    return summary


def main(argv: list[str] | None = None) -> int:
    # The other GAN program first: a flag it shares with another command (--epochs) names it.
    return core.run_main(train, Config, argv, ("examples.gan_2d", *PROGRAMS))  # the sibling named first


if __name__ == "__main__":
    sys.exit(main())
