"""MNIST GAN quality against training time: the example's step, scored by its quality classifier as it trains.

    taskset -c 0 python -m benchmarks.gan_mnist_curve --every 780 -- --data-dir ../shared/data/mnist
    taskset -c 1 python -m benchmarks.gan_mnist_curve --every 780 -- --data-dir ../shared/data/mnist --batch-size 64

Flags after ``--`` are ``examples.gan_images`` flags (``--dataset mnist`` is implied; ``--epochs`` / ``--steps``
bound the run). Every ``--every`` steps it prints the steps, the training seconds so far (scoring excluded) and the
classifier figures of the averaged and of the raw generator: Frechet distance, confident fraction, class KL.
Settings are compared at equal training seconds, since a cheaper step buys more steps in the same time.
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

import core
from examples import gan_data, gan_images, gan_metrics


def figures(model: gan_images.ImageGAN, sampler, images, labels, z, z_labels, cache) -> str:
    model.sampler = sampler
    samples = model.sample(z, z_labels)
    q = gan_metrics.classifier_quality(images, labels, samples, cache, gan_metrics.CLASSIFIER_EPOCHS)
    kl = "n/a" if q["class_kl"] is None else f"{q['class_kl']:.3f}"  # None: no confident sample
    return f"FD {q['frechet_distance']:6.2f}  confident {q['confident_fraction']:.3f}  class KL {kl}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = core.OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=core.positive_int, default=780, help="steps between scorings")
    args = parser.parse_args(argv[:split])
    config = core.parse_config(gan_images.Config, ["--dataset", "mnist", *argv[split + 1 :]])
    images, labels = gan_data.load_mnist(config.data_dir)
    core.seed_everything(config.seed)
    model = gan_images.ImageGAN(config, images, labels=labels)
    if not model.on_device:
        parser.error("the images must be held on the device (--device-data-mb at least their size)")
    per_epoch = len(images) // model.batch_size
    epochs = config.epoch_budget()
    total = epochs * per_epoch if config.steps is None else min(config.steps, epochs * per_epoch)
    n = max(config.num_samples, gan_metrics.scored_samples(len(images)))  # the example's scoring
    z, z_labels = gan_images.scoring_inputs(config, model, n)  # z_labels None unconditional
    cache = [Path(config.classifier_cache).expanduser()]
    samplers = {"averaged": model.G_avg, "raw": model.G} if model.G_avg is not None else {"raw": model.G}
    print(f"stepping on {core.describe_device()}; batch {model.batch_size}, {total} steps", flush=True)
    step, seconds = 0, 0.0
    while step < total:
        n = min(config.steps_per_call, total - step, per_epoch - step % per_epoch, args.every - step % args.every)
        order = partial(gan_images.epoch_seed, config.seed)
        idx = gan_data.batch_indices(len(images), model.batch_size, order, step, n)
        start = time.perf_counter()
        model.train_on_indices(idx)
        seconds += time.perf_counter() - start
        step += n
        if step % args.every == 0 or step == total:
            for name, sampler in samplers.items():
                scores = figures(model, sampler, images, labels, z, z_labels, cache)
                print(f"step {step:6d}  {seconds:7.1f} s  {name:8s} {scores}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(core.run_script(main))
