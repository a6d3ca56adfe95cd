"""Image modes: MNIST from IDX files and a folder of pictures train and write grids, a GIF and samples.npy."""

import json

import numpy as np
import pytest
from PIL import Image

import core
from examples import gan, gan_data


def test_mnist_run_writes_grids_gif_and_samples(tmp_path, mnist_dir):
    out = tmp_path / "mnist"
    cfg = gan.Config(
        dataset="mnist", data_dir=str(mnist_dir), steps=4, batch_size=16, num_samples=20, quality=False, out=str(out)
    )
    cfg.validate()
    summary = gan.train(cfg)
    assert summary["dataset"] == "mnist" and summary["steps"] == 4 and summary["train_seconds"] > 0
    samples = np.load(out / "samples.npy")
    assert samples.shape == (20, 28, 28, 1) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert len(list((out / "grids").glob("*.png"))) == 1
    assert (out / "grids.gif").exists() and (out / "samples.png").exists()
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


def test_folder_run_one_grid_per_epoch_and_resume(tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(pics / f"{i}.png")
    (pics / "corrupt.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    out = tmp_path / "run"
    common = dict(dataset="folder", data_dir=str(pics), image_size=8, batch_size=8, num_samples=5, out=str(out))
    summary = gan.train(gan.Config(epochs=2, **common))
    assert summary["steps"] == 4  # 20 // 8 = 2 batches per epoch
    assert len(list((out / "grids").glob("epoch_*.png"))) == 2
    with Image.open(out / "grids.gif") as gif:
        assert gif.n_frames == 2
    assert np.load(out / "samples.npy").shape == (5, 8, 8, 3)
    summary = gan.train(gan.Config(epochs=3, resume=True, **common))
    assert summary["steps"] == 6
    assert len(list((out / "grids").glob("epoch_*.png"))) == 3
    # A fresh run in the same folder is refused (it would replace the finished run), and nothing is touched.
    with pytest.raises(core.UsageError, match="holds an earlier run .* --resume"):
        gan.train(gan.Config(epochs=1, **common))
    assert len(list((out / "grids").glob("epoch_*.png"))) == 3
    # Grids left by a run that never saved a checkpoint or summary do not join a fresh run's GIF.
    (out / "checkpoint.npz").unlink()
    (out / "summary.json").unlink()
    gan.train(gan.Config(epochs=1, **common))
    with Image.open(out / "grids.gif") as gif:
        assert gif.n_frames == 1


@pytest.mark.parametrize("use_tf", [True, False], ids=["tf.data", "numpy"])
def test_image_batches_pipeline_scales_and_drops_the_remainder(use_tf):
    if use_tf:
        pytest.importorskip("tensorflow")  # a JAX-only install has no tf.data
    images = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1) * 6
    batches = [np.asarray(b) for b in gan_data.image_batches(images, 4, seed=0, use_tf=use_tf)]
    assert [b.shape for b in batches] == [(4, 2, 2, 1)] * 2
    got = np.concatenate(batches)
    assert got.dtype == np.float32 and got.min() >= -1.0 and got.max() <= 1.0
    # A permutation of 8 of the 10 images, each scaled to [-1, 1].
    originals = {tuple(img.ravel()) for img in images.astype("float32") / 127.5 - 1.0}
    assert all(tuple(b.ravel()) in originals for b in got)
    assert len({tuple(b.ravel()) for b in got}) == 8
    again = np.concatenate([np.asarray(b) for b in gan_data.image_batches(images, 4, seed=0, use_tf=use_tf)])
    np.testing.assert_array_equal(got, again)
    skipped = [np.asarray(b) for b in gan_data.image_batches(images, 4, seed=0, skip=1, use_tf=use_tf)]
    np.testing.assert_array_equal(np.concatenate(skipped), got[4:])


def test_classifier_quality_tells_real_digits_from_noise(mnist_dir):
    x, y = gan_data.load_mnist_dir(mnist_dir)
    x, y = x[:4000], y[:4000]
    real = x[-500:].astype("float32") / 255.0
    noise = np.random.default_rng(0).uniform(size=real.shape).astype("float32")
    good = gan.classifier_quality(x, y, real, seed=0)
    bad = gan.classifier_quality(x, y, noise, seed=0)
    assert good["classifier_accuracy"] > 0.8
    assert good["classes_covered"] == 10 and good["class_kl"] < 0.2
    assert good["frechet_distance"] < 0.2 * bad["frechet_distance"]


@pytest.mark.parametrize("size", [28, 32])
def test_conv_models_shapes(size):
    g = gan.conv_generator(64, size, 3)
    d = gan.conv_discriminator(size, 6)
    assert g.output_shape == (None, size, size, 3)
    assert d.output_shape == (None, 1)
