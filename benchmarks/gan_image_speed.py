"""Image GAN steps per second: the input pipeline at one step per call vs the data on the device, fused.

    taskset -c 1 python -m benchmarks.gan_image_speed --data-dir ../shared/data/mnist
    taskset -c 1 python -m benchmarks.gan_image_speed --data-dir ../shared/data/mnist --steps-per-call 10 20
    python -m benchmarks.gan_image_speed --batch-size 256 --precision mixed_bfloat16   # the GPU rows

The MNIST step (examples.gan_images' networks and losses, batch 64 unless --batch-size) timed in one process: (a)
today's path, a tf.data batch per step fed to ``train_step`` (NumPy batches on a JAX-only install); (b) the images
held on the device, each step's batch gathered inside the compiled call, one step per call; (c) the same with N
steps per ``train_steps`` call. The variants take turns (``--rounds``) so that a change in the machine's load hits
all. Prints steps/s and the median over rounds of each round's ratio to (a) (paired: the machine's speed drifts
between rounds); exit code 1 if a fused variant is slower than (a).

Figures and the commands behind them: docs/benchmarks.md ("GAN image speed"). On the 2-core CPU the fused call
and single calls are equal to within about 3 %; on JAX the fused call is unrolled (fused_unroll), since inside a
lax.scan loop XLA's CPU convolutions ran ~4x slower.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import core
from examples import gan_data, gan_images


def make(args: argparse.Namespace, on_device: bool) -> tuple[gan_images.ImageGAN, np.ndarray]:
    config = gan_images.Config(
        dataset="mnist",
        data_dir=args.data_dir,
        device_data_mb=1e9 if on_device else 0.0,
        seed=args.seed,
        batch_size=args.batch_size,
        precision=args.precision,
        conditional=args.conditional,
    )
    images, labels = gan_data.load_mnist(args.data_dir)
    core.seed_everything(args.seed)
    return gan_images.ImageGAN(config, images, labels=labels), images


def pipeline_rate(model: gan_images.ImageGAN, images: np.ndarray, steps: int) -> float:
    batches = iter(gan_data.image_batches(images, model.batch_size, seed=0, labels=model.labels_np))

    def feed(batch):  # the example's conditional step takes each batch's labels as "y"
        return {"x": batch[0], "y": batch[1]} if model.classes else {"x": batch}

    model.step.train_step(feed(next(batches)))  # traced / compiled before the clock starts
    start = time.perf_counter()
    for _ in range(steps):
        model.step.train_step(feed(next(batches)))
    return steps / (time.perf_counter() - start)


def device_rate(model: gan_images.ImageGAN, images: np.ndarray, steps: int, per_call: int) -> float:
    calls = max(steps // per_call, 1)
    idx = [
        gan_data.batch_indices(len(images), model.batch_size, lambda e: e, i * per_call, per_call)
        for i in range(calls + 1)
    ]

    def call(i):  # as the example does: one step is a plain train_step, several a fused train_steps
        return model.train_on_indices(idx[i])

    call(0)
    start = time.perf_counter()
    for i in range(calls):
        call(i + 1)
    return calls * per_call / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = core.OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="MNIST IDX files (default: keras.datasets download)")
    parser.add_argument("--steps", type=core.positive_int, default=60, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=core.positive_int, default=3)
    parser.add_argument("--steps-per-call", type=core.positive_int, nargs="+", default=[10])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=core.positive_int, default=64)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument(
        "--conditional", action=argparse.BooleanOptionalAction, default=False, help="the class-conditional GAN"
    )
    args = parser.parse_args(argv)
    print(f"stepping on {core.describe_device()}, mode graph, {args.precision}", flush=True)
    piped, images = make(args, False)
    device, _ = make(args, True)
    rates: dict[str, list[float]] = {}
    for r in range(args.rounds):
        variants = {"pipeline, 1 step/call": lambda: pipeline_rate(piped, images, args.steps)}
        for n in [1, *args.steps_per_call]:
            variants[f"device, {n} steps/call"] = lambda n=n: device_rate(device, images, args.steps, n)
        for name, fn in variants.items():
            rates.setdefault(name, []).append(fn())
            print(f"round {r}: {name}: {rates[name][-1]:.2f} steps/s", flush=True)
    base = rates["pipeline, 1 step/call"]
    print(f"\nmedian of {args.rounds} rounds, {args.steps} steps each, batch {piped.batch_size}, {len(images)} images")
    print("(the ratio: median of each round's ratio, since the machine's speed drifts between rounds)")
    ok = True
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base)]
        ratio = statistics.median(ratios)
        spread = f"rounds {min(ratios):.3f}-{max(ratios):.3f}"
        print(f"{name:24s} {statistics.median(values):7.2f} steps/s   x{ratio:.3f} vs pipeline, 1 step/call ({spread})")
        if name.startswith("device") and not name.startswith("device, 1 ") and ratio < 1.0:
            ok = False
    print("fused calls with the data on the device are " + ("not slower: PASS" if ok else "SLOWER: FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(core.run_script(main))
