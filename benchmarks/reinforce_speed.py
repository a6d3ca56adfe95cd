"""Speed of examples.reinforce: env steps and wall seconds to solve CartPole-v1 over several seeds, per backend.

python -m benchmarks.reinforce_speed                          # 5 seeds, TensorFlow and JAX, default agent settings
python -m benchmarks.reinforce_speed --backends jax           # one backend
python -m benchmarks.reinforce_speed --seeds 3 -- --num-envs 64   # agent flags after --

Each (backend, seed) run is a fresh ``python -m examples.reinforce`` process (KERAS_BACKEND set), so
every run pays its own tracing and compiling, as a user's run does; the backends alternate seed by
seed, so a shared machine's load falls on both alike. Wall time counts from the start of training
(first environment reset; tracing and compiling included) to the update after which the
100-episode mean return reaches the threshold.
Goal (issue 4): median below 4 s on the 2-core CPU machine, every seed within 200k env steps; issue 5:
JAX's median no worse than TensorFlow's in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_one(backend: str, seed: int, budget: int, agent_args: list[str], out: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "examples.reinforce", *agent_args]
    cmd += ["--seed", str(seed), "--max-env-steps", str(budget), "--eval-episodes", "0", "--no-gif", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{backend} seed {seed} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    summary["process_seconds"] = time.perf_counter() - t0
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    agent_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, agent_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds first..first+N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--max-env-steps", type=int, default=200_000, help="budget per seed")
    parser.add_argument("--goal-seconds", type=float, default=4.0)
    parser.add_argument(
        "--backends",
        default="tensorflow,jax",
        help="comma-separated Keras backends, each run with KERAS_BACKEND set (default: tensorflow,jax)",
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if any(b not in ("tensorflow", "jax") for b in backends) or not backends:
        parser.error(f"--backends: tensorflow and/or jax, got {args.backends!r}")

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; backends {', '.join(backends)}")
    rows: dict[str, list[dict]] = {b: [] for b in backends}
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for backend in backends:
                s = run_one(backend, seed, args.max_env_steps, agent_args, Path(tmp) / f"{backend}-{seed}")
                rows[backend].append(s)
                loads.append(os.getloadavg()[0])
                print(
                    f"{backend:>10} seed {seed}: solved={s['solved']} env_steps_to_solve={s['env_steps_to_solve']} "
                    f"wall_seconds_to_solve={_f(s['wall_seconds_to_solve'])} "
                    f"env_steps/s={s['env_steps_per_second']:.0f} traces={s['tracing_counts']['train_step']} "
                    f"(process {s['process_seconds']:.1f} s, load {loads[-1]:.2f})",
                    flush=True,
                )

    env_id = rows[backends[0]][0]["env_id"]
    print(
        f"\n{env_id}, {args.seeds} seeds, budget {args.max_env_steps} env steps, "
        f"agent flags: {agent_args or 'defaults'}; load average during the runs "
        f"{min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} cores"
    )
    ok = True
    medians = {}
    for backend in backends:
        runs = rows[backend]
        solved = [s for s in runs if s["solved"]]
        print(f"{backend}: solved {len(solved)}/{len(runs)}")
        if solved:
            for key, label in (
                ("env_steps_to_solve", "env steps to solve"),
                ("wall_seconds_to_solve", "wall s to solve"),
            ):
                v = [s[key] for s in solved]
                print(f"{label:>20}: median {_f(statistics.median(v))}  min {_f(min(v))}  max {_f(max(v))}")
        sps = [s["env_steps_per_second"] for s in runs]
        print(f"{'env steps / s':>20}: median {statistics.median(sps):.0f}  min {min(sps):.0f}  max {max(sps):.0f}")
        met = (
            len(solved) == len(runs)
            and statistics.median(s["wall_seconds_to_solve"] for s in solved) < args.goal_seconds
            and max(s["env_steps_to_solve"] for s in solved) <= args.max_env_steps
        )
        if len(solved) == len(runs):
            medians[backend] = statistics.median(s["wall_seconds_to_solve"] for s in solved)
        print(
            f"{'goal':>20}: all solve within {args.max_env_steps} steps, median < {args.goal_seconds} s: "
            f"{'met' if met else 'NOT met'}"
        )
        ok &= met
    if len(medians) == 2:
        tf, jx = medians["tensorflow"], medians["jax"]
        print(f"JAX median / TensorFlow median: {jx / tf:.2f} ({'JAX no slower' if jx <= tf else 'JAX slower'})")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


def _f(x) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if isinstance(x, float) else str(x)


if __name__ == "__main__":
    sys.exit(main())
