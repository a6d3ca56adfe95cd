"""A GAN on a 2D Gaussian mixture that the compiled step draws itself: 8 modes on a circle or 25 on a grid.

    python -m examples.gan_2d --out runs/ring                   # 8 Gaussians on a circle (the default)
    python -m examples.gan_2d --dataset grid --out runs/grid    # 25 Gaussians on a 5x5 grid
    python -m examples.gan_2d --loss wgan-gp --d-steps 5 --r1 0 --out runs/wgan

(``python -m examples.gan`` runs this program for ``--dataset ring|grid``, the default.) The step has no inputs:
the losses sample noise and the mixture with ``keras.random``, so ``--steps-per-call`` steps run in one compiled
call. Losses: non-saturating (default) or WGAN-GP, R1 on real data, D's samples packed in pairs (PacGAN); the
quality figures are the PacGAN / VEEGAN protocol (examples/gan_metrics.py). docs/gan.md has the details.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below, which take seconds (examples/command.py)
    from examples.command import guard_start_up

    guard_start_up()

import sys
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
from keras import ops
from PIL import Image, ImageDraw

import core
from examples import PROGRAMS, gan_metrics, gan_parts

# Flags a resumed run may change: the budget, sampling, logging and speed knobs that keep the steps the same.
MAY_CHANGE = ("steps", "steps_per_call", "num_samples", "sample_raw", "log_every", "checkpoint_every", "devices")


@dataclass
class Config(core.RunConfig):
    """Train a GAN (generator + discriminator, two optimizers) on a 2D Gaussian mixture with a compiled step."""

    dataset: Literal["ring", "grid"] = "ring"
    """ring: 8 Gaussians on the unit circle (std 0.01); grid: 25 on {-4, -2, 0, 2, 4}^2 (std 0.05)"""
    steps: int = core.arg(20000, min=1, max=10**12)
    """generator updates"""
    batch_size: int = core.arg(256, min=1, max=65_536)
    """samples per step"""
    loss: Literal["ns", "wgan-gp"] = "ns"
    """ns: non-saturating GAN loss; wgan-gp: Wasserstein loss with a gradient penalty (weight 10) on interpolates"""
    d_steps: int = core.arg(1, min=1, max=100)
    """discriminator updates per generator update, all inside the same compiled step"""
    g_lr: float = core.arg(1e-3, above=0, max=10)
    """generator Adam learning rate"""
    d_lr: float = core.arg(1e-3, above=0, max=10)
    """discriminator Adam learning rate"""
    beta1: float = core.arg(0.5, min=0, below=1)
    """Adam beta_1 of both optimizers"""
    beta2: float = core.arg(0.999, min=0, below=1)
    """Adam beta_2 of both optimizers"""
    lr_decay: float = core.arg(0.01, above=0, max=1)
    """final / initial learning rate, reached linearly over --steps (small late steps sharpen the modes; 1:
    constant)"""
    r1: float = core.arg(0.1, min=0, max=1e6)
    """R1 penalty weight gamma: gamma/2 * E||grad_x D(x_real)||^2; 0 turns it off"""
    r1_fraction: float = core.arg(1.0, above=0, max=1)
    """share of the real batch the R1 expectation is estimated on (D still scores all of it)"""
    pack: int = core.arg(2, min=1, max=64)
    """samples packed into one discriminator input (PacGAN)"""
    clip_g: float | None = core.arg(None, above=0, max=1e9)
    """clip the generator's gradients to this global norm"""
    clip_d: float | None = core.arg(None, above=0, max=1e9)
    """clip the discriminator's gradients to this global norm"""
    z_dim: int = core.arg(16, min=1, max=4096)
    """noise size"""
    hidden: int = core.arg(128, min=1, max=8192)
    """units per hidden layer of both MLPs"""
    ema_decay: float = core.arg(0.0, min=0, below=1)
    """keep an averaged copy of G (after every step: avg <- decay * avg + (1 - decay) * G, core.ema) and draw the
    samples and quality figures from it; 0 turns it off"""
    sample_raw: bool = False
    """draw samples and quality figures from the raw (trained) G even when an average is kept"""
    steps_per_call: int = core.arg(200, min=1, max=100_000)
    """train steps fused into one compiled call"""
    num_samples: int = core.arg(2500, min=1, max=1_000_000)
    """samples from G, from fixed noise, scored and written to samples.npy"""
    log_every: int = core.arg(1000, min=1)
    """steps between metric logs and GIF frames (rounded to whole calls)"""
    checkpoint_every: int = core.arg(2000, min=1)
    """steps between checkpoints (rounded to whole calls)"""
    mode: Literal["eager", "graph", "xla"] = "graph"
    """how the step is compiled: eager (debugging), graph (tf.function; jax.jit on JAX) or xla (jit_compile: helps
    this small step)"""
    devices: str = "1"
    """devices to step on, data parallel: N or all (CUSTOMLOOP_CPU_DEVICES=N shows a CPU as N devices); the
    batch size must divide by devices x pack"""

    def validate(self) -> None:
        if self.batch_size % self.pack:
            raise core.UsageError(f"--batch-size {self.batch_size} is not a multiple of --pack {self.pack}")


# ----- the networks: MLPs with three hidden layers -----


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


