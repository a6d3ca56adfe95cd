"""Runnable examples: ``python -m examples.sum|gan|reinforce``."""

# Importing core first hides TensorFlow's start-up log (unless --verbose) before any
# example module imports keras.
import core  # noqa: F401
