"""What real clusters do to a run: preemption (SIGTERM at any moment), a second run on the same folder, full or
read-only disks, half-written files, a damaged checkpoint, a resume under the other backend."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import keras
import numpy as np
import pytest
from conftest import REPO, checkpoint_weights, start_example
from PIL import Image

import core
import core.launch
from core import run_log


@dataclass
class Cfg(core.RunConfig):
    """A config with the run flags only."""


def objects():
    return {"v": keras.Variable(np.arange(3, dtype="float32"), name="v")}


def _train(out, total=4, every=2, **kw):
    with core.Run(Cfg(out=str(out), **kw), objects(), total=total, checkpoint_every=every) as run:
        while run.running:
            run.advance(1, {"loss": 1.0})
    return run


# ----- preemption: SIGTERM at a random moment, then --resume to the end, equals an uninterrupted run -----


def _sum(out, **kw):
    from examples import sum as program

    return program.train(program.Config(epochs=30, out=str(out), **kw))


def _gan_2d(out, **kw):
    from examples import gan_2d

    config = gan_2d.Config(steps=1500, steps_per_call=50, checkpoint_every=500, log_every=500, num_samples=100, **kw)
    return gan_2d.train(dataclasses.replace(config, out=str(out)))


def _gan_images(out, **kw):
    from examples import gan_images

    pics = out.parent / "pics"
    if not pics.exists():
        pics.mkdir()
        rng = np.random.default_rng(0)
        for i in range(24):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(pics / f"{i}.png")
    common = dict(dataset="folder", data_dir=str(pics), image_size=8, batch_size=8, num_samples=4, epochs=8)
    return gan_images.train(gan_images.Config(out=str(out), **common, **kw))


def _ppo(out, **kw):
    from examples import ppo

    config = ppo.Config(max_env_steps=30_000, target_return=math.inf, eval_episodes=0, gif=False, **kw)
    return ppo.train(dataclasses.replace(config, checkpoint_every=4096, out=str(out)))


# example -> its train(out, resume=...) with a budget of a few seconds; each resumes exactly (its environments, if
# any, are device environments whose state is in the checkpoint: gymnasium's are Python objects that a resumed run
# restarts, so REINFORCE and PPO on gymnasium resume to a run of their own, checked in their tests)
PREEMPTED = {"sum": _sum, "gan_2d": _gan_2d, "gan_images": _gan_images, "ppo": _ppo}


@pytest.fixture
def harmless_sigterm():
    """A SIGTERM that lands when no run is training (set up, evaluation) must not end the test process."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    yield
    signal.signal(signal.SIGTERM, previous)


def preempted_and_resumed(train, out, rng: random.Random, monkeypatch) -> bool:
    """``train`` with a SIGTERM at a random moment of its training, resumed to the end if it stopped; whether the
    signal stopped it. The moment: a random share of the run's steps, then a random delay of up to 50 ms, so that the
    signal lands between compiled calls or inside one."""
    share, delay, timers = rng.uniform(0.05, 0.9), rng.uniform(0.0, 0.05), []
    advance = core.Run.advance

    def advance_then_maybe_signal(self, n, logs=None, show=None):
        advance(self, n, logs, show)
        if not timers and not self.config.resume and self.step >= share * self.total:
            timers.append(threading.Timer(delay, os.kill, (os.getpid(), signal.SIGTERM)))
            timers[0].start()

    with monkeypatch.context() as m:
        m.setattr(core.Run, "advance", advance_then_maybe_signal)
        first = train(out)
        for timer in timers:
            timer.join()
    if first["interrupted"]:
        assert first["stopped"] == "SIGTERM" and core.runs.stop_signal() == signal.SIGTERM
        train(out, resume=True)
    return bool(first["interrupted"])


def assert_same_checkpoints(a_dir, b_dir) -> None:
    a, b = checkpoint_weights(a_dir), checkpoint_weights(b_dir)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("name", sorted(PREEMPTED))
def test_sigterm_at_a_random_moment_then_resume_equals_the_uninterrupted_run(
    tmp_path, name, harmless_sigterm, monkeypatch
):
    PREEMPTED[name](tmp_path / "full")
    rng = random.Random(name)
    for attempt in range(3):  # a signal late in the last call can land after training: then try another moment
        stopped = preempted_and_resumed(PREEMPTED[name], tmp_path / f"part{attempt}", rng, monkeypatch)
        assert_same_checkpoints(tmp_path / "full", tmp_path / f"part{attempt}")
        if stopped:
            return
    pytest.fail("no signal landed while training in three attempts")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PREEMPTED))
