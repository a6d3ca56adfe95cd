"""What the two GAN programs share: losses and penalties, packing and shifting, the dtype-policy context, the
two-group step (:class:`GAN`) and the files a run writes.

``examples/gan_2d.py`` (2D mixtures) and ``examples/gan_images.py`` (MNIST, folders of pictures) each subclass
:class:`GAN` with where their real data come from, their networks and how G's outputs become samples.
"""

from __future__ import annotations

import core  # before Keras, which it imports with TensorFlow's start-up log hidden (`python -m` of this module too)

# isort: split
import contextlib
import sys
from typing import Any, Protocol

import keras
import numpy as np
from keras import ops
from PIL import Image

GP_WEIGHT = 10.0
"""WGAN-GP's penalty weight lambda on (||grad D(x_hat)|| - 1)^2: the 10 of Gulrajani et al., for every dataset"""
BAR_KEYS = ["d/loss", "g/loss", "d/grad_norm", "g/grad_norm"]


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


# ----- the step -----


class GANConfig(Protocol):
    """The flags of both programs that :class:`GAN` reads."""

    seed: int
    mode: str
    loss: str
    d_steps: int
    g_lr: float
    d_lr: float
    beta1: float
    beta2: float
    r1: float
    r1_fraction: float
    ema_decay: float
    batch_size: int


