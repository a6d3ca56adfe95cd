"""Data-parallel steps: 2 devices equal 1 device on the whole batch; 2 processes equal 1 process.

Each check runs in a child process, because the virtual CPU devices (CUSTOMLOOP_CPU_DEVICES) and a cluster
must exist before the backend starts.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

REPO = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()
TOL = 1e-5


def child_env(**extra: str) -> dict:
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "KERAS_BACKEND": BACKEND, "PYTHONPATH": pythonpath, **extra}


def run(args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=child_env(**env), cwd=REPO, timeout=timeout
    )


@pytest.fixture(scope="module")
def probe() -> dict:
    res = run([str(REPO / "tests" / "parallel_probe.py")], CUSTOMLOOP_CPU_DEVICES="2")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["backend"] == BACKEND and out["devices"] == 2
    return out


def test_sum_model_step_equals_one_device_on_the_whole_batch(probe):
    sum_ = probe["sum"]
    assert sum_["grad_norm"] > 0.1  # the comparison is of a real update, clipped at 1.0 by the transform
    for key in ("log_diff", "fused_diff", "grad_diff", "weight_diff"):
        assert sum_[key] < TOL, (key, sum_)


def test_two_groups_with_batchnorm_equal_one_device(probe):
    # JAX: the default layer normalises by the global batch; TensorFlow: with synchronized=True
    assert probe["bn_sync"]["log_diff"] < 1e-5
    assert probe["bn_sync"]["weight_diff"] < 1e-5


@pytest.mark.skipif(BACKEND != "tensorflow", reason="per-replica batch statistics exist on TensorFlow only")
def test_tensorflow_batchnorm_normalises_per_replica_and_averages_moving_statistics(probe):
    bn = probe["bn_per_replica"]
    assert bn["moved"] > 1e-2  # the step changed the encoder, so agreement below is not trivial
    assert bn["loss_diff"] < TOL and bn["weight_diff"] < TOL


def test_replicas_draw_their_own_noise_and_keep_one_seed_state(probe):
    one, two = probe["noise"]["one"], probe["noise"]["two"]
    half = len(two["noise"]) // 2
    assert two["noise"][:half] != two["noise"][half:]  # not the same noise on every replica
    assert two["state"] == one["state"]  # the seed generator advanced as on one device, not shifted
    if BACKEND == "jax":  # one global draw, split over the devices
        assert two["noise"] == one["noise"]


def test_bad_inputs_are_named(probe):
    assert "3 rows does not divide over 2 devices" in probe["bad"]["rows"]
    assert "only 2 device(s) are visible" in probe["bad"]["devices"]


@pytest.mark.parametrize(
    "flags, message",
    [
        pytest.param(["--devices", "3"], "only 2 device(s) are visible", marks=pytest.mark.slow),  # the probe has it
        (["--devices", "2", "--batch-size", "3"], "--batch-size 3 does not divide over 2 devices"),
        (["--devices", "two"], "--devices must be a positive int or 'all'"),
        pytest.param(["--devices", "0"], "--devices must be a positive int or 'all'", marks=pytest.mark.slow),
    ],
)
def test_bad_device_flags_are_one_line_and_exit_2(tmp_path, flags, message):
    res = run(["-m", "examples.sum", "--out", str(tmp_path / "d"), *flags], CUSTOMLOOP_CPU_DEVICES="2")
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr


def _sum(out: Path, epochs: int, *extra: str, processes: int = 1) -> tuple[dict, str]:
    args = ["-m", "examples.sum", "--out", str(out), "--epochs", str(epochs), "--batch-size", "2"]
    args += ["--mode", "graph", *extra]
    if processes > 1:
        args = ["-m", "core.launch", "--processes", str(processes), "--timeout", "240", "--", sys.executable, *args]
    res = run(args)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "summary.json").read_text()), res.stdout


@pytest.mark.slow  # 45 s: two processes of two launches; test_launch_* keep the launcher in the quick suite
def test_two_processes_train_and_resume_like_one(tmp_path):
    single, _ = _sum(tmp_path / "one", 4)
    _sum(tmp_path / "two", 2, "--devices", "all", processes=2)
    resumed, printed = _sum(tmp_path / "two", 4, "--devices", "all", "--resume", processes=2)
    assert printed.count("resumed from") == 2 and "at step 100" in printed  # both processes read the checkpoint
    assert len(list((tmp_path / "two" / "tb").glob("*tfevents*"))) == 2  # one per launch: process 0 writes
    assert single["devices"] == 1 and resumed["devices"] == 2
    assert resumed["epochs"] == 4
    assert abs(resumed["test_mse"] - single["test_mse"]) <= 1e-4 * single["test_mse"] + 1e-7
    assert resumed["kernel"] == pytest.approx(single["kernel"], rel=1e-4)
    assert single["test_mse"] < 5.0  # four epochs from a random start: it is learning


@pytest.mark.parametrize("dataset", ["ring", pytest.param("mnist", marks=pytest.mark.slow)])
def test_gan_steps_on_two_devices(tmp_path, dataset, mnist_dir):
    args = ["-m", "examples.gan", "--devices", "2", "--out", str(tmp_path / "d"), "--dataset", dataset]
    args += ["--steps", "200", "--log-every", "100"] if dataset == "ring" else ["--steps", "4", "--no-quality"]
    args += ["--data-dir", str(mnist_dir)] if dataset == "mnist" else []
    res = run(args, timeout=600, CUSTOMLOOP_CPU_DEVICES="2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "data parallel over 2 device(s)" in res.stdout
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["devices"] == 2 and summary["steps"] == (200 if dataset == "ring" else 4)


def test_launch_returns_the_failure_of_its_processes(tmp_path):
    args = ["-m", "core.launch", "--processes", "2", "--timeout", "120", "--", sys.executable]
    res = run([*args, "-m", "examples.sum", "--devices", "5", "--out", str(tmp_path / "d")])
    assert res.returncode == 2
    assert "--devices 5: a run of 2 processes steps on all 2 devices" in res.stderr
