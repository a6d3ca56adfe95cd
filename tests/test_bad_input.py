"""Bad input as classes, across the examples: one line on stderr, exit code 2, never a traceback.

Corrupt or foreign data files, checkpoints that are truncated or belong to another configuration, output
folders that are files, environments whose packages are missing.
"""

from __future__ import annotations

import gzip

import pytest

from examples import gan, reinforce
from examples import sum as sum_example


def one_line_exit_2(main, argv, capsys, needle: str) -> str:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and needle in err, err
    return err


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


@pytest.mark.parametrize("main", [sum_example.main, gan.main, reinforce.main], ids=["sum", "gan", "reinforce"])
def test_out_that_is_a_file_and_negative_seeds(tmp_path, capsys, main):
    (tmp_path / "f").write_text("x")
    one_line_exit_2(main, ["--out", str(tmp_path / "f")], capsys, "not a folder")
    one_line_exit_2(main, ["--seed", "-1"], capsys, "--seed")


def test_gif_copy_naming_a_folder_is_refused_before_training(tmp_path, capsys):
    argv = ["--out", str(tmp_path / "run"), "--gif-copy", str(tmp_path)]
    one_line_exit_2(reinforce.main, argv, capsys, "is a folder")
    assert not (tmp_path / "run").exists()
