"""The sum step and the 2D GAN step, one step per call and fused, on every Keras backend installed.

    python3 -m benchmarks.backends [--repeats 5]

Each backend runs in its own process (KERAS_BACKEND is fixed at import); figures are
per-step medians over repeats, and ratios are against TensorFlow's one-step-per-call
time for the same step, measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import core

STEPS_PER_CALL = 100


def _median_per_step(fn, steps_per_call: int, calls: int, repeats: int) -> float:
    fn()  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t) / (calls * steps_per_call))
    return statistics.median(times)


def worker(repeats: int) -> dict:
    import keras

    import core
    from examples.gan_2d import Config as GanConfig
    from examples.gan_2d import MixtureGAN as GAN
    from examples.sum import sse

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    group = core.UpdateGroup(
        "m", lambda b: sse(b["y"], model(b["x"])), model.trainable_variables, keras.optimizers.Adam(0.01)
    )
    results = {"device": core.describe_device()}
    for mode in ("graph", "xla"):
        step = core.make_step([group], {"x": core.InputSpec((None, 2)), "y": core.InputSpec((None, 1))}, mode=mode)
        one = {"x": keras.ops.ones((1, 2)), "y": keras.ops.ones((1, 1))}
        many = {"x": keras.ops.ones((STEPS_PER_CALL, 1, 2)), "y": keras.ops.ones((STEPS_PER_CALL, 1, 1))}
        results[f"sum, 1 step/call, {mode}"] = _median_per_step(lambda s=step, b=one: s.train_step(b), 1, 300, repeats)
        results[f"sum, {STEPS_PER_CALL} steps/call, {mode}"] = _median_per_step(
            lambda s=step, b=many: s.train_steps(b), STEPS_PER_CALL, 5, repeats
        )
    for mode in ("graph", "xla"):
        gan = GAN(GanConfig(mode=mode, steps=1000))
        results[f"2D GAN, 1 step/call, {mode}"] = _median_per_step(gan.step.train_step, 1, 30, repeats)
        results[f"2D GAN, {STEPS_PER_CALL} steps/call, {mode}"] = _median_per_step(
            lambda g=gan: g.step.train_steps(num_steps=STEPS_PER_CALL), STEPS_PER_CALL, 2, repeats
        )
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = core.OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=core.positive_int, default=5, help="timed passes per variant (median reported)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.repeats)))
        return {}
    backends = [b for b in ("tensorflow", "jax") if importlib.util.find_spec(b) is not None]
    results = {}
    root = Path(__file__).resolve().parents[1]
    for backend in backends:
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(root)}
        res = subprocess.run(
            [sys.executable, "-m", "benchmarks.backends", "--worker", "--repeats", str(args.repeats)],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
        )
        if res.returncode != 0:
            print(f"{backend}: failed\n{res.stderr[-2000:]}", file=sys.stderr)
            continue
        results[backend] = json.loads(res.stdout.strip().splitlines()[-1])
    devices = ", ".join(f"{b} on {r.pop('device').split(' on ', 1)[1]}" for b, r in results.items())
    print(f"per-step medians of {args.repeats} passes; {devices}")
    names = list(next(iter(results.values())))
    header = "| step | " + " | ".join(f"{b} us/step" for b in results) + " |"
    print(header)
    print("|" + "---|" * (len(results) + 1))
    for name in names:
        cells = " | ".join(f"{results[b][name] * 1e6:.1f}" for b in results)
        print(f"| {name} | {cells} |")
    if "tensorflow" in results and "jax" in results:
        for name in names:
            ratio = results["tensorflow"][name] / results["jax"][name]
            print(f"jax speed-up over tensorflow, {name}: {ratio:.1f}x")
    return results


if __name__ == "__main__":
    sys.exit(core.run_script(main))
