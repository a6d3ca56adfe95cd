"""The GAN examples' command: ``--dataset`` picks the program, which takes every other flag.

    python -m examples.gan --out runs/ring                 # 8 Gaussians on a circle (default): examples.gan_2d
    python -m examples.gan --dataset grid --out runs/grid  # 25 Gaussians on a 5x5 grid: examples.gan_2d
    python -m examples.gan --dataset mnist --data-dir ../shared/data/mnist --out runs/mnist  # examples.gan_images
    python -m examples.gan --dataset folder --data-dir pics/ --image-size 32 --out runs/pics  # examples.gan_images

``python -m examples.gan --help`` names the programs; ``--dataset D --help`` lists that program's flags. A flag
the chosen program lacks is its one-line error naming the program that has it (exit code 2).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the program's imports, which take seconds (examples/command.py)
    from examples.command import guard_start_up

    guard_start_up()

import sys

from examples.command import dispatch

DATASETS = {
    "ring": "examples.gan_2d",
    "grid": "examples.gan_2d",
    "mnist": "examples.gan_images",
    "folder": "examples.gan_images",
}


def main(argv: list[str] | None = None) -> int:
    """Run the program of ``--dataset`` (default ring) with ``argv``; returns its exit code."""
    return dispatch("--dataset", "ring", DATASETS, argv, keep_flag=True)


if __name__ == "__main__":
    sys.exit(main())
