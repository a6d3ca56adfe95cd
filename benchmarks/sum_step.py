"""Time one sum-model train step: model.fit(batch_size=1) vs the core, one step per call and fused.

    python -m benchmarks.sum_step [--repeats 5]

Every figure is a median over repeats measured in this run; ratios are against fit's
per-step time from the same run, so a busy machine moves them less than raw times.
"""

from __future__ import annotations

import statistics
import sys
import time

import keras
import numpy as np

import core
from examples.sum import make_dataset, sse


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])


def time_fit(x, y, repeats: int) -> float:
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=sse)
    model.fit(x, y, batch_size=1, epochs=1, verbose=0, shuffle=False)  # trace + warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.fit(x, y, batch_size=1, epochs=1, verbose=0, shuffle=False)
        times.append((time.perf_counter() - t) / len(x))
    return statistics.median(times)


def _step(mode: str):
    model = _model()
    group = core.UpdateGroup(
        "m", lambda b: sse(b["y"], model(b["x"])), model.trainable_variables, keras.optimizers.Adam(0.01)
    )
    return core.make_step([group], {"x": core.InputSpec((None, 2)), "y": core.InputSpec((None, 1))}, mode=mode)


def time_single(x, y, mode: str, repeats: int) -> float:
    step = _step(mode)
    xs, ys = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    batches = [{"x": xs[i : i + 1], "y": ys[i : i + 1]} for i in range(len(x))]
    step.train_step(batches[0])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for b in batches:
            step.train_step(b)
        times.append((time.perf_counter() - t) / len(batches))
    return statistics.median(times)


def time_fused(x, y, mode: str, repeats: int, steps_per_call: int = 100) -> float:
    step = _step(mode)
    n = len(x) // steps_per_call * steps_per_call
    xs = keras.ops.convert_to_tensor(x[:n].reshape(-1, steps_per_call, 1, 2))
    ys = keras.ops.convert_to_tensor(y[:n].reshape(-1, steps_per_call, 1, 1))
    chunks = [{"x": xs[i], "y": ys[i]} for i in range(xs.shape[0])]
    step.train_steps(chunks[0])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for c in chunks:
            step.train_steps(c)
        times.append((time.perf_counter() - t) / n)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = core.OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=core.positive_int, default=5, help="timed passes per variant (median reported)"
    )
    parser.add_argument("--samples", type=core.positive_int, default=1000, help="steps per timed pass")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.samples < 100:
        parser.error("--repeats must be >= 1 and --samples >= 100")
    x, y = make_dataset(args.samples, np.random.default_rng(0))
    print(f"sum train step on {core.describe_device()}, batch size 1, median of {args.repeats} passes")
    fit = time_fit(x, y, args.repeats)
    rows = {
        "model.fit(batch_size=1)": fit,
        "core, 1 step/call, graph": time_single(x, y, "graph", args.repeats),
        "core, 1 step/call, XLA": time_single(x, y, "xla", args.repeats),
        "core, 100 steps/call, graph": time_fused(x, y, "graph", args.repeats),
        "core, 100 steps/call, XLA": time_fused(x, y, "xla", args.repeats),
    }
    print(f"| {'variant':<28} | {'us/step':>9} | {'x fit time':>10} | {'speed-up':>8} |")
    print(f"|{'-' * 30}|{'-' * 11}|{'-' * 12}|{'-' * 10}|")
    for name, t in rows.items():
        print(f"| {name:<28} | {t * 1e6:9.1f} | {t / fit:10.3f} | {fit / t:7.1f}x |")
    single = min(rows["core, 1 step/call, graph"], rows["core, 1 step/call, XLA"])
    fused = min(rows["core, 100 steps/call, graph"], rows["core, 100 steps/call, XLA"])
    ok_single, ok_fused = single <= 0.3 * fit, fit / fused >= 100
    print(f"goal: one step per call <= 0.3x fit: {single / fit:.3f}x -> {'met' if ok_single else 'NOT met'}")
    print(f"goal: fused >= 100x faster than fit: {fit / fused:.0f}x -> {'met' if ok_fused else 'NOT met'}")
    return {"rows": rows, "goals_met": ok_single and ok_fused}


if __name__ == "__main__":
    sys.exit(core.run_script(main))
