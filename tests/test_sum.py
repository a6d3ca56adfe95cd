"""The sum example: in-process with a tiny config, and once as `python -m examples.sum`."""

import json

import keras
import numpy as np
import pytest
from conftest import one_line_exit_2, run_example

from examples import sum as sum_example


def test_dataset_is_the_articles():
    x, y = sum_example.make_dataset(100, np.random.default_rng(0))
    assert x.shape == (100, 2) and y.shape == (100, 1) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 8 and np.all(x == np.round(x))
    np.testing.assert_array_equal(y[:, 0], x.sum(1))


@pytest.mark.parametrize("steps_per_call, mode", [(1, "xla"), (100, "xla"), (7, "graph"), (3, "eager")])
def test_train_tiny_config(tmp_path, steps_per_call, mode):
    cfg = sum_example.Config(epochs=3, lr=0.05, steps_per_call=steps_per_call, mode=mode, out=str(tmp_path))
    summary = sum_example.train(cfg)
    saved = json.loads((tmp_path / "summary.json").read_text())
    for key in ("test_mse", "kernel", "bias", "epochs", "train_seconds"):
        assert key in saved
    assert len(saved["kernel"]) == 2 and len(saved["bias"]) == 1 and saved["epochs"] == 3
    assert summary["test_mse"] == pytest.approx(saved["test_mse"])


def test_fused_and_single_calls_train_the_same():
    a = sum_example.train(sum_example.Config(epochs=2, steps_per_call=1))
    b = sum_example.train(sum_example.Config(epochs=2, steps_per_call=100))
    np.testing.assert_allclose(a["kernel"], b["kernel"], rtol=1e-4)
    np.testing.assert_allclose(a["bias"], b["bias"], rtol=1e-4, atol=1e-6)


def test_batch_size_with_remainder_converges_somewhat():
    s = sum_example.train(sum_example.Config(epochs=20, lr=0.05, batch_size=8, steps_per_call=4))
    assert s["test_mse"] < 1.0


def _run(args, tmp_path):
    return run_example("sum", *args, cwd=tmp_path)


def test_subprocess_smoke(tmp_path):
    res = _run(["--epochs", "2", "--out", str(tmp_path / "d")], tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"stepping on {keras.backend.backend()} on" in res.stdout
    assert "learned kernel" in res.stdout
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["epochs"] == 2
    # TensorFlow's start-up notices stay off the terminal
    assert "oneDNN" not in res.stderr and "cuda" not in res.stderr.lower()


@pytest.mark.parametrize(
    "args",
    [
        ["--epochs", "0"],
        ["--lr", "-1"],
        ["--lr", "nan"],
        ["--batch-size", "1000"],
        ["--epochs", "x"],
        ["--seed", "-1"],
        ["--mode", "fast"],
        ["--resume"],
        ["--out", "/dev/null"],
    ],
)
def test_bad_input(tmp_path, args, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_exit_2(sum_example.main, args, capsys, "error: ")


def test_subprocess_bad_input(tmp_path):
    """The same refusal from a real process: its one line names the program."""
    res = _run(["--epochs", "x"], tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sum.py: error: "), res.stderr


@pytest.mark.slow
def test_default_run_converges(tmp_path):
    s = sum_example.train(sum_example.Config(out=str(tmp_path)))
    assert s["test_mse"] < 1e-3
    np.testing.assert_allclose(s["kernel"], [1, 1], atol=0.02)
    assert s["train_seconds"] < 30


def test_accumulating_two_batches_of_one_trains_as_one_batch_of_two(tmp_path):
    """The SSE of two rows is the sum of theirs, and Adam ignores the gradients' scale but for its epsilon: the
    mean of two accumulated micro-batches updates like the batch of both (the same rows: one order per epoch)."""
    accumulated = sum_example.train(sum_example.Config(epochs=3, batch_size=1, accumulate=2, mode="graph"))
    whole = sum_example.train(sum_example.Config(epochs=3, batch_size=2, mode="graph"))
    separate = sum_example.train(sum_example.Config(epochs=3, batch_size=1, mode="graph"))
    np.testing.assert_allclose(accumulated["kernel"], whole["kernel"], rtol=1e-4)
    assert np.max(np.abs(np.subtract(accumulated["kernel"], separate["kernel"]))) > 1e-3  # and unlike no accumulation


def test_a_population_of_four_seeds_equals_four_runs(tmp_path):
    together = sum_example.train(sum_example.Config(epochs=2, seed=5, population=4, out=str(tmp_path)))
    assert together["members"] == 4 and sorted(p.name for p in tmp_path.glob("*.keras")) == [
        f"model_seed{s}.keras" for s in range(5, 9)]  # fmt: skip
    for row in together["population"]:
        alone = sum_example.train(sum_example.Config(epochs=2, seed=row["seed"]))
        assert row["test_mse"] == pytest.approx(alone["test_mse"], rel=1e-6)
        np.testing.assert_allclose(row["kernel"], alone["kernel"], rtol=1e-6)
    assert len({row["test_mse"] for row in together["population"]}) == 4
