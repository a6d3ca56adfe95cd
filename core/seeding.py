"""One seeding block for a run."""

from __future__ import annotations

import os
import random

import keras
import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and Keras (and so the backend); return a NumPy generator for host-side data."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    keras.utils.set_random_seed(seed)
    return np.random.default_rng(seed)