def test_sigterm_at_twenty_random_moments_each_resumes_to_the_uninterrupted_run(
    tmp_path, name, harmless_sigterm, monkeypatch
):
    PREEMPTED[name](tmp_path / "full")
    rng, stopped = random.Random(f"20 moments of {name}"), 0
    for i in range(20):
        stopped += preempted_and_resumed(PREEMPTED[name], tmp_path / f"part{i}", rng, monkeypatch)
        assert_same_checkpoints(tmp_path / "full", tmp_path / f"part{i}")
    assert stopped >= 15, f"only {stopped} of 20 signals landed while training"


def test_sigterm_from_outside_saves_names_the_resume_command_and_exits_143(tmp_path):
    proc = start_example("sum", "--epochs", "400", "--out", str(tmp_path))
    assert "stepping on" in proc.stdout.readline()
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert f"continue with: python3 -m examples.sum --epochs 400 --out {tmp_path} --resume" in stderr
    assert json.loads((tmp_path / "summary.json").read_text())["stopped"] == "SIGTERM"


def test_a_second_signal_while_the_checkpoint_is_written_waits_for_it(tmp_path, monkeypatch):
    """The write runs with the stop signals held: a signal sent during it is delivered after, so the checkpoint
    on disk is whole (the second signal then aborts as it should)."""
    written = []

    def slow_save(self, meta):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-write
        time.sleep(0.05)
        written.append(core.save_checkpoint(self.path, self.objects, meta))
        return written[-1]

    monkeypatch.setattr(core.Checkpointer, "save", slow_save)
    with pytest.raises(KeyboardInterrupt):  # the deferred second signal, after the write
        with core.Run(Cfg(out=str(tmp_path)), objects(), total=4) as run:
            run._interrupt._handler(signal.SIGTERM, None)  # the first signal: stop after this call
            run.advance(1, {"loss": 1.0})
    assert written and core.load_checkpoint(written[0], objects())["step"] == 1
    assert core.runs.stop_signal() == signal.SIGTERM


# ----- one run per folder -----


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    with core.Run(Cfg(out=str(tmp_path)), objects(), total=2):
        for resume in (False, True):
            with pytest.raises(core.UsageError, match="in use by another run \\(process \\d+\\)"):
                core.Run(Cfg(out=str(tmp_path), resume=resume), objects(), total=2).__enter__()
    _train(tmp_path / "next")  # and the lock goes with the run


def test_a_killed_run_leaves_no_stuck_lock(tmp_path):
    holder = (  # what FolderLock does, without importing Keras
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1] + '/.lock', os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print(1, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdout.readline().strip() == b"1"
    with pytest.raises(core.UsageError, match=f"process {proc.pid}"):
        core.runs.FolderLock(tmp_path).acquire()
    proc.kill()
    proc.wait()
    lock = core.runs.FolderLock(tmp_path)
    lock.acquire()  # the kernel dropped the dead process's lock
    lock.release()


# ----- storage faults -----


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["full disk", "read-only"])
def test_a_storage_fault_at_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, code):
    _train(tmp_path, total=2)
    before = (tmp_path / "checkpoint.npz").read_bytes()

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(core.checkpoint, "atomic_write_bytes", fail)
    with pytest.raises(OSError):
        _train(tmp_path, total=6, resume=True)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before  # intact ...
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped"].startswith("error: OSError") and os.strerror(code) in summary["stopped"]
    monkeypatch.undo()
    assert _train(tmp_path, total=6, resume=True).step == 6  # ... and still resumable
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_full_disk_at_the_final_checkpoint_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    def train(config):
        monkeypatch.setattr(core.checkpoint, "atomic_write_bytes", _disk_full)  # the summary still fits
        with core.Run(config, objects(), total=3) as run:
            run.advance(3, {"loss": 1.0})

    assert core.run_main(train, Cfg, ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0], err
    assert "No space left on device" in json.loads((tmp_path / "summary.json").read_text())["stopped"]


def test_when_nothing_fits_the_error_line_is_all_that_is_left(tmp_path, monkeypatch, capsys):
    def train(config):
        monkeypatch.setattr(run_log, "atomic_write_bytes", _disk_full)
        monkeypatch.setattr(core.checkpoint, "atomic_write_bytes", _disk_full)
        with core.Run(config, objects(), total=3) as run:
            run.advance(3, {"loss": 1.0})

    assert core.run_main(train, Cfg, ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0], err


