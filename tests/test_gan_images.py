"""Image modes: MNIST from IDX files and a folder of pictures train and write grids, a GIF and samples.npy."""

import json

import keras
import numpy as np
import pytest
from conftest import checkpoint_weights, gan_resume_pair, run_example
from PIL import Image

import core
from examples import gan_data, gan_images, gan_metrics


def test_mnist_run_writes_grids_gif_and_samples(tmp_path, mnist_dir):
    out = tmp_path / "mnist"
    cfg = gan_images.Config(
        dataset="mnist", data_dir=str(mnist_dir), steps=4, batch_size=16, num_samples=20, quality=False, out=str(out)
    )
    cfg.validate()
    summary = gan_images.train(cfg)
    assert summary["dataset"] == "mnist" and summary["steps"] == 4 and summary["train_seconds"] > 0
    samples = np.load(out / "samples.npy")
    assert samples.shape == (20, 28, 28, 1) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert len(list((out / "grids").glob("*.png"))) == 1
    assert (out / "grids.gif").exists() and (out / "samples.png").exists()
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


def test_mnist_summary_holds_generated_and_real_quality_figures(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setattr(gan_metrics, "CLASSIFIER_EPOCHS", 1)  # the figures' plumbing, not the classifier's accuracy
    monkeypatch.setattr(gan_metrics, "FRECHET_DRAWS", 3)
    out = tmp_path / "q"
    cfg = gan_images.Config(
        dataset="mnist",
        data_dir=str(mnist_dir),
        steps=3,
        num_samples=100,
        classifier_cache=str(tmp_path / "cache"),
        out=str(out),
    )
    gan_images.train(cfg)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("classifier_accuracy", "classes_covered", "class_kl", "confident_fraction", "frechet_distance"):
        assert key in summary and f"{key}_real" in summary or key == "classifier_accuracy"
    assert summary["classes_covered_real"] >= 8 and summary["frechet_distance_real"] < summary["frechet_distance"]
    # 3 draws of 1,000 generated digits (half the 2,000 held out) against as many real ones; 100 kept as samples.
    assert (summary["frechet_draws"], summary["frechet_samples"], summary["frechet_draws_real"]) == (3, 1000, 200)
    assert np.load(out / "samples.npy").shape == (100, 28, 28, 1)
    assert len(list((tmp_path / "cache").glob("quality_classifier_*.npz"))) == 1


def test_folder_run_one_grid_per_epoch_and_resume(tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(pics / f"{i}.png")
    (pics / "corrupt.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    out = tmp_path / "run"
    common = dict(dataset="folder", data_dir=str(pics), image_size=8, batch_size=8, num_samples=5, out=str(out))
    summary = gan_images.train(gan_images.Config(epochs=2, **common))
    assert summary["steps"] == 4  # 20 // 8 = 2 batches per epoch
    assert len(list((out / "grids").glob("epoch_*.png"))) == 2
    with Image.open(out / "grids.gif") as gif:
        assert gif.n_frames == 2
    assert np.load(out / "samples.npy").shape == (5, 8, 8, 3)
    summary = gan_images.train(gan_images.Config(epochs=3, resume=True, **common))
    assert summary["steps"] == 6
    assert len(list((out / "grids").glob("epoch_*.png"))) == 3
    # A fresh run in the same folder is refused (it would replace the finished run), and nothing is touched.
    with pytest.raises(core.UsageError, match="holds an earlier run .* --resume"):
        gan_images.train(gan_images.Config(epochs=1, **common))
    assert len(list((out / "grids").glob("epoch_*.png"))) == 3
    # Grids left by a run that never saved a checkpoint or summary do not join a fresh run's GIF.
    (out / "checkpoint.npz").unlink()
    (out / "summary.json").unlink()
    gan_images.train(gan_images.Config(epochs=1, **common))
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


def test_classifier_quality_tells_real_digits_from_noise_and_is_cached(mnist_dir, tmp_path):
    x, y = gan_data.load_mnist_dir(mnist_dir)
    x, y = x[:3000], y[:3000]
    real = x[-500:].astype("float32") / 255.0
    noise = np.random.default_rng(0).uniform(size=real.shape).astype("float32")
    readonly, cache = tmp_path / "missing" / "deeper", tmp_path / "cache"
    (tmp_path / "missing").write_bytes(b"")  # a file where a folder would be: not writable, skipped
    good = gan_metrics.classifier_quality(x, y, real, [readonly, cache], epochs=5)
    assert len(list(cache.glob("quality_classifier_*.npz"))) == 1
    bad = gan_metrics.classifier_quality(x, y, noise, [readonly, cache], epochs=5)  # loaded, not trained again
    assert bad["classifier_accuracy"] == good["classifier_accuracy"] > 0.85
    assert good["classes_covered"] == good["classes_covered_real"] == 10 and good["class_kl"] < 0.2
    assert abs(good["confident_fraction"] - good["confident_fraction_real"]) < 0.1
    assert good["frechet_distance"] < 0.2 * bad["frechet_distance"]
    assert bad["confident_fraction"] < 0.5 * good["confident_fraction_real"]
    # Another dataset (or recipe) is another key.
    other = gan_metrics.classifier_quality(x[:2000], y[:2000], real, [cache], epochs=1)
    assert len(list(cache.glob("quality_classifier_*.npz"))) == 2 and other["classifier_accuracy"] > 0.5


@pytest.mark.slow
def test_quality_classifier_reaches_98_percent_on_the_10000_digit_split(mnist_dir, tmp_path):
    x, y = gan_data.load_mnist_dir(mnist_dir)
    q = gan_metrics.classifier_quality(x, y, x[:100].astype("float32") / 255.0, [tmp_path])
    assert q["classifier_accuracy"] >= 0.98


def test_samples_are_normalised_by_their_batch_without_touching_the_moving_statistics():
    images = np.random.default_rng(0).integers(0, 256, size=(64, 28, 28, 1), dtype="uint8")
    model = gan_images.ImageGAN(gan_images.Config(batch_size=8, precision="float32"), images)
    g = model.sampler
    moving = [v.numpy().copy() for v in g.non_trainable_variables]
    z = np.random.default_rng(1).standard_normal((20, model.z_dim)).astype("float32")
    got = model.sample(z)
    for before, v in zip(moving, g.non_trainable_variables):
        np.testing.assert_array_equal(before, v.numpy())

    def expected(rows, training):
        return np.clip((keras.ops.convert_to_numpy(g(z[rows], training=training)) + 1) / 2, 0, 1)

    # Batches of 8; the last one (rows 16-19) filled up with rows 0-3, whose outputs are dropped.
    np.testing.assert_allclose(got[8:16], expected(np.arange(8, 16), True), atol=1e-5)
    np.testing.assert_allclose(got[16:], expected([16, 17, 18, 19, 0, 1, 2, 3], True)[:4], atol=1e-5)
    moving = model.sample(z, statistics="moving")
    np.testing.assert_allclose(moving, expected(np.arange(20), False), atol=1e-5)
    assert np.abs(got - moving).max() > 0.05


@pytest.mark.parametrize("size", [28, 32])
def test_conv_models_shapes(size):
    g = gan_images.conv_generator(64, size, 3)
    d = gan_images.conv_discriminator(size, 6)
    assert g.output_shape == (None, size, size, 3)
    assert d.output_shape == (None, 1)


def _pictures(tmp_path, n=40):
    pics = tmp_path / "pics"
    pics.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 1), dtype=np.uint8)[..., 0]).save(pics / f"{i}.png")
    return pics


