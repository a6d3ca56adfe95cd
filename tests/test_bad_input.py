"""Bad input as classes, across the examples: one line on stderr, exit code 2, never a traceback.

Corrupt or foreign data files, checkpoints that are truncated or belong to another configuration, output
folders that are files, environments whose packages are missing.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import one_line_exit_2

import core
from examples import gan, reinforce
from examples import sum as sum_example


def idx(magic: int, dims: list[int], body: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + body


@pytest.mark.parametrize("fault", ["damaged deflate", "truncated gzip", "not 28x28", "labels short"])
def test_mnist_files_that_cannot_be_read(tmp_path, capsys, fault):
    images = idx(2051, [10, 28, 28], bytes(10 * 784))
    labels = idx(2049, [10], bytes(10))
    if fault == "not 28x28":
        images = idx(2051, [10, 20, 20], bytes(10 * 400))
    if fault == "labels short":
        labels = idx(2049, [9], bytes(9))
    packed = gzip.compress(images)
    if fault == "damaged deflate":
        packed = packed[:30] + b"\xff" * 10 + packed[40:]
    if fault == "truncated gzip":
        packed = packed[: len(packed) // 2]
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(packed)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    one_line_exit_2(gan.main, ["--dataset", "mnist", "--data-dir", str(tmp_path)], capsys, "error")


@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
def test_resume_from_a_damaged_checkpoint(tmp_path, capsys, damage):
    out = tmp_path / "run"
    assert sum_example.main(["--epochs", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    ckpt = out / "checkpoint.npz"
    data = ckpt.read_bytes()
    ckpt.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "text": b"not a checkpoint"}[damage])
    one_line_exit_2(sum_example.main, ["--epochs", "3", "--resume", "--out", str(out)], capsys, "--resume")


def test_resume_with_another_network_size(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--max-env-steps", "1000", "--eval-episodes", "0", "--no-gif", "--out", str(out)]
    assert reinforce.main(argv) == 0
    capsys.readouterr()
    err = one_line_exit_2(reinforce.main, [*argv, "--resume", "--hidden", "32"], capsys, "does not fit this run")
    assert "shape" in err


@pytest.mark.parametrize("env_id", ["phys2d/CartPole-v1", "NoSuchEnv-v0", "ALE/Pong-v5"])
def test_environments_that_cannot_be_made(capsys, env_id):
    one_line_exit_2(reinforce.main, ["--env", env_id, "--no-gif"], capsys, "--env")


@pytest.mark.parametrize("env_id, extra", [("Hopper-v5", "mujoco"), ("LunarLanderContinuous-v3", "box2d")])
def test_an_environment_of_a_missing_extra_names_its_install(monkeypatch, capsys, env_id, extra):
    import gymnasium as gym

    def missing(*args, **kwargs):  # what gymnasium raises where the simulator is not installed
        raise gym.error.DependencyNotInstalled(f'{extra} is not installed, run `pip install "gymnasium[{extra}]"`')

    monkeypatch.setattr(gym, "make_vec", missing)
    one_line_exit_2(reinforce.main, ["--env", env_id, "--no-gif"], capsys, f'pip install -e ".[{extra}]"')


@pytest.mark.parametrize("main", [sum_example.main, gan.main, reinforce.main], ids=["sum", "gan", "reinforce"])
def test_out_that_is_a_file_and_negative_seeds(tmp_path, capsys, main):
    (tmp_path / "f").write_text("x")
    one_line_exit_2(main, ["--out", str(tmp_path / "f")], capsys, "not a folder")
    one_line_exit_2(main, ["--seed", "-1"], capsys, "--seed")


def test_gif_copy_naming_a_folder_is_refused_before_training(tmp_path, capsys):
    argv = ["--out", str(tmp_path / "run"), "--gif-copy", str(tmp_path)]
    one_line_exit_2(reinforce.main, argv, capsys, "is a folder")
    assert not (tmp_path / "run").exists()


def rewrite_checkpoint(path, meta=None, arrays=None) -> None:
    """Edit a checkpoint as a damaged or hand-made file would differ: ``meta(dict)`` / ``arrays(dict)`` in place."""
    with np.load(path, allow_pickle=False) as data:
        saved = {k: data[k] for k in data.files}
    meta_dict = json.loads(str(saved.pop("__meta__")))
    if meta:
        meta(meta_dict)
    if arrays:
        arrays(saved)
    np.savez(path, __meta__=np.array(json.dumps(meta_dict)), **saved)


@pytest.fixture(scope="module")
def sum_run(tmp_path_factory):
    """A finished 2-epoch sum run to copy and damage."""
    out = tmp_path_factory.mktemp("sum") / "run"
    assert sum_example.main(["--epochs", "2", "--out", str(out)]) == 0
    return out


def copied(run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def _floats(arrays: dict, change) -> None:
    arrays.update({k: change(v) for k, v in arrays.items() if v.dtype.kind == "f"})


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


@pytest.mark.parametrize(
    "meta, arrays, needle",
    [
        (_set("step", -50), None, "is not a count"),
        (_set("step", 1e30), None, "is not a count"),
        (_set("train_seconds", float("inf")), None, "train_seconds"),
        (_set("config", [1]), None, "holds no run config"),
        (lambda d: d["config"].pop("lr"), None, "records no --lr"),
        (None, lambda a: _floats(a, lambda v: v * np.nan), "non-finite"),
        (None, lambda a: _floats(a, lambda v: v.astype("int64")), "dtype mismatch"),
    ],
    ids=["negative step", "float step", "infinite seconds", "config a list", "config lacks a flag", "nan", "ints"],
)
def test_resume_from_a_checkpoint_with_damaged_contents(sum_run, tmp_path, capsys, meta, arrays, needle):
    out = copied(sum_run, tmp_path)
    rewrite_checkpoint(out / "checkpoint.npz", meta, arrays)
    one_line_exit_2(sum_example.main, ["--epochs", "3", "--resume", "--out", str(out)], capsys, needle)


def test_resume_from_a_checkpoint_that_is_not_a_file(sum_run, tmp_path, capsys):
    out = copied(sum_run, tmp_path)
    (out / "checkpoint.npz").unlink()
    os.mkfifo(out / "checkpoint.npz")  # reading it would wait forever
    one_line_exit_2(sum_example.main, ["--epochs", "3", "--resume", "--out", str(out)], capsys, "not a regular file")


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--epochs", "3", "--lr", "0.5"], "a run with --lr 0.01, not 0.5; only --out, --resume, --mode, --epochs"),
        (["--epochs", "3", "--train-samples", "10", "--batch-size", "10"], "--batch-size 1, not 10"),
        (["--epochs", "3", "--seed", "5"], "--seed 0, not 5"),
    ],
)
def test_resume_that_would_change_what_is_trained_is_refused(sum_run, tmp_path, capsys, flags, needle):
    out = copied(sum_run, tmp_path)
    before = (out / "checkpoint.npz").read_bytes()
    one_line_exit_2(sum_example.main, [*flags, "--resume", "--out", str(out)], capsys, needle)
    assert (out / "checkpoint.npz").read_bytes() == before
    # What may change does: a longer budget, another compile mode, the device count.
    flags = ["--epochs", "3", "--mode", "eager", "--devices", "all"]
    assert sum_example.main([*flags, "--resume", "--out", str(out)]) == 0


def test_resume_of_a_finished_run_trains_nothing_and_succeeds(sum_run, tmp_path, capsys):
    """Runs may end past their budget (whole calls); resuming one at its own or a smaller budget is no error."""
    out = copied(sum_run, tmp_path)
    before = (out / "checkpoint.npz").read_bytes()
    assert sum_example.main(["--epochs", "1", "--resume", "--out", str(out)]) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert (out / "checkpoint.npz").read_bytes() == before


def test_gan_resume_with_another_loss_or_batch_or_a_damaged_generator_is_refused(tmp_path, capsys):
    out = tmp_path / "ring"
    assert gan.main(["--steps", "20", "--steps-per-call", "10", "--num-samples", "50", "--out", str(out)]) == 0
    capsys.readouterr()
    flags = ["--steps", "40", "--steps-per-call", "10", "--num-samples", "50", "--out", str(out), "--resume"]
    one_line_exit_2(gan.main, [*flags, "--loss", "wgan-gp"], capsys, "a run with --loss ns, not wgan-gp")
    one_line_exit_2(gan.main, [*flags, "--batch-size", "64"], capsys, "a run with --batch-size 256, not 64")
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    rewrite_checkpoint(damaged / "checkpoint.npz", lambda d: d["rng"]["state"].__setitem__("state", 2**200))
    one_line_exit_2(gan.main, [*flags[:-2], str(damaged), "--resume"], capsys, "does not fit this run")
    # The default given by name is the same run; sampling may change.
    assert gan.main([*flags, "--batch-size", "256", "--num-samples", "60"]) == 0


def test_image_resume_checks_the_data_not_the_path(tmp_path, capsys):
    from PIL import Image

    def pictures(folder, seed):
        folder.mkdir()
        rng = np.random.default_rng(seed)
        for i in range(16):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")

    pictures(tmp_path / "a", 0)
    pictures(tmp_path / "b", 1)
    shutil.copytree(tmp_path / "a", tmp_path / "a_copy")
    common = ["--dataset", "folder", "--image-size", "8", "--channels", "1", "--batch-size", "8"]
    common += ["--num-samples", "5", "--out", str(tmp_path / "run")]
    assert gan.main([*common, "--data-dir", str(tmp_path / "a"), "--epochs", "1"]) == 0
    capsys.readouterr()
    before = (tmp_path / "run" / "summary.json").read_text()
    argv = [*common, "--resume", "--epochs", "2", "--data-dir"]
    one_line_exit_2(gan.main, [*argv, str(tmp_path / "b")], capsys, "trained on other data than")
    assert (tmp_path / "run" / "summary.json").read_text() == before  # a refused resume leaves the run as it was
    assert gan.main([*argv, str(tmp_path / "a_copy")]) == 0  # the same pictures elsewhere


def test_reinforce_resume_takes_flags_at_the_values_they_resolved_to(tmp_path):
    argv = ["--max-env-steps", "1000", "--eval-episodes", "0", "--no-gif", "--out", str(tmp_path / "run")]
    assert reinforce.main(argv) == 0
    argv[1] = "2000"  # a longer budget, and auto / the algorithm's defaults spelled out
    assert reinforce.main([*argv, "--resume", "--env-backend", "device", "--num-envs", "8", "--lr", "0.003"]) == 0


@pytest.mark.parametrize(
    "state, needle",
    [
        ({"recent": ["a", "b"]}, "recent"),
        ({"episodes": "x"}, "episodes"),
        ({"recent": 5}, "recent"),
        ({"solved_at": 5}, "solved_at"),
        ({"updates": None}, "updates"),
        ({"episodes": -100}, "episodes"),  # gymnasium's seeds are drawn from it
        ({"episodes": 3.5}, "episodes"),
        ({"bootstrap_truncated": "no"}, "bootstrap_truncated"),
    ],
)
def test_reinforce_resume_with_damaged_counters(tmp_path, capsys, state, needle):
    out = tmp_path / "run"
    argv = ["--max-env-steps", "1000", "--eval-episodes", "0", "--no-gif", "--out", str(out)]
    assert reinforce.main(argv) == 0
    capsys.readouterr()
    rewrite_checkpoint(out / "checkpoint.npz", lambda d: d["state"].update(state))
    argv[1] = "2000"
    err = one_line_exit_2(reinforce.main, [*argv, "--resume"], capsys, "counters are damaged")
    assert needle in err


def test_infinity_where_a_flag_declares_it_and_nowhere_else(capsys):
    from examples import ppo

    assert core.parse_config(ppo.Config, ["--target-return", "inf"]).target_return == float("inf")  # never
    one_line_exit_2(reinforce.main, ["--target-return=-inf"], capsys, "--target-return must be a finite number")
    one_line_exit_2(reinforce.main, ["--lr", "inf"], capsys, "--lr must be a finite number")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--lr", "inf"], "--lr must be a finite number, got inf"),
        (["--out", ""], "--out must not be empty"),
        (["--train-samples", "100000000000", "--batch-size", "100"], "--train-samples must be in [1, 10000000]"),
    ],
)
def test_sum_numbers_that_mean_nothing(capsys, argv, needle):
    one_line_exit_2(sum_example.main, ["--epochs", "1", *argv], capsys, needle)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--target-return", "nan"], "--target-return must be a finite number"),
        (["--num-envs", "65536", "--rollout-steps", "100000"], "transitions per rollout; at most"),
        (["--algo", "reinforce", "--num-envs", "100000"], "--num-envs must be in [1, 65536]"),
        (["--algo", "reinforce", "--num-envs", "5000"], "at most 1024 gymnasium environments"),
        (["--gif-copy", "x.gif", "--no-gif"], "which --no-gif turns off"),
    ],
)
def test_reinforce_sizes_and_flags_that_cannot_work(tmp_path, capsys, argv, needle):
    one_line_exit_2(reinforce.main, [*argv, "--out", str(tmp_path / "o")], capsys, needle)
    assert not (tmp_path / "o").exists()  # refused before the output folder is made


def test_gif_copy_under_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    argv = ["--out", str(tmp_path / "run"), "--gif-copy", str(tmp_path / "f" / "x.gif")]
    one_line_exit_2(reinforce.main, argv, capsys, "is not a folder this run can write in")
    assert not (tmp_path / "run").exists()


def test_out_of_memory_is_one_line_and_exit_2(capsys):
    class ResourceExhaustedError(Exception):  # TensorFlow's, by name: the core does not import TensorFlow here
        pass

    for error in (MemoryError("Unable to allocate 1.46 TiB"), ResourceExhaustedError("OOM when allocating")):

        def train(config, error=error):
            raise error

        one_line_exit_2(lambda argv: core.run_main(train, core.RunConfig, argv), [], capsys, "out of memory")
    with pytest.raises(ZeroDivisionError):  # any other fault stays a traceback: it is a bug to see
        core.run_main(lambda config: 1 / 0, core.RunConfig, [])


def test_mnist_without_data_dir_and_no_network(monkeypatch, capsys):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: Name or service not known")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    one_line_exit_2(gan.main, ["--dataset", "mnist", "--steps", "1"], capsys, "give --data-dir")


def test_mnist_labels_out_of_range_and_oversized_files(tmp_path, capsys):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(2051, [10, 28, 28], bytes(10 * 784))))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(2049, [10], bytes([200] * 10))))
    argv = ["--dataset", "mnist", "--data-dir", str(tmp_path), "--conditional"]
    one_line_exit_2(gan.main, argv, capsys, "label 200; MNIST's labels are 0 to 9")
    # A header announcing 2^32 images is refused before reading (a small file that would inflate to gigabytes).
    huge = idx(2051, [2**32 - 1, 28, 28], bytes(784))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(huge))
    one_line_exit_2(gan.main, argv[:4], capsys, "announces more than 2 GB")
    # More bytes than the header says: refused after reading one more than announced.
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(2051, [10, 28, 28], bytes(10 * 785))))
    one_line_exit_2(gan.main, argv[:4], capsys, "the file holds more")


def test_a_damaged_cached_classifier_is_trained_again(tmp_path):
    from examples import gan_metrics

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (200, 28, 28, 1), dtype=np.uint8), np.arange(200, dtype=np.uint8) % 10
    *_, path, trained = gan_metrics.quality_classifier(images, labels, [tmp_path], epochs=1)
    assert trained and path.exists()
    assert not gan_metrics.quality_classifier(images, labels, [tmp_path], epochs=1)[-1]  # loaded from the cache
    rewrite_checkpoint(path, arrays=lambda a: a.update({k: v * np.nan for k, v in a.items()}))
    *_, again, trained = gan_metrics.quality_classifier(images, labels, [tmp_path], epochs=1)
    assert trained and again == path  # trained again (a NaN classifier would score every G as perfect) and re-saved
    assert not gan_metrics.quality_classifier(images, labels, [tmp_path], epochs=1)[-1]


@pytest.mark.parametrize(
    "env, argv, needle",
    [
        ({"KERAS_BACKEND": "foo"}, ["-m", "examples.sum"], "KERAS_BACKEND='foo': customloop runs on tensorflow or jax"),
        ({"CUSTOMLOOP_CPU_DEVICES": "abc"}, ["-m", "examples.sum"], "CUSTOMLOOP_CPU_DEVICES must be an int from 1"),
        ({}, ["-m", "examples.rl_common"], "examples.rl_common: not a command; run python3 -m examples.sum"),
        ({}, ["-m", "examples.ppo", "--epochs", "-5"], "--epochs must be in [1, 1000], got -5"),  # a program
        ({}, ["-X", "utf8", "-m", "examples.__init__"], "examples.__init__: not a command"),
        ({}, ["-mexamples.gan_data"], "examples.gan_data: not a command"),
    ],
    ids=["backend", "cpu devices", "not a command", "ppo is a command", "the package", "attached -m"],
)
def test_environment_and_module_mistakes_are_one_line_and_exit_2(env, argv, needle):
    res = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and needle in lines[0], res.stderr[-2000:]


@pytest.mark.parametrize(
    "name, argv, needle",
    [
        ("sum_step", ["--repeats", "0"], "--repeats: expected a positive integer, got 0"),
        ("gan_quality", ["--seeds", "-1"], "--seeds: expected a positive integer"),
        ("gan_image_speed", ["--steps", "x"], "--steps: expected a positive integer, got 'x'"),
        ("policy_gradient", ["seeds", "--backends", "foo"], "--backends: foo not among tensorflow, jax"),
        ("parallel_step", ["--batch-size", "3"], "must be even"),
    ],
)
def test_benchmark_flags_that_cannot_work(capsys, name, argv, needle):
    import importlib

    module = importlib.import_module(f"benchmarks.{name}")
    one_line_exit_2(lambda a: core.run_script(lambda: module.main(a)), argv, capsys, needle)


def test_run_script_reports_a_failed_child_by_its_own_last_line(capsys):
    def child_fails():
        raise subprocess.CalledProcessError(3, ["python3", "-m", "x"], stderr="Traceback ...\nValueError: bad thing\n")

    assert core.run_script(child_fails) == 3
    err = capsys.readouterr().err.strip()
    assert err.endswith("python3 -m x failed: ValueError: bad thing") and len(err.splitlines()) == 1
    assert core.run_script(lambda: 4) == 4 and core.run_script(lambda: {"rows": []}) == 0


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--gp-weight", "50"], "unrecognized arguments: --gp-weight 50 (see --help)"),  # a constant: WGAN-GP's 10
        (["--channels", "1"], "--channels is a flag of python -m examples.gan_images"),
        (["--no-quality"], "--no-quality is a flag of python -m examples.gan_images"),
        (["--sample-statistics", "moving"], "unrecognized arguments: --sample-statistics moving (see --help)"),
        (["--epochs", "5"], "--epochs is a flag of python -m examples.gan_images"),
        (["--dataset", "mnist", "--lr-decay", "0.1"], "--lr-decay is a flag of python -m examples.gan_2d"),
        (["--dataset", "mnist", "--sample-raw"], "--sample-raw is a flag of python -m examples.gan_2d"),
    ],
    ids=["gp weight", "channels", "quality", "statistics", "2d epochs", "image lr decay", "image sample raw"],
)
def test_gan_flags_of_the_other_program_name_it(capsys, argv, needle):
    """A flag the chosen GAN program does not have is argparse's error, naming the program that has it."""
    one_line_exit_2(gan.main, argv, capsys, needle)


