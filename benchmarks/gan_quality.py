"""The 2D GAN quality table: `python -m examples.gan_2d` on ring and grid over several seeds, next to published rows.

    python -m benchmarks.gan_quality                     # 5 seeds each, default settings
    python -m benchmarks.gan_quality --seeds 3 -- --steps 10000   # extra flags go to examples.gan_2d

Each run is a separate process (its wall time includes TensorFlow's start-up); the table reports the
example's own train_seconds and the process wall time, and checks the issue's quality bars.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import core

REPO = Path(__file__).resolve().parents[1]

# Published results on the same setups (PacGAN paper, Table 3; VEEGAN and WGAN-GP rows as reported there).
PUBLISHED = {
    "ring": [("PacGAN4", 7.8, 95.9), ("VEEGAN", 8.0, 52.9), ("WGAN-GP", 6.8, 59.6)],
    "grid": [("PacGAN4", 24.8, 93.6), ("VEEGAN", 24.6, 40.0), ("WGAN-GP", 24.2, 28.7)],
}


def kl(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def run_one(dataset: str, seed: int, extra: list[str], out_root: Path) -> dict:
    out = out_root / f"{dataset}_{seed}"
    cmd = [sys.executable, "-m", "examples.gan_2d", "--dataset", dataset, "--seed", str(seed), "--out", str(out)]
    cmd += extra
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    proc.check_returncode()  # core.run_script reports the example's own last line
    summary = json.loads((out / "summary.json").read_text())
    summary["wall_seconds"] = wall
    return summary


def passes(dataset: str, rows: list[dict]) -> tuple[bool, str]:
    kl_ok = all(r["reverse_kl"] is not None and r["reverse_kl"] <= 0.05 for r in rows)
    time_ok = all(r["wall_seconds"] < 180 for r in rows)
    hq = [r["high_quality_fraction"] for r in rows]
    if dataset == "ring":
        ok = all(r["modes_captured"] == 8 for r in rows) and min(hq) >= 0.9 and kl_ok and time_ok
        return ok, "every seed: 8/8 modes, >= 90 % high quality, reverse KL <= 0.05, < 3 min"
    ok = all(r["modes_captured"] == 25 for r in rows) and statistics.median(hq) >= 0.8 and kl_ok and time_ok
    stretch = " (stretch, 90 % on every seed: " + ("met" if min(hq) >= 0.9 else "not met") + ")"
    return ok, "every seed: 25/25 modes, reverse KL <= 0.05, < 3 min; median high quality >= 80 %" + stretch


def table(dataset: str, rows: list[dict]) -> str:
    lines = [
        f"**{dataset}** ({rows[0]['num_modes']} modes)",
        "",
        "| run | modes | high quality | reverse KL | train s | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| seed {r['config']['seed']} | {r['modes_captured']}/{r['num_modes']} | "
            f"{100 * r['high_quality_fraction']:.1f} % | {kl(r['reverse_kl'])} | "
            f"{r['train_seconds']:.0f} | {r['wall_seconds']:.0f} |"
        )
    hq = [100 * r["high_quality_fraction"] for r in rows]
    kls = [r["reverse_kl"] for r in rows]
    worst_kl = None if None in kls else max(kls)
    lines.append(
        f"| **this repo, {len(rows)} seeds** | mean {statistics.mean(r['modes_captured'] for r in rows):.1f} | "
        f"median {statistics.median(hq):.1f} % (min {min(hq):.1f}) | "
        f"max {kl(worst_kl)} | median {statistics.median(r['train_seconds'] for r in rows):.0f}"
        f" | median {statistics.median(r['wall_seconds'] for r in rows):.0f} |"
    )
    for name, modes, hq_pub in PUBLISHED[dataset]:
        lines.append(f"| {name} (published) | {modes} | {hq_pub} % | | | |")
    ok, rule = passes(dataset, rows)
    lines += ["", f"bar ({rule}): {'PASS' if ok else 'FAIL'}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = core.OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=core.positive_int, default=5)
    parser.add_argument("--datasets", nargs="+", default=["ring", "grid"], choices=["ring", "grid"])
    parser.add_argument("--json", help="also write all summaries to this file")
    parser.add_argument("extra", nargs="*", help="flags passed to examples.gan_2d (after --)")
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            results[dataset] = []
            for seed in range(args.seeds):
                r = run_one(dataset, seed, args.extra, Path(tmp))
                print(
                    f"{dataset} seed {seed}: {r['modes_captured']}/{r['num_modes']} modes, "
                    f"{100 * r['high_quality_fraction']:.1f} % high quality, reverse KL {kl(r['reverse_kl'])}, "
                    f"{r['train_seconds']:.0f} s train, {r['wall_seconds']:.0f} s wall",
                    flush=True,
                )
                results[dataset].append(r)
    print()
    all_ok = True
    for dataset, rows in results.items():
        print(table(dataset, rows))
        print()
        all_ok &= passes(dataset, rows)[0]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(core.run_script(main))