def test_cli_smoke_run_of_the_image_program(tmp_path):
    pics, out = _pictures(tmp_path, 16), tmp_path / "run"
    argv = ["--dataset", "folder", "--data-dir", str(pics), "--image-size", "8", "--channels", "1"]
    argv += ["--batch-size", "8", "--epochs", "1", "--num-samples", "4", "--out", str(out)]
    res = run_example("gan_images", *argv)
    assert res.returncode == 0, res.stderr
    assert "stepping on" in res.stdout and "2 steps in" in res.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "folder" and summary["steps"] == 2 and summary["epochs"] == 1
    assert np.load(out / "samples.npy").shape == (4, 8, 8, 1)


@pytest.mark.parametrize(
    "device_data_mb", [pytest.param(1024.0, marks=pytest.mark.slow), 0.0], ids=["on-device", "pipeline"]
)  # on the device: tests/test_faults.py resumes the default (on-device) image run after SIGTERM
def test_interrupted_image_run_resumes_to_the_same_weights(tmp_path, monkeypatch, device_data_mb):
    pics = _pictures(tmp_path)  # 40 images, batch 8: 5 steps per epoch, calls of 2 steps cut at epoch ends
    common = dict(dataset="folder", data_dir=str(pics), image_size=8, channels=1, batch_size=8, num_samples=5)
    common.update(epochs=3, steps_per_call=2, device_data_mb=device_data_mb, ema_decay=0.9)
    a, b, steps = gan_resume_pair(tmp_path, monkeypatch, common, stop_after=4)
    assert steps == 15 and a.keys() == b.keys() and any(k.startswith("g_avg/") for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_fused_calls_on_the_device_equal_single_steps(tmp_path):
    pics = _pictures(tmp_path)
    common = dict(dataset="folder", data_dir=str(pics), image_size=8, channels=1, batch_size=8, num_samples=5)
    for spc in (1, 5):
        gan_images.train(gan_images.Config(epochs=2, steps_per_call=spc, out=str(tmp_path / f"spc{spc}"), **common))
    a, b = checkpoint_weights(tmp_path / "spc1"), checkpoint_weights(tmp_path / "spc5")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_batch_indices_follow_the_epoch_orders():
    idx = gan_data.batch_indices(10, 4, lambda e: 7 + e, first_step=1, num_steps=3)  # 2 batches per epoch
    first, second = gan_data.epoch_order(10, 7), gan_data.epoch_order(10, 8)
    np.testing.assert_array_equal(idx, np.stack([first[4:8], second[0:4], second[4:8]]))
    assert idx.dtype == np.int32
    # The NumPy pipeline draws the same batches from the same order.
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    batches = list(gan_data.image_batches(images, 4, seed=7, use_tf=False))
    np.testing.assert_array_equal(np.round((batches[1].ravel() + 1.0) * 127.5), first[4:8])


@pytest.mark.slow  # the benchmark script's own check (14 s); the MNIST run tests keep its metrics quick
def test_mnist_curve_benchmark_scores_both_generators_every_n_steps(tmp_path, mnist_dir, monkeypatch, capsys):
    from benchmarks import gan_mnist_curve

    monkeypatch.setattr(gan_metrics, "CLASSIFIER_EPOCHS", 1)
    monkeypatch.setattr(gan_metrics, "FRECHET_DRAWS", 1)
    cache = str(tmp_path / "cache")
    flags = ["--data-dir", str(mnist_dir), "--steps", "4", "--num-samples", "100", "--classifier-cache", cache]
    assert gan_mnist_curve.main(["--every", "2", "--", *flags]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [(line[1], line[4]) for line in lines] == [("2", "averaged"), ("2", "raw"), ("4", "averaged"), ("4", "raw")]
    assert all(float(line[6]) > 0 for line in lines)  # a Frechet distance of generated vs real digits
