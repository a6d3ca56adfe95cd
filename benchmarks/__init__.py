"""Benchmarks: ``python3 -m benchmarks.<name>``; each prints ratios against a baseline timed in the same run."""

# Importing core first hides TensorFlow's start-up log before any benchmark imports keras.
import core  # noqa: F401