def test_half_written_files_of_a_crashed_run_are_removed_by_the_next(tmp_path):
    _train(tmp_path, total=2)
    stale = [tmp_path / ".checkpoint.npz.x1y2.tmp", tmp_path / "grids" / ".epoch_1.png.a.tmp"]
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half")
    _train(tmp_path, total=4, resume=True)
    assert not any(p.exists() for p in stale)


def test_output_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        run_log._umask.cache_clear()
        _train(tmp_path, total=2).write_summary({})
        for name in ("checkpoint.npz", "summary.json"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    finally:
        os.umask(previous)
        run_log._umask.cache_clear()


def test_tensorboard_on_a_full_disk_is_an_error_not_a_hang(tmp_path):
    logger = core.RunLogger(tmp_path)
    logger.tb._writer._py_recordio_writer._writer = open("/dev/full", "wb")  # noqa: SIM115  (the disk fills up)
    done = []

    def log_and_close():
        with pytest.raises(OSError, match="No space left"):
            for step in range(10_000):  # past any buffer
                logger.scalars(step, {"loss": 1.0})
            logger.close()
        done.append(True)

    thread = threading.Thread(target=log_and_close, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert done, "the TensorBoard writer hung on a full disk"


# ----- damaged checkpoints and the other backend -----


def test_every_single_byte_change_of_a_checkpoint_is_caught_or_harmless(tmp_path):
    """A class, not a list: change each byte of a small checkpoint in turn; loading it either raises
    CheckpointError (one line) or gives back exactly what was saved (a byte the format does not read)."""
    path = core.save_checkpoint(tmp_path / "c.npz", objects(), {"step": 1})
    data = path.read_bytes()
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0xFF
        path.write_bytes(bytes(damaged))
        target = objects()
        try:
            meta = core.load_checkpoint(path, target)
        except core.CheckpointError:
            continue
        assert meta == {"step": 1}, i
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(target["v"].value), [0, 1, 2], err_msg=str(i))


def test_a_resume_under_the_other_backend_is_refused_naming_both(tmp_path):
    _train(tmp_path, total=2)
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    arrays = dict(np.load(tmp_path / "checkpoint.npz"))
    meta = json.loads(str(arrays["__meta__"]))
    arrays["__meta__"] = np.array(json.dumps({**meta, "backend": other}))
    np.savez(tmp_path / "checkpoint.npz", **arrays)
    with pytest.raises(core.UsageError, match=f"written by a run on {other}, this one runs on "):
        _train(tmp_path, total=4, resume=True)


# ----- the launcher: signals, failed processes, bad options -----

CHILD = """
import os, signal, sys, time
index = int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"])
out = sys.argv[1]
{body}
"""
SAVES_ON_SIGTERM = """
def stop(signum, frame):
    time.sleep(0.3)  # a checkpoint being written
    open(os.path.join(out, f"saved-{index}"), "w").close()
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
open(os.path.join(out, f"ready-{index}"), "w").close()
time.sleep(60)
"""


def _child(tmp_path, body: str) -> list[str]:
    return [sys.executable, "-c", CHILD.format(body=body), str(tmp_path)]


def _after(seconds: float, action) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_launch_passes_a_stop_signal_to_every_process_once_and_waits_for_them_to_save(tmp_path, sig):
    def preempt():
        deadline = time.monotonic() + 30
        while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), sig)

    timer = _after(0, preempt)
    started = time.monotonic()
    assert core.launch.launch(_child(tmp_path, SAVES_ON_SIGTERM), 2, timeout=60) == 128 + sig
    timer.join()
    assert sorted(p.name for p in tmp_path.glob("saved-*")) == ["saved-0", "saved-1"]
    assert time.monotonic() - started < 30


def test_a_failed_process_other_than_the_first_stops_the_launch_within_seconds(tmp_path, capsys):
    body = "sys.exit(3) if index == 1 else time.sleep(60)"  # process 0 would wait for its peer forever
    started = time.monotonic()
    assert core.launch.launch(_child(tmp_path, body), 2, timeout=60) == 3
    assert time.monotonic() - started < 15
    assert "process 1 failed (exit code 3)" in capsys.readouterr().err