@pytest.mark.parametrize(
    "program, argv, needle",
    [
        ("reinforce", ["--algo", "reinforce", "--clip-coef", "0.2"], "--clip-coef is a flag of python -m examples.ppo"),
        ("reinforce", ["--update-size", "7"], "--update-size is a flag of python -m examples.reinforce_mc"),
        ("ppo", ["--update-size", "5"], "--update-size is a flag of python -m examples.reinforce_mc"),
        ("reinforce_mc", ["--train-on", "0"], "--train-on is a flag of python -m examples.ppo"),
        ("reinforce", ["--value-coef", "3"], "unrecognized arguments: --value-coef 3 (see --help)"),
        ("reinforce", ["--shared-optimizer", "--value-lr", "0.01"], "--value-lr is a flag of python -m examples.rei"),
        ("ppo", ["--greedy-envs", "0", "--greedy-window", "4"], "unrecognized arguments: --greedy-window 4 (see"),
    ],
    ids=["ppo flag", "reinforce flag", "reinforce flag to ppo", "device flag", "value coef", "shared value lr",
         "greedy window"],
)  # fmt: skip
def test_policy_gradient_flags_of_the_other_program_are_argparse_errors(capsys, program, argv, needle):
    """A flag the chosen program lacks is argparse's one line naming the program that has it (also through the
    dispatcher, examples.reinforce); the flags that went with the split (--value-coef, --shared-optimizer,
    --greedy-window) are unknown to both."""
    import importlib

    one_line_exit_2(importlib.import_module(f"examples.{program}").main, argv, capsys, needle)


