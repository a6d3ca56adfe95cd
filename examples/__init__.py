"""Runnable examples: ``python -m examples.sum|gan|reinforce|ppo`` (``--help`` on each).

Importing this package or any of its modules has no effect on the process; each command sets up its own start-up
(examples/command.py) and exit codes (core.run_main).
"""

# Every command's program module: a flag given to one that lacks it names the one that has it (core.run_main).
PROGRAMS = ("examples.sum", "examples.gan_2d", "examples.gan_images", "examples.ppo", "examples.reinforce_mc")

if __name__ == "__main__":  # python -m examples.__init__: a package, not a command
    import sys

    from examples.command import not_a_command

    sys.exit(not_a_command(__spec__.name if __spec__ else "examples"))