class GAN:
    """Both networks, both optimizers, the seed generator that draws noise (and 2D data) inside the step, the
    averaged G, and the compiled step: a discriminator group, then a generator group.

    A program's subclass sets the class attributes below that differ for it and writes ``build_networks``,
    ``real_batch``, ``batch_rows`` and ``sample``; the hooks ``step_inputs``, ``learning_rate``,
    ``gradient_transforms``, ``augment`` and ``batch_labels`` do nothing here."""

    z_dim: int
    pack = 1  # samples per discriminator input (PacGAN)
    classes = 0  # class-conditional: G draws and D judges a digit of one of this many classes
    labels_np: np.ndarray | None = None  # the data's labels (conditional)
    precision = "float32"  # the Keras dtype policy of both networks
    sample_raw = False  # samples from the trained G even when an average is kept
    fused_unroll = 1  # steps unrolled per fused call (core.make_step)

    def __init__(self, config: GANConfig, parallel: core.DataParallel | core.SingleDevice | None = None):
        self.config = config
        self.parallel = parallel or core.SingleDevice()
        with self.parallel.scope():
            self._build()

    def _build(self) -> None:
        """In this order, which fixes the initial weights a seed gives: seed generator, networks, optimizers, data
        on the device, the average; then the compiled step."""
        config = self.config
        self.batch_size = config.batch_size
        self.step_rows = self.parallel.step_rows(self.batch_size)  # rows a step draws for itself
        self.seed_gen = keras.random.SeedGenerator(config.seed)
        with dtype_policy(self.precision):
            self.G, self.D = self.build_networks()
        self.g_opt = self._optimizer(self.learning_rate(config.g_lr, 1))
        self.d_opt = self._optimizer(self.learning_rate(config.d_lr, config.d_steps))
        clip_d, clip_g = self.gradient_transforms()
        groups = [
            core.UpdateGroup("d", self.d_loss, self.D.trainable_variables, self.d_opt, clip_d, repeats=config.d_steps),
            core.UpdateGroup("g", self.g_loss, self.G.trainable_variables, self.g_opt, clip_g),
        ]
        inputs = self.step_inputs()
        self.G_avg, after = None, []
        if config.ema_decay > 0:
            # A separate copy (core.ema's docstring says why not the optimizer's use_ema), checkpointed as "g_avg".
            self.G_avg = keras.models.clone_model(self.G)
            core.copy_weights(self.G_avg, self.G)
            after = [core.ema(self.G_avg.weights, self.G.weights, config.ema_decay, count=self.g_opt.iterations)]
        self.sampler = self.G if (self.G_avg is None or self.sample_raw) else self.G_avg
        self._sampling_calls: dict = {}
        self.step = core.make_step(
            groups, inputs, mode=config.mode, after_update=after, parallel=self.parallel, fused_unroll=self.fused_unroll
        )

    def _optimizer(self, lr):
        """Adam; under mixed_float16 inside a LossScaleOptimizer (the core scales each group's loss)."""
        opt = keras.optimizers.Adam(lr, beta_1=self.config.beta1, beta_2=self.config.beta2)
        return keras.optimizers.LossScaleOptimizer(opt) if self.precision == "mixed_float16" else opt

    # --- what a program defines ---
    def build_networks(self) -> tuple[keras.Model, keras.Model]:
        """(G, D), built under the dtype policy."""
        raise NotImplementedError

    def real_batch(self, batch: dict):
        """The real samples of one step, in the networks' scale."""
        raise NotImplementedError

    def batch_rows(self, batch: dict):
        """How many samples G draws for its own update."""
        raise NotImplementedError

    def step_inputs(self) -> dict | None:
        """The step's declared inputs (core.InputSpec); None: the step draws its own data."""
        return None

    def learning_rate(self, lr: float, updates_per_step: int):
        return lr

    def gradient_transforms(self) -> tuple[Any, Any]:
        """(D's, G's) gradient transform, or None."""
        return None, None

    def augment(self, x):
        """What D sees of real and generated samples alike."""
        return x

    def batch_labels(self, batch: dict):
        """The real batch's labels (None unconditional)."""
        return None

    # --- inside the step ---
    def noise(self, n):
        return self.parallel.shard_rows(keras.random.normal((n, self.z_dim), seed=self.seed_gen))

    def g_input(self, z, labels=None):
        return z if labels is None else ops.concatenate([z, ops.one_hot(labels, self.classes)], axis=-1)

    def d_scores(self, x, labels=None):
        x = self.augment(x)
        return self.D(x if labels is None else [x, labels], training=True)

    def d_loss(self, batch):
        real, y = self.real_batch(batch), self.batch_labels(batch)
        n = ops.shape(real)[0]
        fake = ops.stop_gradient(self.G(self.g_input(self.noise(n), y), training=True))
        real_p, fake_p = pack(real, self.pack), pack(fake, self.pack)
        aux, penalty = {}, 0.0
        r1, r1_fraction = self.config.r1, self.config.r1_fraction
        if r1 > 0 and r1_fraction == 1 and y is None:
            real_scores, r1_term = r1_penalty(self.d_scores, real_p)
            fake_scores = self.d_scores(fake_p)
        else:
            # One D call for real and fake, and R1's rows cut off from the batch's graph: with three D calls and
            # the plain slice, TensorFlow's D gradients differed in the last bits in 10-25 % of processes on a busy
            # machine (tests/test_gan_images.py's resume test), this way in none of 34 without the shift and in
            # 1 of 22 with it and deterministic kernels (docs/gan.md, "Determinism").
            # Conditional (pack 1): each row keeps its label, real and generated rows the same ones.
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
            penalty = penalty + GP_WEIGHT * gp
        aux["d/real_score"] = ops.mean(real_scores)
        aux["d/fake_score"] = ops.mean(fake_scores)
        return loss + penalty, aux

    def g_loss(self, batch):
        n = self.batch_rows(batch)
        y = self.batch_labels(batch)
        fake_scores = self.d_scores(pack(self.G(self.g_input(self.noise(n), y), training=True), self.pack), y)
        return ns_g_loss(fake_scores) if self.config.loss == "ns" else wgan_g_loss(fake_scores)

    # --- outside the step ---
    def generate(self, z: np.ndarray, labels: np.ndarray | None = None, by_batch: bool = False) -> np.ndarray:
        """The sampler's outputs for noise rows ``z`` (and their labels, conditional), float32.

        ``by_batch``: in batches of the training batch size, each normalised by its own statistics as in training
        (the last batch filled up with the first rows, their outputs dropped), without touching the moving
        averages; else in batches of 500 through the moving averages."""
        if self.classes and labels is None:
            raise ValueError("a conditional GAN samples with one label per noise row")
        size = self.batch_size if by_batch else 500
        rows = np.arange(-(-len(z) // size) * size) % len(z) if by_batch else np.arange(len(z))
        forward = self._sampling_call(by_batch)
        z = np.asarray(z, "float32")
        out = []
        for i in range(0, len(rows), size):
            zi = ops.convert_to_tensor(z[rows[i : i + size]])
            y = None if labels is None else ops.convert_to_tensor(labels[rows[i : i + size]], "int32")
            out.append(forward({"x": zi if y is None else self.g_input(zi, y)}))
        return np.concatenate(out)[: len(z)].astype("float32")

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

    def checkpoint_objects(self) -> dict:
        objects = {"g": self.G, "d": self.D, "g_opt": self.g_opt, "d_opt": self.d_opt, "seed": self.seed_gen}
        return objects if self.G_avg is None else {**objects, "g_avg": self.G_avg}

    def networks(self) -> dict:
        """The trained networks as a run exports them (``<name>.keras``, for ``keras.saving.load_model``)."""
        networks = {"generator": self.G, "discriminator": self.D}
        return networks if self.G_avg is None else {**networks, "generator_average": self.G_avg}


# ----- the files a run writes -----


def write_outputs(run: core.Run, samples: np.ndarray, picture, frames: list, gif: str, fps: float, scale=1) -> None:
    """samples.npy, samples.png and the GIF under --out, after summary.json (an interrupted run's ``core.Run``
    has already said how to resume it)."""
    if run.out is not None and run.chief:
        np.save(run.out / "samples.npy", samples.astype("float32"))
        core.save_png(picture, run.out / "samples.png", scale=scale)
        if frames:
            core.save_gif(frames, run.out / gif, fps=fps)
        print(f"wrote {run.out / 'summary.json'}, samples.npy, samples.png and {gif}")


def frames_on_disk(run: core.Run, folder: str) -> list[np.ndarray]:
    """The frames a run saved as ``--out/<folder>/*.png`` (a resumed run's earlier ones included), in order."""
    return [np.asarray(Image.open(p)) for p in sorted(run.out.glob(f"{folder}/*.png"))] if run.out else []


def forget_frames(run: core.Run, folder: str) -> None:
    """A fresh run in a folder a crashed run used: its frames must not join this run's GIF."""
    if run.out is not None and run.chief and not run.config.resume:
        for old in run.out.glob(f"{folder}/*.png"):
            old.unlink()


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("examples.gan_parts"))
