"""The class-conditional image GAN: labels reach both networks, the pipeline keeps image-label pairs, resumes exact."""

import json

import keras
import numpy as np
import pytest
from conftest import gan_resume_pair
from keras import ops
from PIL import Image

from examples import gan_data, gan_images


def test_projection_discriminator_adds_the_label_embedding_times_the_features():
    d = gan_images.conv_discriminator(8, 1, classes=3)
    embedding = next(layer for layer in d.layers if isinstance(layer, keras.layers.Embedding))
    table = np.random.default_rng(0).normal(size=embedding.embeddings.shape).astype("float32")
    embedding.embeddings.assign(table)
    flatten = next(layer for layer in d.layers if isinstance(layer, keras.layers.Flatten))
    dense = next(layer for layer in d.layers if isinstance(layer, keras.layers.Dense))
    x = np.random.default_rng(1).uniform(-1, 1, (4, 8, 8, 1)).astype("float32")
    y = np.array([0, 2, 1, 2], dtype="int32")
    h = ops.convert_to_numpy(keras.Model(d.inputs[0], flatten.output)(x))
    w, b = (ops.convert_to_numpy(v) for v in dense.weights)
    expected = h @ w + b + np.sum(table[y] * h, axis=1, keepdims=True)
    np.testing.assert_allclose(ops.convert_to_numpy(d([x, y])), expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def digits(mnist_dir):
    images, labels = gan_data.load_mnist(str(mnist_dir))
    return images[:200], labels[:200]


def _model(digits, **kw):
    cfg = gan_images.Config(batch_size=8, precision="float32", augment_shift=0, **{"conditional": True, **kw})
    return gan_images.ImageGAN(cfg, digits[0], labels=digits[1])


def test_the_batch_labels_drive_both_networks(digits):
    model = _model(digits)
    assert model.classes == 10
    idx = np.arange(3, 11, dtype="int32")
    np.testing.assert_array_equal(ops.convert_to_numpy(model.batch_labels({"idx": idx})), digits[1][idx])
    z = np.random.default_rng(0).standard_normal((2, model.z_dim)).astype("float32")
    one_hot = ops.convert_to_numpy(model.g_input(z, np.array([3, 7], "int32")))
    np.testing.assert_array_equal(one_hot[:, model.z_dim :], np.eye(10)[[3, 7]])
    same_z = np.repeat(z[:1], 2, axis=0)
    a, b = model.sample(same_z, np.array([1, 8], "int32"))
    assert np.abs(a - b).max() > 0  # the label changes the picture
    with pytest.raises(ValueError, match="one label per noise row"):
        model.sample(z)
    with pytest.raises(ValueError, match="one label per image"):
        gan_images.ImageGAN(model.config, digits[0])


def test_unconditional_mnist_samples_from_noise_alone(digits):
    model = _model(digits, conditional=False)
    assert model.classes == 0 and model.draw_labels(5, 0) is None
    assert model.sample(np.zeros((2, model.z_dim), "float32")).shape == (2, 28, 28, 1)


def test_drawn_labels_follow_the_data_class_proportions(digits):
    model = _model(digits)
    drawn = model.draw_labels(20000, seed=3)
    expected = np.bincount(digits[1], minlength=10) / len(digits[1])
    np.testing.assert_allclose(np.bincount(drawn, minlength=10) / len(drawn), expected, atol=0.01)
    np.testing.assert_array_equal(drawn, model.draw_labels(20000, seed=3))


@pytest.mark.parametrize("use_tf", [True, False], ids=["tf.data", "numpy"])
def test_image_batches_keep_each_label_with_its_image(use_tf):
    pytest.importorskip("tensorflow") if use_tf else None
    images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1)
    labels = (np.arange(40) * 7 % 10).astype(np.uint8)
    pairs = list(gan_data.image_batches(images, 8, seed=5, use_tf=use_tf, labels=labels))
    assert len(pairs) == 5
    for x, y in pairs:
        index = np.round((np.asarray(x).ravel() + 1.0) * 127.5).astype(int)
        np.testing.assert_array_equal(np.asarray(y), labels[index])
        assert np.asarray(y).dtype == np.int32


def _write_mnist(folder, images, labels):
    """A small IDX split (the loader reads every *-images-idx3-ubyte with its labels)."""
    folder.mkdir()
    n = len(images)
    (folder / "t10k-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3]) + np.array([n, 28, 28], ">i4").tobytes() + images.reshape(n, -1).tobytes()
    )
    (folder / "t10k-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + np.array([n], ">i4").tobytes() + labels.tobytes()
    )
    return folder


@pytest.mark.parametrize(
    "device_data_mb", [1024.0, pytest.param(0.0, marks=pytest.mark.slow)], ids=["on-device", "pipeline"]
)
def test_interrupted_conditional_run_resumes_to_the_same_weights(tmp_path, monkeypatch, digits, device_data_mb):
    data = _write_mnist(tmp_path / "mnist", digits[0][:24, ..., 0], digits[1][:24])  # 3 steps per epoch
    common = dict(dataset="mnist", data_dir=str(data), batch_size=8, num_samples=5, quality=False, epochs=2)
    common.update(conditional=True)
    common.update(steps_per_call=1, device_data_mb=device_data_mb, ema_decay=0.9)  # one compiled function per run
    a, b, steps = gan_resume_pair(tmp_path, monkeypatch, common, stop_after=2)
    assert steps == 6 and a.keys() == b.keys() and any("embedding" in k for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    grid = np.asarray(Image.open(tmp_path / "full" / "samples.png"))
    assert grid.shape[1] > grid.shape[0]  # 8 rows, one column per class
    assert json.loads((tmp_path / "full" / "summary.json").read_text())["steps"] == 6
