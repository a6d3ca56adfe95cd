"""A GAN on the core: a discriminator group then a generator group, two optimizers, one compiled step.

    python -m examples.gan --out runs/ring                 # 8 Gaussians on a circle (default)
    python -m examples.gan --dataset grid --out runs/grid  # 25 Gaussians on a 5x5 grid
    python -m examples.gan --dataset mnist --data-dir ../shared/data/mnist --out runs/mnist  # 18-22 epochs
    python -m examples.gan --dataset folder --data-dir pics/ --image-size 32 --out runs/pics

Losses: non-saturating (default) or WGAN-GP, optional R1 on real data; both penalties take the gradient of
D with respect to its input inside the loss (core.input_gradient). D's samples can be packed (PacGAN).
Samples, grids and quality figures come from an averaged copy of G (core.ema after every step, --ema-decay;
--sample-raw for the trained G). Image data that fit (--device-data-mb) stay on the device and several steps
run per compiled call (--steps-per-call), and D sees them randomly shifted (--augment-shift); --precision
mixed_bfloat16 / mixed_float16 through Keras dtype policies (auto: bfloat16 for images where the device computes
it natively), float16 with loss scaling per update group.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import keras
import numpy as np
from keras import ops
from PIL import Image, ImageDraw

import core
from examples import gan_data, gan_metrics

DATASETS_2D = ("ring", "grid")
# JAX image steps unrolled per fused call at most: compile time grows with the unrolled steps (100 unrolled MNIST
# steps took over 90 s to compile on the 2-core CPU); longer calls loop over blocks of this many.
MAX_UNROLL = 10
# Flags a resumed run may change: budgets, sampling and scoring, logging, speed knobs that keep the batches, the
# device count (the global batch stays), and where the data lie (the data themselves must match: check_same_data).
RESUME_MAY_CHANGE = (
    "steps", "epochs", "steps_per_call", "device_data_mb", "num_samples", "quality", "classifier_cache",
    "sample_raw", "sample_statistics", "log_every", "checkpoint_every", "devices", "data_dir",
)  # fmt: skip

# Per-dataset defaults for the fields left at None (measured: see the README, "2D quality").
DEFAULTS = {
    "2d": dict(
        steps=20000,
        batch_size=256,
        g_lr=1e-3,
        d_lr=1e-3,
        r1=0.1,
        r1_fraction=1.0,
        pack=2,
        steps_per_call=200,
        lr_decay=0.01,
        ema_decay=0.0,
        augment_shift=0,
        beta1=0.5,
        beta2=0.999,
    ),
    # Measured on MNIST's 10,000 digits (docs/gan.md): batch 32 beat 64 at equal compute; R1 on a quarter of the
    # batch pays for a third discriminator convolution, which learns faster per second at Adam 1e-3; Adam without
    # momentum (beta_1 0, beta_2 0.99) reached a given Frechet distance in fewer epochs than beta_1 0.5.
    "image": dict(
        batch_size=32,
        g_lr=1e-3,
        d_lr=1e-3,
        r1=1.0,
        r1_fraction=0.25,
        pack=1,
        steps_per_call=10,
        lr_decay=1.0,
        ema_decay=0.999,
        augment_shift=2,
        beta1=0.0,
        beta2=0.99,
    ),
}


@dataclass
class Config(core.RunConfig):
    """Train a GAN (generator + discriminator, two optimizers) with a compiled custom step."""

    dataset: Literal["ring", "grid", "mnist", "folder"] = "ring"
    """ring / grid: 2D Gaussian mixtures sampled on the fly; mnist: digits; folder: pictures in --data-dir"""
    data_dir: str | None = None
    """MNIST IDX files (*-images-idx3-ubyte[.gz] + labels) for mnist, or a folder of PNG/JPEG for folder"""
    steps: int | None = core.arg(None, min=1, max=10**12)
    """generator updates (2D default 20000); for images an optional cap on top of --epochs"""
    epochs: int | None = core.arg(None, min=1, max=10**6)
    """passes over the image data (mnist / folder): 22 computing in bfloat16, 18 in float32 (about 8 minutes
    of training on MNIST's 10,000 digits on a 2-core CPU either way)"""
    batch_size: int | None = core.arg(None, min=1, max=65_536)
    """samples per step (2D 256, images 32)"""
    loss: Literal["ns", "wgan-gp"] = "ns"
    """ns: non-saturating GAN loss; wgan-gp: Wasserstein loss with a gradient penalty on interpolates"""
    d_steps: int = core.arg(1, min=1, max=100)
    """discriminator updates per generator update, all inside the same compiled step"""
    g_lr: float | None = core.arg(None, above=0, max=10)
    """generator Adam learning rate (2D 1e-3, images 1e-3)"""
    d_lr: float | None = core.arg(None, above=0, max=10)
    """discriminator Adam learning rate (2D 1e-3, images 1e-3)"""
    beta1: float | None = core.arg(None, min=0, below=1)
    """Adam beta_1 of both optimizers (2D 0.5; images 0: no momentum, which reached a given quality in fewer
    epochs; the averaged G smooths the noisier steps)"""
    beta2: float | None = core.arg(None, min=0, below=1)
    """Adam beta_2 of both optimizers (2D 0.999; images 0.99)"""
    lr_decay: float | None = core.arg(None, above=0, max=1)
    """final / initial learning rate, reached linearly over --steps (2D 0.01: small steps sharpen the modes;
    images 1: constant)"""
    r1: float | None = core.arg(None, min=0, max=1e6)
    """R1 penalty weight gamma: gamma/2 * E||grad_x D(x_real)||^2; 0 turns it off (2D 0.1, images 1)"""
    r1_fraction: float | None = core.arg(None, above=0, max=1)
    """share of the real batch the R1 expectation is estimated on (D still scores all of it): R1's double
    backward is the costliest part of D's step (2D 1, images 0.25)"""
    gp_weight: float = core.arg(10.0, min=0, max=1e6)
    """WGAN-GP penalty weight lambda on (||grad D(x_hat)|| - 1)^2"""
    pack: int | None = core.arg(None, min=1, max=64)
    """samples packed into one discriminator input (PacGAN); 2D 2, images 1"""
    clip_g: float | None = core.arg(None, above=0, max=1e9)
    """clip the generator's gradients to this global norm"""
    clip_d: float | None = core.arg(None, above=0, max=1e9)
    """clip the discriminator's gradients to this global norm"""
    z_dim: int = core.arg(16, min=1, max=4096)
    """noise size for 2D (images use 64)"""
    hidden: int = core.arg(128, min=1, max=8192)
    """units per hidden layer of the 2D MLPs"""
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"
    """Keras dtype policy of both networks: mixed_* keep float32 weights and compute in bfloat16 / float16
    (the last layers and the losses stay float32); mixed_float16 scales each group's loss (LossScaleOptimizer;
    the logged gradient norms are of the unscaled gradients, d/loss_scale and d/skipped are logged too). auto:
    images mixed_bfloat16 where the device computes bfloat16 natively (core.native_bfloat16: GPUs of compute
    capability 8+, CPUs with AVX512_BF16 or AMX on TensorFlow), else float32; 2D float32"""
    augment_shift: int | None = core.arg(None, min=0, max=32)
    """images: D sees real and generated images shifted by up to this many pixels, a fresh random shift per
    image and call, inside the step (differentiable augmentation: D cannot memorise the data, and G learns
    nothing from it because both kinds get the same); 0 turns it off (images 2; 2D must be 0)"""
    ema_decay: float | None = core.arg(None, min=0, below=1)
    """keep an averaged copy of G (after every step: avg <- decay * avg + (1 - decay) * G, core.ema) and draw
    samples, grids and quality figures from it; 0 turns it off (2D 0, images 0.999)"""
    conditional: bool = False
    """mnist: class-conditional GAN: G draws a digit of a given class (one-hot label beside the noise), D scores
    image and label together (projection discriminator); samples come in the data's class proportions, grids one
    class per column. Sharper digits (98 percent confidently classified), no better Frechet distance (docs/gan.md)"""
    sample_raw: bool = False
    """draw samples, grids and quality figures from the raw (trained) G even when an average is kept"""
    sample_statistics: Literal["batch", "moving"] = "batch"
    """images: how G's batch normalisation draws samples: batch (each batch of --batch-size samples normalised by
    its own statistics, as in training; a lower Frechet distance on every seed measured, docs/gan.md) or moving
    (the moving averages: a sample does not depend on the others drawn with it)"""
    steps_per_call: int | None = core.arg(None, min=1, max=100_000)
    """train steps fused into one compiled call (2D 200; images with the data on the device 10, unrolled on JAX
    up to 10 steps, as XLA's CPU convolutions run ~4x slower inside a loop; images through the pipeline always 1)"""
    device_data_mb: float = core.arg(1024.0, min=0)
    """images whose uint8 array (N x H x W x C bytes) is at most this many MiB are held on the device as one
    tensor and each step's batch is gathered there, --steps-per-call steps per compiled call; larger data go
    through the tf.data / NumPy pipeline, one step per call (0: always the pipeline)"""
    image_size: int = core.arg(28, min=8, max=128)
    """height and width of folder images (multiple of 4, 8 to 128); mnist is always 28"""
    channels: Literal[1, 3] = 3
    """colour channels of folder images: 1 (grey) or 3 (RGB)"""
    num_samples: int = core.arg(2500, min=1, max=1_000_000)
    """samples from G written to samples.npy (and scored, for 2D)"""
    quality: bool = True
    """mnist: score the samples with a classifier trained on the real data (98 percent held-out accuracy or
    more; cached): classes covered, class KL to uniform, confident fraction and a Frechet distance, each beside
    the same figure for held-out real digits"""
    classifier_cache: str = "~/.cache/customloop"
    """folder where the MNIST quality classifier is cached, keyed by a hash of the data, so it is trained once per
    dataset (about half a minute on 2 CPU cores for the 10,000 digits); --out if this one is not writable"""
    log_every: int = core.arg(1000, min=1)
    """2D: steps between metric logs (rounded to whole calls)"""
    checkpoint_every: int = core.arg(2000, min=1)
    """2D: steps between checkpoints (rounded to whole calls); images: every epoch"""
    mode: Literal["eager", "graph", "xla"] = "graph"
    """how the step is compiled: eager (debugging), graph (tf.function; jax.jit on JAX) or xla (jit_compile:
    helps the small 2D step, hurts the convolutional one on the CPU)"""
    devices: str = "1"
    """devices to step on, data parallel: N or all (CUSTOMLOOP_CPU_DEVICES=N shows a CPU as N devices); the
    batch size must divide by devices x pack"""

    def validate(self) -> None:
        if self.dataset == "folder" and self.data_dir is None:
            raise core.UsageError("--dataset folder needs --data-dir DIR (a folder of PNG/JPEG pictures)")
        if self.data_dir is not None and self.dataset in DATASETS_2D:
            raise core.UsageError(f"--data-dir is for mnist / folder; {self.dataset} is generated on the fly")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise core.UsageError(f"--data-dir {self.data_dir} is not a folder")
        if self.dataset == "mnist" and self.quality:
            check_cache_folder(self.classifier_cache)
        if self.image_size % 4:
            raise core.UsageError(f"--image-size must be a multiple of 4 from 8 to 128, got {self.image_size}")
        if self.dataset in DATASETS_2D and self.augment_shift:
            raise core.UsageError(f"--augment-shift is for images; {self.dataset} is 2D points")
        if self.conditional and self.dataset != "mnist":
            raise core.UsageError(f"--conditional needs labelled data (mnist); {self.dataset} has none")
        if self.augment_shift and 2 * self.augment_shift >= (28 if self.dataset == "mnist" else self.image_size):
            raise core.UsageError(f"--augment-shift {self.augment_shift} must be under half the image size")
        self.refuse_flags_that_do_nothing()
        s = settings(self)
        if s["conditional"] and s["pack"] != 1:
            raise core.UsageError(f"--pack {s['pack']} packs images of different classes: a conditional GAN needs 1")
        if s["batch_size"] % s["pack"]:
            raise core.UsageError(f"--batch-size {s['batch_size']} is not a multiple of --pack {s['pack']}")

    def refuse_flags_that_do_nothing(self) -> None:
        s = settings(self)
        if self.loss != "wgan-gp":
            self.refuse_unused(["gp_weight"], f"with --loss {self.loss}")
        if not s["r1"]:
            self.refuse_unused(["r1_fraction"], "with --r1 0")
        if not s["ema_decay"]:
            self.refuse_unused(["sample_raw"], "without an averaged G (--ema-decay 0)")
        if not s["quality"]:
            self.refuse_unused(["classifier_cache"], "with --no-quality")
        if self.dataset not in DATASETS_2D and self.steps is None:
            self.refuse_unused(["lr_decay"], "on images without --steps (the schedule is laid out over --steps)")
        if self.dataset != "folder":
            self.refuse_unused(["image_size", "channels"], f"on {self.dataset} (folder images only)")
        if self.dataset != "mnist":
            self.refuse_unused(["quality", "classifier_cache"], f"on {self.dataset} (mnist only)")
        if self.dataset in DATASETS_2D:
            self.refuse_unused(["sample_statistics", "device_data_mb", "epochs"], f"on {self.dataset} (images only)")
        else:
            self.refuse_unused(["z_dim", "hidden", "log_every", "checkpoint_every"], f"on {self.dataset} (2D only)")


def check_cache_folder(path: str) -> None:
    try:
        cache = Path(path).expanduser()
    except RuntimeError:  # ~user that does not exist, or no home folder
        raise core.UsageError(f"--classifier-cache {path}: cannot expand ~ here; give a full path") from None
    if cache.exists() and not cache.is_dir():
        raise core.UsageError(f"--classifier-cache {path} is a file, not a folder")


def settings(config: Config) -> dict:
    """The config with per-dataset defaults filled in for the fields left at None."""
    kind = "2d" if config.dataset in DATASETS_2D else "image"
    out = dict(DEFAULTS[kind])
    for key, value in asdict(config).items():
        if value is not None or key not in out:
            out[key] = value
    if out["precision"] == "auto":
        out["precision"] = "mixed_bfloat16" if kind == "image" and core.native_bfloat16() else "float32"
    if kind == "image" and out["epochs"] is None:
        out["epochs"] = 22 if out["precision"] == "mixed_bfloat16" else 18
    return out


# ----- losses (keras.ops only; logits in, scalar out) -----


def ns_d_loss(real_logits, fake_logits):
    """Non-saturating GAN, discriminator: -log sigmoid(D(real)) - log(1 - sigmoid(D(fake)))."""
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def ns_g_loss(fake_logits):
    """Non-saturating GAN, generator: -log sigmoid(D(G(z)))."""
    return ops.mean(ops.softplus(-fake_logits))


def wgan_d_loss(real_scores, fake_scores):
    """WGAN critic: E[D(fake)] - E[D(real)]."""
    return ops.mean(fake_scores) - ops.mean(real_scores)


def wgan_g_loss(fake_scores):
    """WGAN generator: -E[D(G(z))]."""
    return -ops.mean(fake_scores)


def _sq_norms(grad):
    """Squared Euclidean norm of each sample's gradient (sum over all but the batch axis)."""
    return ops.sum(ops.reshape(ops.square(ops.cast(grad, "float32")), (ops.shape(grad)[0], -1)), axis=1)


def r1_penalty(d_fn, real):
    """(D(real), E ||grad_x D(x)||^2 at the real samples): R1 without its gamma/2 factor."""
    logits, grad = core.input_gradient(d_fn, real)
    return logits, ops.mean(_sq_norms(grad))


def head_rows(x, fraction: float):
    """The first ``fraction`` of the rows of ``x`` (at least one); the batch size may be known only when run."""
    n = ops.shape(x)[0]
    if isinstance(n, int):
        return x[: max(1, int(n * fraction))]
    return x[: ops.maximum(1, ops.cast(ops.cast(n, "float32") * fraction, "int32"))]


def gradient_penalty(d_fn, real, fake, eps):
    """WGAN-GP: E (||grad D(x_hat)|| - 1)^2 at x_hat = eps * real + (1 - eps) * fake."""
    x_hat = eps * real + (1.0 - eps) * fake
    _, grad = core.input_gradient(d_fn, x_hat)
    return ops.mean(ops.square(ops.sqrt(_sq_norms(grad) + 1e-12) - 1.0))


def random_shift(images, max_shift: int, seed):
    """Each image moved by its own random (dy, dx) in [-max_shift, max_shift]^2, the border filled with -1 (the
    background of images scaled to [-1, 1]); linear in ``images``, so gradients flow through it.

    Written as two products with 0/1 shift matrices: one op sequence on every backend, and cheap at these sizes.
    """
    n, h, w = ops.shape(images)[0], images.shape[1], images.shape[2]
    dy = keras.random.randint((n,), -max_shift, max_shift + 1, seed=seed)
    dx = keras.random.randint((n,), -max_shift, max_shift + 1, seed=seed)

    def shift_matrix(size, d):  # [i, out, in] = 1 where out = in + d[i]
        r = ops.arange(size)
        return ops.cast(ops.equal(r[None, :, None] - d[:, None, None], r[None, None, :]), images.dtype)

    rows = ops.einsum("noi,niwc->nowc", shift_matrix(h, dy), images + 1.0)
    return ops.einsum("nhic,noi->nhoc", rows, shift_matrix(w, dx)) - 1.0


def pack(x, k: int):
    """PacGAN packing: k consecutive samples become one discriminator input.

    (B, F) -> (B/k, k*F); images (B, H, W, C) -> (B/k, H, W, k*C).
    """
    if k == 1:
        return x
    shape = tuple(x.shape[1:])
    if len(shape) == 1:
        return ops.reshape(x, (-1, k * shape[0]))
    h, w, c = shape
    x = ops.reshape(x, (-1, k, h, w, c))
    return ops.reshape(ops.transpose(x, (0, 2, 3, 1, 4)), (-1, h, w, k * c))


# ----- models -----


def mlp_generator(z_dim: int, hidden: int) -> keras.Model:
    return keras.Sequential(
        [keras.Input((z_dim,))]
        + [keras.layers.Dense(hidden, activation="relu") for _ in range(3)]
        + [keras.layers.Dense(2, dtype="float32")],  # float32 out under mixed precision: samples need the digits
        name="generator",
    )


def mlp_discriminator(in_dim: int, hidden: int) -> keras.Model:
    layers = [keras.Input((in_dim,))]
    for _ in range(3):
        layers += [keras.layers.Dense(hidden), keras.layers.LeakyReLU(0.2)]
    return keras.Sequential(layers + [keras.layers.Dense(1, dtype="float32")], name="discriminator")


def conv_generator(z_dim: int, size: int, channels: int, classes: int = 0) -> keras.Model:
    """DCGAN-style: dense to (size/4)^2 x 128, two stride-2 transposed convolutions (64 and 32 channels), then a
    3x3 convolution to the picture, tanh: the last one sees each output pixel's neighbourhood at full size.
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
    """DCGAN-style: two stride-2 convolutions and a 3x3 one with leaky ReLU, then one logit.

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


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers built inside take the Keras dtype policy ``name`` (float32, mixed_bfloat16, mixed_float16):
    float32 variables, computations in the policy's compute dtype."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


class GAN:
    """Both networks, both optimizers, the noise / data seed generator and the compiled step."""

    def __init__(
        self, config: Config, images: np.ndarray | None = None, parallel=None, labels: np.ndarray | None = None
    ):
        self.s = settings(config)
        self.config = config
        self.parallel = parallel or core.SingleDevice()
        self.classes, self.labels_np = 0, None
        if self.s["conditional"]:
            if labels is None or len(labels) != len(images):
                raise ValueError("a conditional GAN needs one label per image")
            self.classes, self.labels_np = int(labels.max()) + 1, labels
        with self.parallel.scope():
            self._build(images, labels)

    def _build(self, images: np.ndarray | None, labels: np.ndarray | None) -> None:
        s, config = self.s, self.config
        self.is_2d = config.dataset in DATASETS_2D
        self.on_device = False
        self.batch_size = s["batch_size"]
        self.step_rows = self.parallel.step_rows(self.batch_size)  # rows a step draws for itself
        self.pack = s["pack"]
        self.seed_gen = keras.random.SeedGenerator(config.seed)
        with dtype_policy(s["precision"]):
            self._build_models(images)
        self.g_opt = self._optimizer(self._lr(s["g_lr"], 1))
        self.d_opt = self._optimizer(self._lr(s["d_lr"], config.d_steps))
        groups = [
            core.UpdateGroup(
                "d",
                self.d_loss,
                self.D.trainable_variables,
                self.d_opt,
                core.clip_by_global_norm(config.clip_d) if config.clip_d else None,
                repeats=config.d_steps,
            ),
            core.UpdateGroup(
                "g",
                self.g_loss,
                self.G.trainable_variables,
                self.g_opt,
                core.clip_by_global_norm(config.clip_g) if config.clip_g else None,
            ),
        ]
        inputs = None if self.is_2d else self._image_inputs(images, labels)
        self.G_avg, after = None, []
        if s["ema_decay"] > 0:
            # A separate copy (core.ema's docstring says why not the optimizer's use_ema), checkpointed as "g_avg".
            self.G_avg = keras.models.clone_model(self.G)
            core.copy_weights(self.G_avg, self.G)
            after = [core.ema(self.G_avg.weights, self.G.weights, s["ema_decay"], count=self.g_opt.iterations)]
        self.sampler = self.G if (self.G_avg is None or config.sample_raw) else self.G_avg
        self._sampling_calls = {}
        # Images: the fused call unrolled (JAX; XLA's CPU convolutions run ~4x slower inside a loop, measured).
        unroll = 1 if self.is_2d else min(s["steps_per_call"], MAX_UNROLL)
        self.step = core.make_step(
            groups, inputs, mode=config.mode, after_update=after, parallel=self.parallel, fused_unroll=unroll
        )

    def _build_models(self, images: np.ndarray | None) -> None:
        if self.is_2d:
            modes, std = gan_metrics.mixture(self.config.dataset)
            self.modes_np, self.std = modes, std
            # The networks see data scaled into [-1, 1] (the grid spans [-4, 4]); samples are scaled back.
            self.data_scale = float(np.abs(modes).max())
            self.modes = ops.convert_to_tensor(modes / self.data_scale)
            self.z_dim = self.config.z_dim
            self.G = mlp_generator(self.z_dim, self.config.hidden)
            self.D = mlp_discriminator(2 * self.pack, self.config.hidden)
        else:
            image_shape = tuple(images.shape[1:])
            h, w, c = image_shape
            self.z_dim = 64
            self.G = conv_generator(self.z_dim, h, c, self.classes)
            self.D = conv_discriminator(h, c * self.pack, self.classes)

    def _optimizer(self, lr):
        """Adam; under mixed_float16 inside a LossScaleOptimizer (the core scales each group's loss)."""
        opt = keras.optimizers.Adam(lr, beta_1=self.s["beta1"], beta_2=self.s["beta2"])
        return keras.optimizers.LossScaleOptimizer(opt) if self.s["precision"] == "mixed_float16" else opt

    def _image_inputs(self, images: np.ndarray, labels: np.ndarray | None) -> dict:
        """Data on the device (a uint8 variable, batches drawn by index inside the step) when they fit; else
        the batches themselves are the step's input (with their labels as "y" for a conditional GAN)."""
        self.on_device = images.nbytes <= self.config.device_data_mb * 2**20
        if not self.on_device:
            spec = {"x": core.InputSpec((None, *images.shape[1:]))}
            return {**spec, "y": core.InputSpec((None,), "int32")} if self.classes else spec
        self.images = keras.Variable(images, dtype="uint8", trainable=False, name="images")
        if self.classes:
            self.labels = keras.Variable(labels.astype("int32"), dtype="int32", trainable=False, name="labels")
        return {"idx": core.InputSpec((self.batch_size,), "int32")}

    def _lr(self, lr: float, updates_per_step: int):
        """Constant, or linear decay to lr * lr_decay over the run (the optimizer's own step counter)."""
        decay, steps = self.s["lr_decay"], self.s.get("steps")
        if decay == 1.0 or not steps:
            return lr
        return keras.optimizers.schedules.PolynomialDecay(lr, steps * updates_per_step, lr * decay, power=1.0)

    # --- sampling inside the step ---
    def real_batch(self, batch):
        if "idx" in batch:  # gathered on the device, scaled to [-1, 1] like the pipeline's batches
            return ops.cast(ops.take(self.images, batch["idx"], axis=0), "float32") / 127.5 - 1.0
        if not self.is_2d:
            return batch["x"]
        idx = keras.random.randint((self.step_rows,), 0, len(self.modes_np), seed=self.seed_gen)
        noise = keras.random.normal((self.step_rows, 2), stddev=self.std / self.data_scale, seed=self.seed_gen)
        return self.parallel.shard_rows(ops.take(self.modes, idx, axis=0) + noise)

    def batch_labels(self, batch):
        """The real batch's labels (None unconditional); generated images of a step take the same ones, so that
        D sees real and generated digits in the same class proportions."""
        if not self.classes:
            return None
        return ops.take(self.labels, batch["idx"], axis=0) if "idx" in batch else batch["y"]

    def noise(self, n):
        return self.parallel.shard_rows(keras.random.normal((n, self.z_dim), seed=self.seed_gen))

    def g_input(self, z, labels=None):
        return z if labels is None else ops.concatenate([z, ops.one_hot(labels, self.classes)], axis=-1)

    def d_scores(self, x, labels=None):
        if self.s["augment_shift"]:
            x = random_shift(x, self.s["augment_shift"], self.seed_gen)
        return self.D(x if labels is None else [x, labels], training=True)

    # --- the two losses ---
    def d_loss(self, batch):
        real, y = self.real_batch(batch), self.batch_labels(batch)
        n = ops.shape(real)[0]
        fake = ops.stop_gradient(self.G(self.g_input(self.noise(n), y), training=True))
        real_p, fake_p = pack(real, self.pack), pack(fake, self.pack)
        aux, penalty = {}, 0.0
        r1, r1_fraction = self.s["r1"], self.s["r1_fraction"]
        if r1 > 0 and r1_fraction == 1 and y is None:
            real_scores, r1_term = r1_penalty(self.d_scores, real_p)
            fake_scores = self.d_scores(fake_p)
        else:
            # One D call for real and fake, and R1's rows cut off from the batch's graph: with three D calls and
            # the plain slice, TensorFlow's D gradients differed in the last bits in 10-25 % of processes on a busy
            # machine (tests/test_gan_images.py's resume test), this way in none of 34 without the shift and in
            # 1 of 22 with it and deterministic kernels (docs/gan.md, "Determinism").
            # Conditional (pack 1, validate): each row keeps its label, real and generated rows the same ones.
            both = None if y is None else ops.concatenate([y, y], axis=0)
            real_scores, fake_scores = ops.split(self.d_scores(ops.concatenate([real_p, fake_p], axis=0), both), 2)
            if r1 > 0:  # E||grad||^2 estimated on the first rows: unbiased, and the double backward is cheaper
                y_head = None if y is None else head_rows(y, r1_fraction)
                head = ops.stop_gradient(head_rows(real_p, r1_fraction))
                _, r1_term = r1_penalty(lambda x: self.d_scores(x, y_head), head)
        if r1 > 0:
            aux["d/r1"] = r1_term
            penalty = 0.5 * r1 * r1_term
        if self.config.loss == "ns":
            loss = ns_d_loss(real_scores, fake_scores)
        else:
            eps_shape = (ops.shape(real_p)[0],) + (1,) * (len(real_p.shape) - 1)
            eps = keras.random.uniform(eps_shape, seed=self.seed_gen)
            gp = gradient_penalty(lambda x: self.d_scores(x, y), real_p, fake_p, eps)
            aux["d/gp"] = gp
            loss = wgan_d_loss(real_scores, fake_scores)
            penalty = penalty + self.config.gp_weight * gp
        aux["d/real_score"] = ops.mean(real_scores)
        aux["d/fake_score"] = ops.mean(fake_scores)
        return loss + penalty, aux

    def g_loss(self, batch):
        rows = batch.get("x", batch.get("idx"))
        n = self.step_rows if rows is None else ops.shape(rows)[0]
        y = self.batch_labels(batch)
        fake_scores = self.d_scores(pack(self.G(self.g_input(self.noise(n), y), training=True), self.pack), y)
        return ns_g_loss(fake_scores) if self.config.loss == "ns" else wgan_g_loss(fake_scores)

    def train_on_indices(self, idx) -> dict:
        """One compiled call over the images held on the device: a step per row of ``idx`` (steps x batch)."""
        return self.step.train_steps({"idx": idx}) if len(idx) > 1 else self.step.train_step({"idx": idx[0]})

    # --- outside the step ---
    def sample(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """G(z) (G(z, label) if conditional) in data space: 2D points, or images in [0, 1].

        Images with ``--sample-statistics batch``: in batches of the training batch size, each normalised by its
        own statistics (the last batch filled up with the first rows, their outputs dropped), without touching
        the moving averages."""
        if self.classes and labels is None:
            raise ValueError("a conditional GAN samples with one label per noise row")
        by_batch = not self.is_2d and self.config.sample_statistics == "batch"
        size = self.batch_size if by_batch else 500
        rows = np.arange(-(-len(z) // size) * size) % len(z) if by_batch else np.arange(len(z))
        forward = self._sampling_call(by_batch)
        z = np.asarray(z, "float32")
        out = []
        for i in range(0, len(rows), size):
            zi = ops.convert_to_tensor(z[rows[i : i + size]])
            y = None if labels is None else ops.convert_to_tensor(labels[rows[i : i + size]], "int32")
            out.append(forward({"x": zi if y is None else self.g_input(zi, y)}))
        x = np.concatenate(out)[: len(z)].astype("float32")
        return x * self.data_scale if self.is_2d else np.clip((x + 1.0) / 2.0, 0.0, 1.0)

    def _sampling_call(self, training: bool) -> core.ForwardFunction:
        """The sampler's forward pass, compiled once per mode; ``stateless_call`` keeps training-mode batch
        normalisation from writing its moving averages."""
        if (self.sampler, training) not in self._sampling_calls:
            model = self.sampler

            def forward(batch):
                values = [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]
                return model.stateless_call(*values, batch["x"], training=training)[0]

            spec = {"x": core.InputSpec((None, self.z_dim + self.classes))}
            self._sampling_calls[(self.sampler, training)] = core.make_forward(forward, spec, self.config.mode)
        return self._sampling_calls[(self.sampler, training)]

    def draw_labels(self, n: int, seed: int) -> np.ndarray | None:
        """Labels in the data's class proportions for n samples (None unconditional)."""
        if not self.classes:
            return None
        p = np.bincount(self.labels_np, minlength=self.classes) / len(self.labels_np)
        return np.random.default_rng(seed).choice(self.classes, size=n, p=p).astype("int32")

    def checkpoint_objects(self) -> dict:
        objects = {"g": self.G, "d": self.D, "g_opt": self.g_opt, "d_opt": self.d_opt, "seed": self.seed_gen}
        return objects if self.G_avg is None else {**objects, "g_avg": self.G_avg}


# ----- pictures -----


def scatter_png(samples: np.ndarray, modes: np.ndarray, std: float, size: int = 480, caption: str = "") -> np.ndarray:
    """Generated samples (blue) over the modes' 3-standard-deviation circles (red), drawn with Pillow."""
    extent = float(np.abs(modes).max()) * 1.5
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)

    def px(p):
        return ((p[0] + extent) / (2 * extent) * size, (extent - p[1]) / (2 * extent) * size)

    r_px = max(4.0, 3 * std / (2 * extent) * size)
    for m in modes:
        cx, cy = px(m)
        draw.ellipse((cx - r_px, cy - r_px, cx + r_px, cy + r_px), fill=(255, 215, 215), outline=(220, 30, 30))
    for x in np.asarray(samples)[:5000]:
        if np.all(np.isfinite(x)) and np.all(np.abs(x) < extent):
            cx, cy = px(x)
            draw.rectangle((cx, cy, cx + 1, cy + 1), fill=(31, 90, 200))
    if caption:
        draw.text((8, 6), caption, fill=(0, 0, 0))
    return np.asarray(img)


# ----- the run -----


def _fmt_metrics(m: dict) -> str:
    kl = "n/a" if m["reverse_kl"] is None else f"{m['reverse_kl']:.4f}"
    return (
        f"modes {m['modes_captured']}/{m['num_modes']}, high quality {100 * m['high_quality_fraction']:.1f}%, "
        f"reverse KL {kl}"
    )


FRECHET_DRAWS = 20  # draws of 1,000 vs 1,000 on the 10,000 digits: the mean's spread ~0.1 instead of ~0.3-0.6
CLASSIFIER_EPOCHS = 12  # 98.75-98.9 % held-out accuracy on the 10,000-digit split (seed 0), ~30 s on 2 cores

BAR_KEYS = ["d/loss", "g/loss", "d/grad_norm", "g/grad_norm"]


def train(config: Config) -> dict:
    """Train; return the summary (also written to --out/summary.json)."""
    parallel = core.devices_from_flag(config.devices)  # first: a cluster forms before any tensor exists
    s = settings(config)
    if s["batch_size"] % (parallel.num_devices * s["pack"]):
        raise core.UsageError(
            f"--batch-size {s['batch_size']} does not divide over {parallel.num_devices} devices x pack {s['pack']}"
        )
    rng = core.seed_everything(config.seed)
    if config.dataset in DATASETS_2D:
        return train_2d(config, rng, parallel)
    return train_images(config, rng, parallel)


def train_2d(config: Config, rng: np.random.Generator, parallel) -> dict:
    """Steps fused ``steps_per_call`` at a time; mode coverage scored on a fixed noise batch every ``log_every``."""
    gan = GAN(config, parallel=parallel)
    eval_z = np.random.default_rng(config.seed + 1).standard_normal((config.num_samples, gan.z_dim)).astype("float32")
    print(f"stepping on {core.describe_device()}, {parallel.describe()}")
    frames: list[np.ndarray] = []
    with _open_run(config, gan, rng, gan.s["steps"], config.checkpoint_every) as run:
        last_log = run.step
        while run.running:
            n = min(gan.s["steps_per_call"], run.total - run.step)
            logs = gan.step.train_steps(num_steps=n)
            run.advance(n, logs)
            if run.step - last_log >= config.log_every or run.step == run.total:
                samples = gan.sample(eval_z)
                run.log({**logs, **mode_charts(samples, gan)})
                frames.append(scatter_png(samples[:1000], gan.modes_np, gan.std, 240, f"step {run.step}"))
                last_log = run.step

    samples = gan.sample(eval_z)
    metrics = gan_metrics.mode_metrics(samples, gan.modes_np, gan.std)
    print(f"{config.dataset} after {run.step} steps ({run.elapsed():.1f} s): {_fmt_metrics(metrics)}")
    summary = run.write_summary(
        {"dataset": config.dataset, "steps": run.step, "devices": parallel.num_devices, **metrics}
    )
    caption = f"{config.dataset}, {run.step} steps: {_fmt_metrics(metrics)}"
    picture = scatter_png(samples, gan.modes_np, gan.std, caption=caption)
    _write_outputs(run, samples, picture, frames, "training.gif", fps=4)
    return summary


def mode_charts(samples: np.ndarray, gan: GAN) -> dict[str, float]:
    m = gan_metrics.mode_metrics(samples, gan.modes_np, gan.std)
    charts = {"charts/modes_captured": m["modes_captured"], "charts/high_quality_fraction": m["high_quality_fraction"]}
    if m["reverse_kl"] is not None:
        charts["charts/reverse_kl"] = m["reverse_kl"]
    return charts


def _open_run(config: Config, gan: GAN, rng: np.random.Generator, total: int, checkpoint_every: int) -> core.Run:
    return core.Run(
        config,
        gan.checkpoint_objects(),
        total=total,
        desc=config.dataset,
        bar_keys=BAR_KEYS,
        checkpoint_every=checkpoint_every,
        rng=rng,
        may_change=RESUME_MAY_CHANGE,
        resolve=lambda saved: settings(Config(**saved)),  # --batch-size 256 on a ring run that left it at None
        chief=gan.parallel.is_chief,
    )


def _write_outputs(run: core.Run, samples: np.ndarray, picture, frames: list, gif: str, fps: float, scale=1) -> None:
    """samples.npy, samples.png and the GIF under --out, after summary.json; say how to resume if interrupted."""
    if run.out is not None and run.chief:
        np.save(run.out / "samples.npy", samples.astype("float32"))
        core.save_png(picture, run.out / "samples.png", scale=scale)
        if frames:
            core.save_gif(frames, run.out / gif, fps=fps)
        print(f"wrote {run.out / 'summary.json'}, samples.npy, samples.png and {gif}")
    if run.interrupted:
        print(f"interrupted at step {run.step}; continue with --resume --out {run.out}")


def _load_images(config: Config) -> tuple[np.ndarray, np.ndarray | None]:
    if config.dataset == "mnist":
        return gan_data.load_mnist(config.data_dir)
    images, skipped = gan_data.load_folder(config.data_dir, config.image_size, config.channels)
    note = f", skipped {skipped} unreadable file(s)" if skipped else ""
    print(f"loaded {len(images)} pictures from {config.data_dir}{note}")
    return images, None


def train_images(config: Config, rng: np.random.Generator, parallel) -> dict:
    """A fixed batch order per (seed, epoch); a grid of samples from fixed noise per epoch."""
    images, labels = _load_images(config)
    batch_size = settings(config)["batch_size"]
    if batch_size > len(images):
        raise core.UsageError(f"--batch-size {batch_size} exceeds the {len(images)} images")
    gan = GAN(config, images, parallel, labels)
    per_epoch = len(images) // gan.batch_size
    epochs = gan.s["epochs"]
    total = epochs * per_epoch if config.steps is None else min(config.steps, epochs * per_epoch)
    cols = gan.classes or 8  # conditional: one class per column
    fixed_z = np.random.default_rng(config.seed + 1).standard_normal((8 * cols, gan.z_dim)).astype("float32")
    fixed_labels = np.tile(np.arange(cols, dtype="int32"), 8) if gan.classes else None
    scale = 2 if images.shape[1] < 64 else 1
    where = "on the device" if gan.on_device else "through the input pipeline, 1 step per call"
    mib = images.nbytes / 2**20
    print(
        f"stepping on {core.describe_device()}, {parallel.describe()}; {mib:.1f} MiB of images {where}; "
        f"{gan.s['precision']}, {epochs} epochs"
    )
    with _open_run(config, gan, rng, total, per_epoch) as run:
        check_same_data(run, images, labels)
        if run.out is not None and run.chief and not config.resume:  # a crashed run's grids must not join this GIF
            for old in run.out.glob("grids/epoch_*.png"):
                old.unlink()
        while run.running:
            for n, logs in _epoch_calls(config, gan, images, run, per_epoch):
                if run.step // 50 > (run.step - n) // 50:
                    run.log(logs)
            if run.step % per_epoch == 0 or run.step >= run.total:
                if run.out is not None and run.chief:
                    grid = core.image_grid(gan.sample(fixed_z, fixed_labels), cols=cols)
                    core.save_png(grid, run.out / "grids" / f"epoch_{run.step / per_epoch:07.2f}.png", scale=scale)
                bar = ", ".join(f"{k} {float(np.mean(logs[k])):.4g}" for k in BAR_KEYS)
                run.write(f"epoch {run.step / per_epoch:.2f}: {bar}")

    print(f"{config.dataset}: {run.step} steps in {run.elapsed():.1f} s")
    figures = {
        "dataset": config.dataset,
        "steps": run.step,
        "epochs": run.step / per_epoch,
        "precision": gan.s["precision"],
    }
    summary = run.write_summary({**figures, "devices": parallel.num_devices})
    scoring = labels is not None and config.quality and run.chief
    n = max(config.num_samples, scored_samples(len(images)) if scoring else 0)
    z = np.random.default_rng(config.seed + 2).standard_normal((n, gan.z_dim))
    samples = gan.sample(z, gan.draw_labels(n, config.seed + 3))
    if scoring:
        cache = [Path(config.classifier_cache).expanduser()] + ([run.out] if run.out else [])
        summary = run.write_summary(classifier_quality(images, labels, samples, cache, CLASSIFIER_EPOCHS))
        print(_fmt_quality(summary))
    samples = samples[: config.num_samples]
    frames = [np.asarray(Image.open(p)) for p in sorted(run.out.glob("grids/epoch_*.png"))] if run.out else []
    picture = core.image_grid(gan.sample(fixed_z, fixed_labels), cols=cols)
    _write_outputs(run, samples, picture, frames, "grids.gif", fps=2, scale=scale)
    return summary


def check_same_data(run: core.Run, images: np.ndarray, labels: np.ndarray | None) -> None:
    """A resumed run trains on the data it started on (--data-dir may name another copy of it, not other data)."""
    digest = gan_metrics.arrays_key(images, labels)
    if run.state.setdefault("data_sha256", digest) != digest:
        source = run.config.data_dir or "keras.datasets"
        raise core.UsageError(f"--resume: the checkpoint was trained on other data than {source} holds")


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's image order (a resumed run redraws the same order)."""
    return seed * 100003 + epoch


def _epoch_calls(config: Config, gan: GAN, images: np.ndarray, run: core.Run, per_epoch: int):
    """The rest of the current epoch, one compiled call at a time; yields (steps, logs) after ``run.advance``.

    One fixed order per (seed, epoch), so a resumed run skips exactly the batches it has seen. Data on the
    device: only the indices of ``--steps-per-call`` batches travel per call; else one tf.data batch per call.
    """
    epoch, offset = divmod(run.step, per_epoch)
    if gan.on_device:
        while run.running:
            n = min(gan.s["steps_per_call"], run.total - run.step, per_epoch - run.step % per_epoch)
            idx = gan.parallel.local_rows(
                gan_data.batch_indices(len(images), gan.batch_size, partial(epoch_seed, config.seed), run.step, n), 1
            )
            logs = gan.train_on_indices(idx)
            run.advance(n, logs)
            yield n, logs
            if run.step % per_epoch == 0:
                return
        return
    seed = epoch_seed(config.seed, epoch)
    for batch in gan_data.image_batches(images, gan.batch_size, seed=seed, skip=offset, labels=gan.labels_np):
        x, y = batch if gan.classes else (batch, None)
        inputs = {"x": gan.parallel.local_rows(x)}
        logs = gan.step.train_step(inputs if y is None else {**inputs, "y": gan.parallel.local_rows(y)})
        run.advance(1, logs)
        yield 1, logs
        if not run.running:
            return


def _fmt_quality(q: dict) -> str:
    def kl(v):
        return "n/a" if v is None else f"{v:.3f}"

    return (
        f"classifier (accuracy {100 * q['classifier_accuracy']:.1f}% on held-out real digits), generated vs real: "
        f"classes covered {q['classes_covered']}/10 vs {q['classes_covered_real']}/10, "
        f"class KL {kl(q['class_kl'])} vs {kl(q['class_kl_real'])}, "
        f"confident {100 * q['confident_fraction']:.1f}% vs {100 * q['confident_fraction_real']:.1f}%, "
        f"Frechet distance {q['frechet_distance']:.3g} (sd {q['frechet_distance_sd']:.2g}) vs "
        f"{q['frechet_distance_real']:.3g} (sd {q['frechet_distance_real_sd']:.2g}), "
        f"means of {q['frechet_draws']} and {q['frechet_draws_real']} draws of {q['frechet_samples']} against as many"
    )


def classifier_quality(
    images: np.ndarray, labels: np.ndarray, samples: np.ndarray, cache_dirs: list, epochs: int = 12
) -> dict:
    """Class coverage, confidence and a Frechet distance in the features of a classifier trained on ``images``,
    each beside the same figure for held-out real digits (the distance: gan_metrics.frechet_over_splits).

    No download: the classifier learns from the real data the run was given (a fifth held out for its accuracy
    and as the real side of every figure), once per dataset: it is cached in the first writable of
    ``cache_dirs`` under a hash of the data (gan_metrics.quality_classifier).
    """
    model, val_idx, accuracy, path, trained = gan_metrics.quality_classifier(images, labels, cache_dirs, epochs)
    if path is None:
        print("quality classifier trained (not cached: no writable folder in --classifier-cache or --out)")
    else:
        print(f"quality classifier {'trained and saved to' if trained else 'loaded from'} {path}")
    real_f, real_logits = model.predict(images[val_idx].astype("float32") / 255.0, batch_size=500, verbose=0)
    fake_f, fake_logits = model.predict(samples.astype("float32"), batch_size=500, verbose=0)
    real = gan_metrics.class_coverage(_softmax(real_logits))
    return {
        "classifier_accuracy": accuracy,
        **gan_metrics.class_coverage(_softmax(fake_logits)),
        **{f"{k}_real": v for k, v in real.items()},
        **gan_metrics.frechet_over_splits(real_f, fake_f, FRECHET_DRAWS),
    }


def scored_samples(num_images: int) -> int:
    """Samples the quality figures take: FRECHET_DRAWS draws of as many as half the held-out digits."""
    return FRECHET_DRAWS * (len(gan_metrics.classifier_split(num_images)[0]) // 2)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    return core.run_main(train, Config, argv)


if __name__ == "__main__":
    sys.exit(main())
