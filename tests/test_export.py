"""Trained networks leave as .keras files: written at every checkpoint and at the end, atomically, and
``keras.saving.load_model`` reproduces their outputs, on this backend and on the other one."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO

import core

OTHER = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
LOAD_ELSEWHERE = """
import json, sys
import numpy as np
import keras
x = np.load(sys.argv[2])
print(json.dumps(np.asarray(keras.saving.load_model(sys.argv[1])(x)).tolist()))
"""


def outputs_on(backend: str, path, x: np.ndarray, tmp_path) -> np.ndarray:
    """``load_model(path)(x)`` in a fresh process on ``backend``."""
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run(
        [sys.executable, "-c", LOAD_ELSEWHERE, str(path), str(tmp_path / "x.npy")],
        capture_output=True, text=True, env=env, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return np.asarray(json.loads(res.stdout.strip().splitlines()[-1]), "float32")


def assert_reproduces(model, path, x, tmp_path, other_backend: bool = True) -> None:
    expected = np.asarray(keras.ops.convert_to_numpy(model(x)))
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(path)(x)), expected, rtol=1e-6, atol=1e-6)
    if other_backend and importlib.util.find_spec(OTHER) is not None:
        np.testing.assert_allclose(outputs_on(OTHER, path, x, tmp_path), expected, rtol=1e-5, atol=1e-5)


def test_save_keras_is_atomic_and_refuses_other_suffixes(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    core.save_keras(model, tmp_path / "m.keras")
    before = (tmp_path / "m.keras").read_bytes()

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", crash)
    with pytest.raises(OSError):
        core.save_keras(model, tmp_path / "m.keras")
    assert (tmp_path / "m.keras").read_bytes() == before and not list(tmp_path.glob(".*"))
    with pytest.raises(ValueError, match="ends in .keras"):
        core.save_keras(model, tmp_path / "m.h5")


def test_sum_writes_its_model_and_it_loads_on_both_backends(tmp_path):
    from examples import sum as program

    program.train(program.Config(epochs=3, out=str(tmp_path)))
    path = tmp_path / "model.keras"
    assert path.exists()
    x = np.array([[1.0, 2.0], [3.5, -4.0], [8.0, 8.0]], "float32")
    loaded = keras.saving.load_model(path)
    expected = np.array(json.loads((tmp_path / "summary.json").read_text())["kernel"]) @ x.T
    np.testing.assert_allclose(np.asarray(loaded(x))[:, 0] - expected, loaded.layers[-1].bias.numpy()[0], rtol=1e-5)
    assert_reproduces(loaded, path, x, tmp_path)


def test_a_run_exports_at_each_checkpoint_what_the_function_builds_then(tmp_path):
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    built = []

    def with_normalisation():  # what a policy with running observation statistics exports
        mean = np.full(3, len(built), "float32")
        built.append(mean)
        return keras.Sequential([keras.Input((3,)), keras.layers.Normalization(mean=mean, variance=np.ones(3)), dense])

    config = core.RunConfig(out=str(tmp_path))
    with core.Run(config, {"d": dense}, total=4, checkpoint_every=2, export={"policy": with_normalisation}) as run:
        while run.running:
            run.advance(1)
    assert len(built) == 2  # step 2 and the end
    x = np.arange(6, dtype="float32").reshape(2, 3)
    expected = keras.ops.convert_to_numpy(dense(x - built[-1]))
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "policy.keras")(x), expected, rtol=1e-6)


def _networks_from_checkpoint(gan, out) -> dict:
    core.load_checkpoint(out / "checkpoint.npz", {"g": gan.G, "d": gan.D, "g_avg": gan.G_avg})
    return gan.networks()


def test_the_2d_gan_writes_g_d_and_the_average_and_each_loads_on_both_backends(tmp_path):
    from examples import gan_2d

    config = gan_2d.Config(steps=100, steps_per_call=50, ema_decay=0.9, num_samples=50, out=str(tmp_path))
    gan_2d.train(config)
    assert sorted(p.name for p in tmp_path.glob("*.keras")) == [
        "discriminator.keras", "generator.keras", "generator_average.keras"]  # fmt: skip
    networks = _networks_from_checkpoint(gan_2d.MixtureGAN(gan_2d.Config(ema_decay=0.9)), tmp_path)
    rng = np.random.default_rng(0)
    for name, model in networks.items():
        x = rng.normal(size=(5, model.inputs[0].shape[-1])).astype("float32")
        assert_reproduces(model, tmp_path / f"{name}.keras", x, tmp_path, other_backend=name != "discriminator")


def test_the_image_gan_writes_its_networks_and_they_load(tmp_path, mnist_dir):
    from examples import gan_images

    common = dict(dataset="mnist", data_dir=str(mnist_dir), quality=False, precision="float32")
    gan_images.train(gan_images.Config(steps=3, num_samples=4, out=str(tmp_path), **common))
    images, labels = gan_images.load_images(gan_images.Config(**common))
    networks = _networks_from_checkpoint(gan_images.ImageGAN(gan_images.Config(**common), images), tmp_path)
    z = np.random.default_rng(0).normal(size=(4, 64)).astype("float32")
    assert_reproduces(networks["generator_average"], tmp_path / "generator_average.keras", z, tmp_path)
    x = images[:4].astype("float32") / 127.5 - 1.0
    assert_reproduces(networks["discriminator"], tmp_path / "discriminator.keras", x, tmp_path, other_backend=False)
