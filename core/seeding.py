"""A run's seeds: one ``--seed``, and one way to derive a seed for each other purpose.

The run's own randomness (initial weights, the noise and data drawn inside compiled steps, device environments)
comes from ``--seed`` itself: :func:`seed_everything` seeds Python, NumPy and Keras with it, and an example's
``keras.random.SeedGenerator(seed)`` continues from there. Everything drawn for another purpose (the order of an
epoch's batches, the noise of a fixed sample grid, evaluation episodes, a GIF's episode, gymnasium resets after a
resume) takes :func:`derive_seed` ``(seed, purpose, *index)``: independent of the run's stream and of every other
purpose, so adding a purpose never shifts the numbers of another, and the same (seed, purpose, index) gives the
same seed in every process (a resumed run redraws epoch 7's order exactly).
"""

from __future__ import annotations

import random
import zlib

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


def derive_seed(seed: int, purpose: str, *index: int) -> int:
    """A seed in ``[0, 2**31)`` for one ``purpose`` of the run seeded ``seed`` (and, optionally, one ``index`` of
    it, such as the epoch): NumPy's ``SeedSequence([seed, crc32(purpose), *index])``, a hash that spreads nearby
    inputs (seeds 1 and 2, epochs 3 and 4) over unrelated streams. Fits every seed argument: NumPy, Keras,
    gymnasium's ``reset(seed=...)``."""
    if not purpose:
        raise ValueError("derive_seed needs a purpose, e.g. 'eval-episodes'")
    entropy = [int(seed), zlib.crc32(purpose.encode()), *(int(i) for i in index)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint32)[0] >> 1)


def derived_rng(seed: int, purpose: str, *index: int) -> np.random.Generator:
    """A NumPy generator seeded with :func:`derive_seed` ``(seed, purpose, *index)``."""
    return np.random.default_rng(derive_seed(seed, purpose, *index))