def test_a_process_killed_by_a_signal_is_reported_as_128_plus_the_signal(tmp_path):
    body = "os.kill(os.getpid(), signal.SIGKILL) if index == 1 else time.sleep(60)"
    assert core.launch.launch(_child(tmp_path, body), 2, timeout=60) == 128 + signal.SIGKILL


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--processes", "0", "--", "true"], "--processes: expected a positive integer, got 0"),
        (["--timeout", "nan", "--", "true"], "--timeout: invalid seconds value: 'nan'"),
        (["--timeout", "-5", "--", "true"], "--timeout: invalid seconds value: '-5'"),
        (["--processes", "100000", "--", "true"], "--processes: at most 256"),
        (["--", "no-such-program-here"], "no such program: no-such-program-here"),
        ([], "give the command to run after --"),
    ],
)
def test_launch_options_that_cannot_work_are_one_line_and_exit_2(argv, needle, capsys):
    try:
        code = core.launch.main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err


def test_a_coordinator_or_worker_port_in_use_is_one_line_naming_it(tmp_path):
    with socket.socket() as busy:
        busy.bind(("localhost", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            **core.launch.process_env(0, 2, port, [port, port + 1]),
            "PYTHONPATH": str(REPO),
        }
        res = subprocess.run(
            [sys.executable, "-m", "examples.sum", "--devices", "all", "--out", str(tmp_path)],
            capture_output=True, text=True, env={**os.environ, **env}, timeout=120, cwd=REPO,
        )  # fmt: skip
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and f"port {port} on localhost is in use" in lines[0], res.stderr


def test_a_2d_gan_gif_has_every_frame_after_a_crash_and_a_resume(tmp_path, monkeypatch):
    from examples import gan_2d

    common = dict(steps=600, steps_per_call=100, log_every=200, checkpoint_every=200, num_samples=100)
    gan_2d.train(gan_2d.Config(out=str(tmp_path / "full"), **common))
    original = core.Run.advance

    def crash_after_the_first_checkpoint(self, n, logs=None, show=None):
        original(self, n, logs, show)
        if self.step == 300:  # past the checkpoint at 200 and the frame at 200: a kill -9 here loses nothing saved
            raise RuntimeError("killed")

    monkeypatch.setattr(core.Run, "advance", crash_after_the_first_checkpoint)
    with pytest.raises(RuntimeError, match="killed"):
        gan_2d.train(gan_2d.Config(out=str(tmp_path / "part"), **common))
    monkeypatch.undo()
    gan_2d.train(gan_2d.Config(out=str(tmp_path / "part"), resume=True, **common))
    for run in ("full", "part"):
        with Image.open(tmp_path / run / "training.gif") as gif:
            assert gif.n_frames == 3, run


TF_LOST = (
    "Graph execution error: Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks"
    " are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed."
)
JAX_LOST = "UNKNOWN: Gloo all-reduce failed: [external/gloo/gloo/transport/tcp/pair.cc:538] Read error " \
           "[127.0.0.1]:59629: Connection reset by peer"  # fmt: skip


@pytest.mark.parametrize("text, who", [(TF_LOST, "process 1"), (JAX_LOST, "another process")], ids=["tf", "jax"])
def test_a_lost_process_of_a_multi_process_run_is_one_line_naming_it(capsys, text, who):
    """The errors each engine raised in process 0 when process 1 was killed mid-training (measured)."""

    def train(config):
        raise ValueError(text)

    assert core.run_main(train, Cfg, []) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{who} of this multi-process run was lost" in err[0], err
    with pytest.raises(ZeroDivisionError):  # any other error is still a bug's traceback
        core.run_main(lambda config: 1 / 0, Cfg, [])


COMPILE_ONCE = """
import sys
from pathlib import Path
import core, jax, jax.numpy as jnp
core.enable_compilation_cache(Path(sys.argv[1]))
print(float(jax.jit(lambda x: jnp.sin(x) * 2)(jnp.float32(1.0))))
"""


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's persistent compilation cache")
def test_a_damaged_compilation_cache_is_repaired_with_one_line_not_a_screen_of_warnings(tmp_path):
    def compile_once() -> list[str]:
        env = {**os.environ, "KERAS_BACKEND": "jax"}
        res = subprocess.run([sys.executable, "-c", COMPILE_ONCE, str(tmp_path)], capture_output=True, text=True,
                             env=env, cwd=REPO, timeout=120)  # fmt: skip
        assert res.returncode == 0 and res.stdout.strip() == "1.6829419136047363", res.stderr
        return [line for line in res.stderr.splitlines() if line.strip()]

    assert compile_once() == [] and list(tmp_path.glob("*-cache"))
    for entry in tmp_path.glob("*-cache"):
        entry.write_bytes(b"garbage")  # a disk that filled up mid-write, a cache copied in half
    assert len(lines := compile_once()) == 1 and "unreadable entries removed" in lines[0], lines
    assert compile_once() == []  # repaired: written afresh