def test_a_damaged_picture_in_a_folder_is_skipped_by_name_whatever_byte_is_damaged(tmp_path):
    """A class, not a case: every single-byte change of a small PNG (a valid signature with a corrupt chunk makes
    Pillow raise SyntaxError, other bytes other errors or none) either loads or is skipped and named."""
    from PIL import Image

    from examples import gan_data

    Image.new("RGB", (6, 5), (10, 200, 30)).save(tmp_path / "good.png")
    png = (tmp_path / "good.png").read_bytes()
    damaged = tmp_path / "damaged.png"
    for i in range(len(png)):
        data = bytearray(png)
        data[i] ^= 0x5A
        damaged.write_bytes(bytes(data))
        images, skipped = gan_data.load_folder(tmp_path, 4, 3)
        assert len(images) + len(skipped) == 2 and [p.name for p in skipped] in ([], ["damaged.png"]), i


@pytest.mark.parametrize("dims", [[2**31 - 1, 28, 28], [2**32 - 1, 2**32 - 1, 2**32 - 1], [0, 2**32 - 1, 2**32 - 1]])
def test_an_idx_header_whose_dimensions_overflow_is_one_line_naming_the_file(tmp_path, dims):
    from examples import gan_data

    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes((2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(10))
    with pytest.raises(core.UsageError, match=f"{path}"):
        gan_data.read_idx(path)


@pytest.mark.parametrize("limit_mb", [400, 1500])
def test_an_engine_that_cannot_start_under_a_memory_limit_is_one_line_and_exit_2(limit_mb):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb * 2**20, limit_mb * 2**20))

    res = subprocess.run(
        [sys.executable, "-m", "examples.sum", "--epochs", "1"], capture_output=True, text=True, timeout=120,
        preexec_fn=limit,
    )  # fmt: skip
    lines = res.stderr.strip().splitlines()
    if res.returncode == 0:  # this engine fits in the limit here: nothing to check
        pytest.skip(f"Keras started within {limit_mb} MB")
    assert res.returncode == 2 and len(lines) == 1 and "could not start" in lines[0], res.stderr[-2000:]
