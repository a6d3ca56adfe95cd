"""``python -m benchmarks.policy_gradient seeds --population``: N unseen seeds as one PPO population (one process,
one compiled call per iteration) against one member's run alone and, with ``--separate``, the N runs one after
another, per backend; wall seconds of the whole process (start-up, tracing and compiling included) and its peak
memory. Agent flags after ``--`` go to every run (``-- --env Acrobot-v1 --lr 1e-3,3e-3``: a sweep; the separate
runs are then skipped).
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


def timed_run(backend: str, args: list[str], out: Path) -> tuple[dict, float, float]:
    """One ``python -m examples.ppo`` process: its summary, wall seconds and peak resident memory in MiB."""
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "examples.ppo", *args, "--no-gif", "--eval-episodes", "0", "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory (ru_maxrss: KiB on Linux)
    wall = time.perf_counter() - start
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {stderr.strip().splitlines()[-1:]}")
    lines = [line for line in stdout.splitlines() if "members solved" not in line]
    table = [line for line in lines if line.strip().startswith(("member", *"0123456789"))]
    summary = json.loads((out / "summary.json").read_text())
    summary["table"] = table
    return summary, wall, usage.ru_maxrss / 1024


def population_seeds(args: argparse.Namespace, agent_args: list[str]) -> None:
    n, first = args.seeds, args.first_seed
    base = ["--max-env-steps", str(args.budget), *agent_args]
    sweep = any(flag in agent_args for flag in ("--lr", "--entropy-coef", "--clip-coef"))
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            pop, pop_wall, pop_mib = timed_run(backend, [*base, "--seed", str(first), "--population", str(n)],
                                               Path(tmp) / f"{backend}-pop")  # fmt: skip
            print(f"{backend}: population of {n} ({pop['env_id']}, seeds from {first}), one process:", flush=True)
            print("\n".join(pop["table"]))
            print(
                f"  {pop['members_solved']}/{n} solved; env steps to solve median {pop['median_env_steps_to_solve']} "
                f"worst {pop['worst_env_steps_to_solve']}; all solved after {pop['wall_seconds_to_all_solved']} s of "
                f"training; process wall {pop_wall:.1f} s, peak memory {pop_mib:.0f} MiB; "
                f"{pop['env_steps_per_second']:,.0f} env steps/s over all members",
                flush=True,
            )
            if sweep:
                continue
            one, one_wall, one_mib = timed_run(backend, [*base, "--seed", str(first)], Path(tmp) / f"{backend}-one")
            print(f"  one member alone (seed {first}): process wall {one_wall:.1f} s, peak {one_mib:.0f} MiB, solved "
                  f"after {one['env_steps_to_solve']} env steps; population / one: {pop_wall / one_wall:.2f}x "
                  f"(goal <= 3x: {'met' if pop_wall <= 3 * one_wall else 'NOT met'})", flush=True)  # fmt: skip
            if args.separate:
                walls = [timed_run(backend, [*base, "--seed", str(s)], Path(tmp) / f"{backend}-{s}")[1]
                         for s in range(first, first + n)]  # fmt: skip
                median = statistics.median(walls)
                print(f"  {n} separate runs one after another: {sum(walls):.1f} s (median {median:.1f} s each); "
                      f"population's throughput {sum(walls) / pop_wall:.2f}x theirs", flush=True)  # fmt: skip


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("benchmarks.populations"))
