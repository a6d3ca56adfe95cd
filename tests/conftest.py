import contextlib
import os
import subprocess
import sys
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


def start_example(name: str, *args: str, cwd=None) -> subprocess.Popen:
    """``python -m examples.<name> ARGS`` in a child process, output captured as text."""
    # Prepend, not replace: the caller's PYTHONPATH may be what makes its packages importable.
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.Popen(
        [sys.executable, "-m", f"examples.{name}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd or REPO,
    )


def run_example(name: str, *args: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m examples.<name> ARGS`` to the end; returns code, stdout and stderr."""
    proc = start_example(name, *args, cwd=cwd)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


class StopAfter:
    """Stands in for core.GracefulInterrupt: 'Ctrl-C' arrives after ``n`` checks of the flag."""

    signal = None  # no real signal: the run stops as if the flag were set

    def __init__(self, n):
        self.n = n

    def deferred(self):
        return contextlib.nullcontext()

    @property
    def requested(self):
        self.n -= 1
        return self.n < 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def checkpoint_weights(out: Path) -> dict:
    """Every array of ``out/checkpoint.npz`` but the metadata, by name."""
    import numpy as np

    with np.load(out / "checkpoint.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k != "__meta__"}


def gan_resume_pair(tmp_path: Path, monkeypatch, common: dict, stop_after: int) -> tuple[dict, dict, int]:
    """The image GAN trained uninterrupted, and interrupted after ``stop_after`` flag checks then resumed:
    (weights of the first, weights of the second, the steps the uninterrupted run took)."""
    from examples import gan_images

    full = gan_images.train(gan_images.Config(out=str(tmp_path / "full"), **common))
    with monkeypatch.context() as m:
        m.setattr(core.lifecycle, "GracefulInterrupt", lambda: StopAfter(stop_after))
        part = gan_images.train(gan_images.Config(out=str(tmp_path / "part"), **common))
    assert part["interrupted"] and 0 < part["steps"] < full["steps"]
    config = gan_images.Config(out=str(tmp_path / "part"), resume=True, **common)
    assert gan_images.train(config)["steps"] == full["steps"]
    return checkpoint_weights(tmp_path / "full"), checkpoint_weights(tmp_path / "part"), full["steps"]


def one_line_exit_2(main, argv, capsys, needle: str) -> str:
    """``main(argv)`` refuses with exit code 2 and one line on stderr holding ``needle``, never a traceback."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and needle in err, err
    return err
