"""The image GAN step on one device, through the data-parallel path on 1 device, and on 2 devices, in one run.

    python -m benchmarks.parallel_step --data-dir ../shared/data/mnist

The image GAN's MNIST step (this script's default batch 64, data on the device, one step per call) timed three
ways in one process:
(a) the plain path (``--devices 1``); (b) ``core.DataParallel(1)``: the distribution code on one device, whose
cost over (a) is the overhead the data-parallel path adds; (c) ``core.DataParallel(2)``. On a machine without
accelerators the devices are the CPU split in two (``CUSTOMLOOP_CPU_DEVICES=2``, set for you): both share the
same cores, so (c) measures the cost of splitting, not a speed-up. The variants take turns (``--rounds``) so
that a change in the machine's load hits all; medians are printed with the ratio of each to (a).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

import core
from examples import gan_data, gan_images


def make(data_dir: str | None, parallel, seed: int, batch_size: int) -> tuple[gan_images.ImageGAN, np.ndarray]:
    config = gan_images.Config(dataset="mnist", data_dir=data_dir, seed=seed, batch_size=batch_size)
    images, _ = gan_data.load_mnist(data_dir)
    core.seed_everything(seed)
    return gan_images.ImageGAN(config, images, parallel=parallel), images


def rate(model: gan_images.ImageGAN, images: np.ndarray, steps: int) -> float:
    idx = [gan_data.batch_indices(len(images), model.batch_size, lambda e: e, i, 1)[0] for i in range(steps + 1)]
    model.step.train_step({"idx": idx[0]})  # compiled before the clock starts
    start = time.perf_counter()
    for i in range(steps):
        model.step.train_step({"idx": idx[i + 1]})
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = core.OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="MNIST IDX files (default: keras.datasets download)")
    parser.add_argument("--steps", type=core.positive_int, default=30, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=core.positive_int, default=3)
    parser.add_argument("--batch-size", type=core.positive_int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.batch_size % 2:
        parser.error(f"--batch-size {args.batch_size}: the 2-device variant splits it in two, so it must be even")
    if "CUSTOMLOOP_CPU_DEVICES" not in os.environ and not core.gpu_available():
        # The CPU must be split before the backend starts: start again with it split in two.
        os.environ["CUSTOMLOOP_CPU_DEVICES"] = "2"
        os.execv(sys.executable, [sys.executable, "-m", "benchmarks.parallel_step", *sys.argv[1:]])
    print(f"stepping on {core.describe_device()}", flush=True)
    variants = {"one device (plain path)": core.SingleDevice(), "DataParallel(1)": core.DataParallel(1)}
    try:
        variants["DataParallel(2)"] = core.DataParallel(2)
        print(variants["DataParallel(2)"].describe())
    except core.UsageError as e:  # one GPU: the overhead on one device is the figure
        print(f"DataParallel(2) left out: {e}")
    models = {name: make(args.data_dir, p, args.seed, args.batch_size) for name, p in variants.items()}
    rates: dict[str, list[float]] = {name: [] for name in models}
    for r in range(args.rounds):
        for name, (model, images) in models.items():
            rates[name].append(rate(model, images, args.steps))
            print(f"round {r}: {name}: {rates[name][-1]:.2f} steps/s", flush=True)
    base = statistics.median(rates["one device (plain path)"])
    print(f"\nmedian of {args.rounds} rounds x {args.steps} steps, batch {args.batch_size}, mode graph")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:26s} {median:7.2f} steps/s   x{median / base:.3f} vs the plain path")
    overhead = 1.0 - statistics.median(rates["DataParallel(1)"]) / base
    print(f"overhead of the distribution path on one device: {100 * overhead:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(core.run_script(main))
