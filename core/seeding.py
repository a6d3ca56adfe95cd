"""One seeding block for a run."""

from __future__ import annotations

import random

import keras
import numpy as np

from core._quiet import silenced_stderr, verbose_requested
from core.backends import get_backend


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and Keras (and so the backend), switch the backend to deterministic kernels (so that a
    seed, and a resumed run, give the same bits); return a NumPy generator for host-side data."""
    random.seed(seed)
    # Keras also seeds TensorFlow when it is installed, importing it even on JAX: keep its notices quiet.
    with silenced_stderr(not verbose_requested()):
        keras.utils.set_random_seed(seed)
    get_backend().enable_determinism()
    return np.random.default_rng(seed)
