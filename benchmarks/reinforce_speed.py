"""Speed of examples.reinforce: env steps and wall seconds to solve CartPole-v1 over several seeds.

python -m benchmarks.reinforce_speed                 # 5 seeds, default agent settings
python -m benchmarks.reinforce_speed --seeds 3 -- --num-envs 64   # agent flags after --

Wall time counts from the start of training (first environment reset; tracing and compiling
included) to the update after which the 100-episode mean return reaches the threshold.
Goal (issue 4): median below 4 s on the 2-core CPU machine, every seed within 200k env steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import core
from examples import reinforce


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    agent_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, agent_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--max-env-steps", type=int, default=200_000, help="budget per seed")
    parser.add_argument("--goal-seconds", type=float, default=4.0)
    args = parser.parse_args(argv)

    base = core.parse_config(reinforce.Config, agent_args)
    print(f"stepping on {core.describe_device()}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        config = reinforce.Config(
            **{**vars(base), "seed": seed, "max_env_steps": args.max_env_steps, "eval_episodes": 0, "gif": False}
        )
        t0 = time.perf_counter()
        s = reinforce.train(config)
        rows.append(s)
        print(
            f"seed {seed}: solved={s['solved']} env_steps_to_solve={s['env_steps_to_solve']} "
            f"wall_seconds_to_solve={_f(s['wall_seconds_to_solve'])} env_steps/s={s['env_steps_per_second']:.0f} "
            f"(run incl. setup {time.perf_counter() - t0:.1f} s, load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    solved = [s for s in rows if s["solved"]]
    print(
        f"\n{config.env}, {len(rows)} seeds, budget {args.max_env_steps} env steps, "
        f"agent flags: {agent_args or 'defaults'}"
    )
    print(f"solved {len(solved)}/{len(rows)}")
    if solved:
        for key, label in (("env_steps_to_solve", "env steps to solve"), ("wall_seconds_to_solve", "wall s to solve")):
            v = [s[key] for s in solved]
            print(f"{label:>20}: median {_f(statistics.median(v))}  min {_f(min(v))}  max {_f(max(v))}")
    sps = [s["env_steps_per_second"] for s in rows]
    print(f"{'env steps / s':>20}: median {statistics.median(sps):.0f}  min {min(sps):.0f}  max {max(sps):.0f}")
    ok = (
        len(solved) == len(rows)
        and statistics.median(s["wall_seconds_to_solve"] for s in solved) < args.goal_seconds
        and max(s["env_steps_to_solve"] for s in solved) <= args.max_env_steps
    )
    print(
        f"goal (all solve within {args.max_env_steps} steps, median < {args.goal_seconds} s): "
        f"{'met' if ok else 'NOT met'}"
    )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


def _f(x) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if isinstance(x, float) else str(x)


if __name__ == "__main__":
    sys.exit(main())
