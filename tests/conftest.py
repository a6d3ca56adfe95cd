import os
from pathlib import Path

import pytest

# Before keras is imported anywhere: core hides TensorFlow's start-up log.
import core  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST test split shipped beside the checkout (../shared/data/mnist)."""
    path = Path(os.environ.get("CUSTOMLOOP_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
    if not (path / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST test split not found in {path}")
    return path