class MixtureGAN(gan_parts.GAN):
    """The shared two-group step on a 2D mixture: each step draws its real batch from the mixture itself.

    ``precision`` (not a flag: 2D trains in float32) lets tests run the mixed policies on this cheap step."""

    def __init__(self, config: Config, parallel=None, precision: str = "float32"):
        self.precision = precision
        self.pack = config.pack
        self.sample_raw = config.sample_raw
        self.z_dim = config.z_dim
        self.modes_np, self.std = gan_metrics.mixture(config.dataset)
        # The networks see data scaled into [-1, 1] (the grid spans [-4, 4]); samples are scaled back.
        self.data_scale = float(np.abs(self.modes_np).max())
        super().__init__(config, parallel)

    def build_networks(self):
        self.modes = ops.convert_to_tensor(self.modes_np / self.data_scale)
        g = mlp_generator(self.z_dim, self.config.hidden)
        return g, mlp_discriminator(2 * self.pack, self.config.hidden)

    def learning_rate(self, lr: float, updates_per_step: int):
        """Constant, or linear decay to lr * --lr-decay over --steps (the optimizer's own step counter, so the
        schedule survives a resume)."""
        decay, steps = self.config.lr_decay, self.config.steps
        if decay == 1.0:
            return lr
        return keras.optimizers.schedules.PolynomialDecay(lr, steps * updates_per_step, lr * decay, power=1.0)

    def gradient_transforms(self):
        """--clip-d and --clip-g: core.clip_by_global_norm as each group's transform."""
        return tuple(core.clip_by_global_norm(c) if c else None for c in (self.config.clip_d, self.config.clip_g))

    def real_batch(self, batch):
        idx = keras.random.randint((self.step_rows,), 0, len(self.modes_np), seed=self.seed_gen)
        noise = keras.random.normal((self.step_rows, 2), stddev=self.std / self.data_scale, seed=self.seed_gen)
        return self.parallel.shard_rows(ops.take(self.modes, idx, axis=0) + noise)

    def batch_rows(self, batch):
        return self.step_rows

    def sample(self, z: np.ndarray) -> np.ndarray:
        """G(z) in data space."""
        return self.generate(z) * self.data_scale


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


def eval_noise(config: Config, z_dim: int) -> np.ndarray:
    """The fixed noise every score and picture of a run is drawn from (the same in a resumed run)."""
    return core.derived_rng(config.seed, "eval-noise").standard_normal((config.num_samples, z_dim)).astype("float32")


def train(config: Config) -> dict:
    """Steps fused ``--steps-per-call`` at a time; mode coverage scored on fixed noise every ``--log-every`` steps.
    Returns the summary (also written to --out/summary.json)."""
    parallel = core.devices_from_flag(config.devices)  # first: a cluster forms before any tensor exists
    if config.batch_size % (parallel.num_devices * config.pack):
        raise core.UsageError(
            f"--batch-size {config.batch_size} does not divide over {parallel.num_devices} devices x pack {config.pack}"
        )
    rng = core.seed_everything(config.seed)
    gan = MixtureGAN(config, parallel)
    eval_z = eval_noise(config, gan.z_dim)
    print(f"stepping on {core.describe_device()}, {parallel.describe()}")
    run = core.Run(
        config,
        gan.checkpoint_objects(),
        total=config.steps,
        desc=config.dataset,
        bar_keys=gan_parts.BAR_KEYS,
        checkpoint_every=config.checkpoint_every,
        rng=rng,
        may_change=MAY_CHANGE,
        chief=parallel.is_chief,
        export=gan.networks(),
    )
    with run:
        gan_parts.forget_frames(run, "frames")
        frames: list[np.ndarray] = []  # without --out; with it the frames are files, so a resumed run has them all
        last_log = run.step
        while run.running:
            n = min(config.steps_per_call, run.total - run.step)
            logs = gan.step.train_steps(num_steps=n)
            run.advance(n, logs)
            if run.step - last_log >= config.log_every or run.step == run.total:
                samples = gan.sample(eval_z)
                run.log({**logs, **mode_charts(samples, gan)})
                frame = scatter_png(samples[:1000], gan.modes_np, gan.std, 240, f"step {run.step}")
                if run.out is None:
                    frames.append(frame)
                elif run.chief:
                    core.save_png(frame, run.out / "frames" / f"step_{run.step:09d}.png")
                last_log = run.step

    samples = gan.sample(eval_z)
    metrics = gan_metrics.mode_metrics(samples, gan.modes_np, gan.std)
    print(f"{config.dataset} after {run.step} steps ({run.elapsed():.1f} s): {fmt_metrics(metrics)}")
    summary = run.write_summary(
        {"dataset": config.dataset, "steps": run.step, "devices": parallel.num_devices, **metrics}
    )
    caption = f"{config.dataset}, {run.step} steps: {fmt_metrics(metrics)}"
    picture = scatter_png(samples, gan.modes_np, gan.std, caption=caption)
    gan_parts.write_outputs(run, samples, picture, frames or gan_parts.frames_on_disk(run, "frames"), "training.gif", 4)
    return summary


def mode_charts(samples: np.ndarray, gan: MixtureGAN) -> dict[str, float]:
    m = gan_metrics.mode_metrics(samples, gan.modes_np, gan.std)
    charts = {"charts/modes_captured": m["modes_captured"], "charts/high_quality_fraction": m["high_quality_fraction"]}
    if m["reverse_kl"] is not None:
        charts["charts/reverse_kl"] = m["reverse_kl"]
    return charts


def fmt_metrics(m: dict) -> str:
    kl = "n/a" if m["reverse_kl"] is None else f"{m['reverse_kl']:.4f}"
    return (
        f"modes {m['modes_captured']}/{m['num_modes']}, high quality {100 * m['high_quality_fraction']:.1f}%, "
        f"reverse KL {kl}"
    )


def main(argv: list[str] | None = None) -> int:
    # The other GAN program first: a flag it shares with another command (--epochs) names it.
    return core.run_main(train, Config, argv, ("examples.gan_images", *PROGRAMS))  # the sibling named first


if __name__ == "__main__":
    sys.exit(main())
