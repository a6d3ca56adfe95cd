"""Config flags, checkpoints, logging and pictures: the pieces every example shares."""

import json
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
import pytest
from PIL import Image

import core


@dataclass
class DemoConfig:
    """A demo config."""

    steps: int = 10
    """how many steps to take"""
    lr: float = 0.5
    """learning rate"""
    jit: bool = True
    """compile with XLA"""
    rate: float = core.arg(0.1, above=0, max=1)
    """a rate in (0, 1]"""
    loss: Literal["ns", "wgan"] = "ns"
    """which loss"""
    out: str | None = None
    """output folder"""

    def validate(self):
        if self.steps < 1:
            raise core.UsageError(f"--steps must be at least 1, got {self.steps}")


def test_config_flags_from_dataclass(capsys):
    cfg = core.parse_config(DemoConfig, ["--steps", "3", "--no-jit", "--loss", "wgan", "--out", "d"])
    assert cfg == DemoConfig(steps=3, lr=0.5, jit=False, loss="wgan", out="d")
    assert core.parse_config(DemoConfig, []) == DemoConfig()
    with pytest.raises(SystemExit) as e:
        core.parse_config(DemoConfig, ["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for doc in ("how many steps to take", "compile with XLA", "--no-jit", "{ns,wgan}", "output folder"):
        assert doc in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--steps", "0"],
        ["--steps", "x"],
        ["--loss", "bad"],
        ["--nope"],
        ["--rate", "0"],
        ["--rate", "nan"],
        ["--rate", "2"],
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        core.parse_config(DemoConfig, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ": error: " in err[0], err


def test_run_main_turns_usage_error_into_exit_2(capsys):
    def train(cfg):
        raise core.UsageError("no such file: x.png")

    assert core.run_main(train, DemoConfig, []) == 2
    assert capsys.readouterr().err.strip().endswith("error: no such file: x.png")


def test_run_main_turns_non_finite_loss_into_exit_1(capsys):
    def train(cfg):
        raise core.NonFiniteLossError("d/loss became nan at step 3")

    assert core.run_main(train, DemoConfig, []) == 1
    assert capsys.readouterr().err.strip().endswith("stopped: d/loss became nan at step 3")


def _model_and_opt(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization()])
    opt = keras.optimizers.Adam(0.1)
    opt.build(model.trainable_variables)
    return model, opt


def test_checkpoint_round_trip(tmp_path):
    model, opt = _model_and_opt(0)
    seed = keras.random.SeedGenerator(3)
    step = core.make_step(
        [
            core.UpdateGroup(
                "m",
                lambda _: keras.ops.sum(model(keras.random.normal((5, 3), seed=seed)) ** 2),
                model.trainable_variables,
                opt,
            )
        ]
    )
    step.train_steps(num_steps=3)
    rng = np.random.default_rng(1)
    rng.normal()
    ck = core.Checkpointer(tmp_path, {"model": model, "opt": opt, "seed": seed})
    ck.save({"step": 3, "rng": core.rng_state(rng)})
    expected = [v.numpy().copy() for v in [*model.weights, *opt.variables, seed.state]]

    model2, opt2 = _model_and_opt(1)
    seed2 = keras.random.SeedGenerator(99)
    meta = core.Checkpointer(tmp_path, {"model": model2, "opt": opt2, "seed": seed2}).load()
    assert meta["step"] == 3
    rng2 = np.random.default_rng(0)
    core.set_rng_state(rng2, meta["rng"])
    assert rng2.normal() == rng.normal()
    for a, b in zip(expected, [v.numpy() for v in [*model2.weights, *opt2.variables, seed2.state]]):
        np.testing.assert_array_equal(a, b)
    # no pickle in the file
    with np.load(ck.path, allow_pickle=False) as data:
        assert "__meta__" in data.files


def test_checkpoint_mismatch_is_an_error(tmp_path):
    model, opt = _model_and_opt(0)
    core.save_checkpoint(tmp_path / "c.npz", {"model": model})
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="model"):
        core.load_checkpoint(tmp_path / "c.npz", {"model": other})


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    core.atomic_write_bytes(path, b"old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        core.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_assert_finite():
    core.assert_finite({"a": 1.0, "b": np.array([1.0, 2.0])}, step=1)
    with pytest.raises(core.NonFiniteLossError, match=r"g/loss became nan at step 7"):
        core.assert_finite({"d/loss": 1.0, "g/loss": np.array([1.0, np.nan])}, step=7)


def test_summary_and_tensorboard(tmp_path):
    core.write_summary(tmp_path, {"x": 1.5, "k": [1, 2]})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"x": 1.5, "k": [1, 2]}
    with core.RunLogger(tmp_path) as log:
        log.scalars(1, {"losses/a": 0.5})
        with log.progress(3, desc="t", bar_keys=["losses/a"]) as bar:
            bar.update(3, {"losses/a": 0.25, "hidden": 1.0})
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0


def test_image_grid_and_gif(tmp_path):
    imgs = np.linspace(0, 1, 5 * 4 * 3).reshape(5, 4, 3)
    grid = core.image_grid(imgs, cols=3, pad=1)
    assert grid.shape == (2 * 5 + 1, 3 * 4 + 1, 1) and grid.dtype == np.uint8
    assert grid[1, 1, 0] == 0 and grid[-1, -1, 0] == 255  # first pixel of image 0; padding is white
    core.save_png(grid, tmp_path / "g.png", scale=2)
    assert Image.open(tmp_path / "g.png").size == (2 * 13, 2 * 11)
    core.save_gif([grid, 255 - grid], tmp_path / "a.gif", fps=5)
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 2
    with pytest.raises(ValueError):
        core.save_gif([], tmp_path / "b.gif")


def test_describe_device_names_backend():
    desc = core.describe_device()
    assert desc.startswith(keras.backend.backend() + " on ")
    assert ("GPU" in desc) == core.gpu_available()


def test_seed_everything_switches_tensorflow_to_deterministic_kernels():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA needs no switch on the CPU")
    from tensorflow.python.framework import config  # the public API can switch it on, not read it

    core.seed_everything(0)
    assert config.is_op_determinism_enabled()
