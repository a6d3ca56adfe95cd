"""core.Run: output folder, resume, checkpoint cadence, elapsed time, summary.json; Ctrl-C at any moment."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import start_example

import core


@dataclass
class Cfg(core.RunConfig):
    """A config with the run flags only."""


def objects():
    return {"v": keras.Variable(np.zeros(3, "float32"), name="v")}


def test_a_fresh_run_refuses_a_folder_holding_an_earlier_run(tmp_path):
    with core.Run(Cfg(out=str(tmp_path)), objects(), total=3) as run:
        run.advance(3)
    run.write_summary({"x": 1})
    with pytest.raises(core.UsageError, match="holds an earlier run .*--resume"):
        core.Run(Cfg(out=str(tmp_path)), objects(), total=3).__enter__()


@pytest.mark.parametrize("kind", ["a file", "not creatable"])
def test_out_must_be_a_writable_folder(tmp_path, kind):
    out = tmp_path / "file"
    out.write_text("not a folder")
    target = out if kind == "a file" else out / "sub"  # a folder inside a file cannot be made
    with pytest.raises(core.UsageError, match="--out"):
        core.Run(Cfg(out=str(target)), objects(), total=1).__enter__()


def test_resume_restores_state_rng_and_elapsed_time(tmp_path):
    rng = np.random.default_rng(0)
    with core.Run(Cfg(out=str(tmp_path)), objects(), total=10, state={"episodes": 0}, rng=rng) as run:
        run.advance(4)
        run.state["episodes"] = 7
        rng.random(5)
        time.sleep(0.05)
    expected_next = rng.random()
    seconds = run.elapsed()
    rng2 = np.random.default_rng(123)
    with core.Run(Cfg(out=str(tmp_path), resume=True), objects(), total=10, rng=rng2) as again:
        assert again.step == 4 and again.state["episodes"] == 7
        assert rng2.random() == expected_next
        assert again.elapsed() >= seconds


def test_checkpoint_cadence_cannot_be_stepped_over(tmp_path, monkeypatch):
    saved = []
    with core.Run(Cfg(out=str(tmp_path)), objects(), total=100, checkpoint_every=10) as run:
        monkeypatch.setattr(run, "save", lambda: saved.append(run.step) or setattr(run, "_saved_at", run.step))
        for n in (7, 7, 7, 3, 25, 1):  # uneven advances: every 10 units passed gives one save
            run.advance(n)
    assert saved == [14, 24, 49, 50], saved  # the last one: the end of the run


def test_summary_is_strict_json_even_with_non_finite_figures(tmp_path):
    with core.Run(Cfg(out=str(tmp_path)), objects(), total=1) as run:
        run.advance(1)
    run.write_summary({"loss": float("nan"), "arr": np.array([1.0, np.inf]), "n": np.int64(3)})
    text = (tmp_path / "summary.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["loss"] is None and data["arr"] == [1.0, None] and data["n"] == 3
    assert {"train_seconds", "interrupted", "config"} <= set(data)


def test_non_finite_logs_stop_the_run_and_keep_the_last_checkpoint(tmp_path):
    with core.Run(Cfg(out=str(tmp_path)), objects(), total=10, checkpoint_every=2) as run:
        run.advance(2, {"loss": 1.0})
    good = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(core.NonFiniteLossError, match="loss became nan"):
        with core.Run(Cfg(out=str(tmp_path), resume=True), objects(), total=10) as run:
            run.advance(1, {"loss": np.array([1.0, np.nan])})
    assert (tmp_path / "checkpoint.npz").read_bytes() == good
    assert "non-finite" in json.loads((tmp_path / "summary.json").read_text())["stopped"]


def test_a_fault_mid_run_leaves_the_last_checkpoint_and_a_summary_saying_why(tmp_path):
    with core.Run(Cfg(out=str(tmp_path)), objects(), total=10, checkpoint_every=2) as run:
        run.advance(2, {"loss": 1.0})
    good = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        with core.Run(Cfg(out=str(tmp_path), resume=True), objects(), total=10) as run:
            run.advance(3, {"loss": 1.0})
            raise RuntimeError("disk full\nwhile writing a picture")
    assert (tmp_path / "checkpoint.npz").read_bytes() == good
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped"] == "error: RuntimeError: disk full while writing a picture"
    assert summary["steps_done"] == 5 and not summary["interrupted"]


def test_a_run_that_failed_before_its_first_checkpoint_leaves_the_folder_usable(tmp_path):
    with pytest.raises(MemoryError):
        with core.Run(Cfg(out=str(tmp_path)), objects(), total=10, checkpoint_every=5):
            raise MemoryError("at the first compile")
    assert "MemoryError" in json.loads((tmp_path / "summary.json").read_text())["stopped"]
    with pytest.raises(core.UsageError, match="no checkpoint.npz"):  # nothing to resume ...
        with core.Run(Cfg(out=str(tmp_path), resume=True), objects(), total=10):
            pass
    with core.Run(Cfg(out=str(tmp_path)), objects(), total=10) as run:  # ... so a fresh run may take the folder
        assert not (tmp_path / "summary.json").exists()  # the stopped run's summary would describe another run
        run.advance(10, {"loss": 1.0})
    assert (tmp_path / "checkpoint.npz").exists()


def _sum_run(tmp_path, *extra):
    return start_example("sum", "--epochs", "400", "--out", str(tmp_path / "run"), *extra)


def _wait_for_numpy_import(pid: int, timeout: float = 30.0) -> None:
    """Until NumPy's extension is mapped into the child: examples/__init__ has installed its Ctrl-C hook by then
    (it imports nothing before that) and Keras' seconds-long import is under way. A fixed delay made the moment
    depend on the machine's load; this one is the point where interrupts used to go astray (inside NumPy's C
    extension a KeyboardInterrupt became an ImportError)."""
    maps = Path(f"/proc/{pid}/maps")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "_multiarray_umath" in maps.read_text():
            return
        time.sleep(0.01)
    raise AssertionError("the example never imported NumPy")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the child's memory map (Linux)")
def test_ctrl_c_during_start_up_is_one_clean_line(tmp_path):
    proc = _sum_run(tmp_path)
    _wait_for_numpy_import(proc.pid)  # Python is now importing Keras / TensorFlow / JAX
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (130, 0), stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


@pytest.mark.parametrize(
    "presses, sig",
    [
        (1, signal.SIGINT), (2, signal.SIGTERM), (1, signal.SIGHUP),
        # the other three combinations: the same code path with another signal number
        *(pytest.param(n, s, marks=pytest.mark.slow)
          for n, s in [(2, signal.SIGINT), (1, signal.SIGTERM), (2, signal.SIGHUP)]),
    ],
    ids=lambda x: x.name if isinstance(x, signal.Signals) else str(x),
)  # fmt: skip
def test_a_stop_signal_during_training(tmp_path, presses, sig):
    proc = _sum_run(tmp_path)
    assert "stepping on" in proc.stdout.readline()
    time.sleep(1.5)
    for _ in range(presses):
        proc.send_signal(sig)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr
    if presses == 1:  # finish the call in flight, save, write the summary, name the resume command, exit 128 + n
        assert proc.returncode == 128 + sig, stderr
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["interrupted"] is True and summary["stopped"] == sig.name
        assert (tmp_path / "run" / "checkpoint.npz").exists()
        assert f"continue with: python3 -m examples.sum --epochs 400 --out {tmp_path / 'run'} --resume" in stderr
    else:  # the second signal aborts at once (128 + n), or lands after the run finished stopping (the same, or the
        # signal's own death once Python is shutting down): never a traceback, at most the two notices
        assert proc.returncode in (128 + sig, -sig), stderr
        assert len([line for line in stderr.splitlines() if line.strip()]) <= 3, stderr
        if (tmp_path / "run" / "checkpoint.npz").exists():  # a second signal never leaves a damaged checkpoint
            core.load_checkpoint(tmp_path / "run" / "checkpoint.npz", {})


def test_run_main_turns_keyboard_interrupt_into_one_line_and_130(capsys):
    def train(cfg):
        raise KeyboardInterrupt

    assert core.run_main(train, Cfg, []) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("interrupted"), err
