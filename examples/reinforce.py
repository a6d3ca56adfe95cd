"""Policy-gradient agents: ``--algo`` picks the program, PPO (default) or REINFORCE; the rest are its flags.

    python -m examples.reinforce --out runs/cartpole                     # PPO (examples.ppo), CartPole-v1 on the device
    python -m examples.reinforce --env Acrobot-v1 --out runs/acrobot
    python -m examples.reinforce --env-backend gymnasium --env LunarLander-v3 --out runs/lander
    python -m examples.reinforce --algo reinforce --out runs/reinforce   # REINFORCE (examples.reinforce_mc)

``python -m examples.reinforce --help`` names the programs; ``--algo A --help`` lists that program's flags. A flag
the chosen program lacks is its one-line error naming the program that has it (exit code 2). ``python -m
examples.ppo`` and ``python -m examples.reinforce_mc`` run the same programs directly.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below, which take seconds (examples/command.py)
    from examples.command import guard_start_up

    guard_start_up()

import sys

from examples.command import dispatch

ALGORITHMS = {"ppo": "examples.ppo", "reinforce": "examples.reinforce_mc"}


def main(argv: list[str] | None = None) -> int:
    """Run the program of ``--algo`` (default ppo) with the other arguments; returns its exit code."""
    return dispatch("--algo", "ppo", ALGORITHMS, argv, keep_flag=False)


if __name__ == "__main__":
    sys.exit(main())
