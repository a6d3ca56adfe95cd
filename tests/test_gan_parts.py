"""GAN pieces against hand-computed references: losses, penalties (finite differences), packing, metrics, data."""

import gzip
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO
from keras import ops
from PIL import Image

import core
from examples import gan_data, gan_images, gan_metrics, gan_parts


def softplus(x):
    return math.log1p(math.exp(x))


# ----- losses -----


def test_ns_losses_match_hand_computed_values():
    real = ops.convert_to_tensor([1.0, -1.0])
    fake = ops.convert_to_tensor([0.0, 2.0])
    expected_d = (softplus(-1.0) + softplus(1.0)) / 2 + (softplus(0.0) + softplus(2.0)) / 2
    assert float(gan_parts.ns_d_loss(real, fake)) == pytest.approx(expected_d, rel=1e-6)
    # -log sigmoid(x) = softplus(-x)
    expected_g = (softplus(-0.0) + softplus(-2.0)) / 2
    assert float(gan_parts.ns_g_loss(fake)) == pytest.approx(expected_g, rel=1e-6)
    # A discriminator that cannot tell: both terms log 2.
    zeros = ops.zeros((5,))
    assert float(gan_parts.ns_d_loss(zeros, zeros)) == pytest.approx(2 * math.log(2), rel=1e-6)


def test_wgan_losses_match_hand_computed_values():
    real = ops.convert_to_tensor([3.0, 1.0])
    fake = ops.convert_to_tensor([-1.0, 0.0, 2.0])
    assert float(gan_parts.wgan_d_loss(real, fake)) == pytest.approx(1 / 3 - 2.0)
    assert float(gan_parts.wgan_g_loss(fake)) == pytest.approx(-1 / 3)


# ----- penalties against finite differences -----


def small_d(seed=0, in_dim=3):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((in_dim,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1, activation="tanh")]
    )


def fd_input_grads(d, x, eps=1e-3):
    """Central differences of D's output with respect to each input coordinate, in float64."""
    w = [np.asarray(v, "float64") for v in d.get_weights()]

    def f(xs):
        h = np.tanh(xs @ w[0] + w[1])
        return np.tanh(h @ w[2] + w[3])[:, 0]

    grads = np.zeros_like(x, dtype="float64")
    for j in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[j] = eps
        grads[:, j] = (f(x + e) - f(x - e)) / (2 * eps)
    return grads


def test_r1_penalty_matches_finite_differences():
    d = small_d()
    x = np.random.default_rng(0).normal(size=(6, 3))
    scores, r1 = gan_parts.r1_penalty(d, ops.convert_to_tensor(x.astype("float32")))
    expected = np.mean(np.sum(fd_input_grads(d, x) ** 2, axis=1))
    assert float(r1) == pytest.approx(expected, rel=1e-3)
    np.testing.assert_allclose(ops.convert_to_numpy(scores)[:, 0], np.asarray(d(x.astype("float32")))[:, 0], rtol=1e-5)


@pytest.mark.parametrize("rows, fraction, kept", [(8, 0.25, 2), (3, 0.25, 1), (5, 1.0, 5), (10, 0.5, 5)])
def test_head_rows_keeps_a_fraction_and_at_least_one(rows, fraction, kept):
    assert tuple(ops.shape(gan_parts.head_rows(ops.zeros((rows, 2)), fraction))) == (kept, 2)


def test_r1_fraction_estimates_r1_on_the_first_rows_and_scores_all(mnist_dir):
    images, _ = gan_data.load_mnist(str(mnist_dir))
    cfg = gan_images.Config(batch_size=8, r1_fraction=0.25, r1=2.0, augment_shift=0, precision="float32")
    model = gan_images.ImageGAN(cfg, images[:64])
    _, aux = model.d_loss({"idx": ops.convert_to_tensor(np.arange(8, dtype="int32"))})
    real = ops.convert_to_tensor(images[:8].astype("float32") / 127.5 - 1.0)
    _, expected = gan_parts.r1_penalty(model.d_scores, real[:2])
    assert float(aux["d/r1"]) == pytest.approx(float(expected), rel=1e-5)
    scores = ops.convert_to_numpy(model.d_scores(real))
    assert float(aux["d/real_score"]) == pytest.approx(float(scores.mean()), rel=1e-5)


def test_gradient_penalty_matches_finite_differences():
    d = small_d(1)
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    eps = rng.uniform(size=(5, 1))
    gp = gan_parts.gradient_penalty(d, *(ops.convert_to_tensor(a.astype("float32")) for a in (real, fake, eps)))
    g = fd_input_grads(d, eps * real + (1 - eps) * fake)
    expected = np.mean((np.sqrt(np.sum(g**2, axis=1)) - 1.0) ** 2)
    assert float(gp) == pytest.approx(expected, rel=1e-3)


def test_r1_penalty_is_differentiable_with_respect_to_the_weights():
    """The penalty's weight gradient (through the input gradient) against a finite difference on one weight."""
    d = small_d(2)
    x = ops.convert_to_tensor(np.random.default_rng(2).normal(size=(4, 3)).astype("float32"))
    opt = keras.optimizers.SGD(0.0)
    step = core.make_step([core.UpdateGroup("d", lambda b: gan_parts.r1_penalty(d, x)[1], d.trainable_variables, opt)])
    grad = step.gradients()["d"][0][0, 0]  # d r1 / d kernel[0, 0]
    kernel = d.trainable_variables[0]
    base = kernel.numpy().copy()
    values = []
    for sign in (1, -1):
        k = base.copy()
        k[0, 0] += sign * 1e-2
        kernel.assign(k)
        values.append(float(gan_parts.r1_penalty(d, x)[1]))
    kernel.assign(base)
    assert abs(grad) > 1e-4
    assert grad == pytest.approx((values[0] - values[1]) / 2e-2, rel=2e-2)


# ----- packing -----


def test_pack_vectors_and_images():
    x = np.arange(12, dtype="float32").reshape(6, 2)
    packed = ops.convert_to_numpy(gan_parts.pack(ops.convert_to_tensor(x), 2))
    np.testing.assert_array_equal(packed, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
    imgs = np.random.default_rng(0).normal(size=(4, 3, 3, 2)).astype("float32")
    p = ops.convert_to_numpy(gan_parts.pack(ops.convert_to_tensor(imgs), 2))
    assert p.shape == (2, 3, 3, 4)
    np.testing.assert_array_equal(p[1, ..., :2], imgs[2])
    np.testing.assert_array_equal(p[1, ..., 2:], imgs[3])


@pytest.mark.parametrize("module", ["gan_parts", "gan_metrics"])
def test_the_shared_modules_are_not_commands(module):
    argv = [sys.executable, "-m", f"examples.{module}"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith(f"examples.{module}: not a command")


# ----- 2D metrics on constructed sample sets -----


def test_mixtures_are_the_published_setups():
    ring, std = gan_metrics.mixture("ring")
    assert std == 0.01 and ring.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 1.0, rtol=1e-6)
    assert len({tuple(np.round(m, 5)) for m in ring}) == 8  # no duplicated mode
    grid, std = gan_metrics.mixture("grid")
    assert std == 0.05 and grid.shape == (25, 2)
    assert sorted(set(grid[:, 0].tolist())) == [-4, -2, 0, 2, 4]


def test_metrics_all_modes_covered_evenly():
    modes, std = gan_metrics.mixture("ring")
    rng = np.random.default_rng(0)
    samples = np.repeat(modes, 50, axis=0) + rng.uniform(-1, 1, size=(400, 2)) * std  # within sqrt(2) std
    m = gan_metrics.mode_metrics(samples, modes, std)
    assert m == {"modes_captured": 8, "num_modes": 8, "high_quality_fraction": 1.0, "reverse_kl": 0.0}


def test_metrics_one_mode():
    modes, std = gan_metrics.mixture("grid")
    samples = np.tile(modes[7], (100, 1))
    m = gan_metrics.mode_metrics(samples, modes, std)
    assert m["modes_captured"] == 1 and m["high_quality_fraction"] == 1.0
    assert m["reverse_kl"] == pytest.approx(math.log(25))


def test_metrics_off_mode_samples_are_not_high_quality():
    modes, std = gan_metrics.mixture("ring")
    # 3.5 std away from mode 0 (radially outwards): nearest mode is 0 but not high quality.
    off = np.tile(modes[0] * (1 + 3.5 * std), (30, 1))
    m = gan_metrics.mode_metrics(off, modes, std)
    assert m == {"modes_captured": 0, "num_modes": 8, "high_quality_fraction": 0.0, "reverse_kl": None}
    # Half on mode 0, a quarter on mode 1, a quarter off-mode: KL of (2/3, 1/3, 0, ...) against 1/8.
    mixed = np.concatenate([np.tile(modes[0], (20, 1)), np.tile(modes[1], (10, 1)), off[:10]])
    m = gan_metrics.mode_metrics(mixed, modes, std)
    assert m["modes_captured"] == 2
    assert m["high_quality_fraction"] == pytest.approx(0.75)
    assert m["reverse_kl"] == pytest.approx(2 / 3 * math.log(2 / 3 * 8) + 1 / 3 * math.log(1 / 3 * 8))


def test_metrics_ignore_non_finite_samples():
    modes, std = gan_metrics.mixture("ring")
    samples = np.concatenate([modes, [[np.nan, 0.0], [np.inf, 1.0]]])
    m = gan_metrics.mode_metrics(samples, modes, std)
    assert m["modes_captured"] == 8 and m["high_quality_fraction"] == pytest.approx(0.8)


# ----- image quality figures -----


def test_frechet_distance_hand_computed():
    a = np.random.default_rng(0).normal(size=(500, 4))
    assert gan_metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0, -2.0])
    assert gan_metrics.frechet_distance(a, a + shift) == pytest.approx(9.0, rel=1e-6)
    # b = 2 (a - mean): cov_b = 4 cov_a, so FD = |mu_a|^2 + tr(cov_a) (1 + 4 - 2 * 2).
    b = 2 * (a - a.mean(0))
    expected = np.sum(a.mean(0) ** 2) + np.trace(np.cov(a, rowvar=False))
    assert gan_metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_over_splits_compares_equal_sized_draws_on_both_sides():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(70, 3)) + 1.0
    q = gan_metrics.frechet_over_splits(real, fake, draws=5, real_draws=8, seed=3)
    # 20 rows a side; the 70 generated rows hold 3 blocks of 20, so 3 of the 8 draws score them.
    assert (q["frechet_samples"], q["frechet_draws"], q["frechet_draws_real"]) == (20, 3, 8)
    order = np.random.default_rng(3)
    splits = [order.permutation(40) for _ in range(8)]
    fd = gan_metrics.frechet_distance
    gen = [fd(real[p[:20]], fake[20 * k : 20 * k + 20]) for k, p in enumerate(splits[:3])]
    ref = [fd(real[p[:20]], real[p[20:]]) for p in splits]
    assert q["frechet_distance"] == pytest.approx(np.mean(gen))
    assert q["frechet_distance_sd"] == pytest.approx(np.std(gen))
    assert q["frechet_distance_real"] == pytest.approx(np.mean(ref))
    assert q["frechet_distance_real_sd"] == pytest.approx(np.std(ref)) and q["frechet_distance_real_sd"] > 0
    # Fewer generated rows than half the real ones: one draw of that many on both sides.
    few = gan_metrics.frechet_over_splits(real, fake[:7], draws=5, real_draws=8)
    assert (few["frechet_samples"], few["frechet_draws"]) == (7, 1)


def test_frechet_over_splits_mean_is_steadier_than_one_draw():
    # Same distribution on both sides: with n rows against n on both, the two means agree to well within one
    # draw's spread (scoring all 4,000 generated rows against 200 real ones would not: a smaller bias).
    rng = np.random.default_rng(0)
    real, fake = rng.standard_t(4, size=(400, 8)), rng.standard_t(4, size=(4000, 8))
    q = gan_metrics.frechet_over_splits(real, fake, draws=20, real_draws=200)
    assert q["frechet_draws"] == 20 and q["frechet_distance_sd"] > 0
    assert abs(q["frechet_distance"] - q["frechet_distance_real"]) < 0.5 * q["frechet_distance_real_sd"]


def test_class_coverage():
    probs = np.zeros((10, 10))
    probs[:5, 3] = 1.0  # 5 confident threes
    probs[5:9, 4] = 0.95  # 4 confident fours
    probs[9] = 0.1  # one unsure sample
    c = gan_metrics.class_coverage(probs)
    assert c["classes_covered"] == 2
    assert c["confident_fraction"] == pytest.approx(0.9)
    assert c["class_kl"] == pytest.approx(5 / 9 * math.log(50 / 9) + 4 / 9 * math.log(40 / 9))


# ----- data loading -----


def test_mnist_idx_loading(mnist_dir):
    x, y = gan_data.load_mnist_dir(mnist_dir)
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.uint8
    assert y.shape == (10000,) and set(np.unique(y)) == set(range(10))
    assert y[:3].tolist() == [7, 2, 1]  # the first test digits of MNIST
    assert 30 < x.mean() < 40  # mostly black background


def test_idx_reader_rejects_wrong_files(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x09\x99" + b"\x00" * 20)
    with pytest.raises(core.UsageError, match="magic"):
        gan_data.read_idx(bad)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"junk")
    with pytest.raises(core.UsageError):
        gan_data.load_mnist_dir(tmp_path)
    with pytest.raises(core.UsageError, match="no MNIST files"):
        gan_data.load_mnist_dir(tmp_path / "..")


def test_folder_loading_skips_corrupt_files(tmp_path):
    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp_path / "red.png")
    Image.new("L", (10, 10), 128).save(tmp_path / "grey.jpg")
    (tmp_path / "sub").mkdir()
    Image.new("RGBA", (20, 20), (0, 0, 255, 255)).save(tmp_path / "sub" / "blue.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "notes.txt").write_text("not a picture")
    images, skipped = gan_data.load_folder(tmp_path, 16, 3)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    assert [p.name for p in skipped] == ["broken.png"]
    colours = sorted(tuple(int(c) for c in img[8, 8]) for img in images)
    assert colours == [(0, 0, 255), (128, 128, 128), (255, 0, 0)]
    grey, _ = gan_data.load_folder(tmp_path, 8, 1)
    assert grey.shape == (3, 8, 8, 1)


def test_folder_loading_empty_or_unreadable_is_a_usage_error(tmp_path):
    with pytest.raises(core.UsageError, match="no picture files"):
        gan_data.load_folder(tmp_path, 16, 3)
    (tmp_path / "a.png").write_bytes(b"nope")
    with pytest.raises(core.UsageError, match="none readable"):
        gan_data.load_folder(tmp_path, 16, 3)


# ----- the core addition the GAN uses: several updates of one group per step -----


def test_update_group_repeats_equals_repeated_steps():
    x = np.array([[1.0, 2.0], [0.5, -1.0]], "float32")
    y = np.array([[1.0], [2.0]], "float32")

    def run(repeats, calls):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        group = core.UpdateGroup(
            "m",
            lambda b: ops.mean(ops.square(model(ops.convert_to_tensor(x)) - y)),
            model.trainable_variables,
            keras.optimizers.SGD(0.1),
            repeats=repeats,
        )
        step = core.make_step([group])
        for _ in range(calls):
            step.train_step()
        return [w.copy() for w in model.get_weights()]

    for a, b in zip(run(3, 1), run(1, 3)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    with pytest.raises(core.StepDefinitionError, match="repeats"):
        core.make_step([core.UpdateGroup("m", lambda b: 0.0, [keras.Variable(1.0)], keras.optimizers.SGD(), None, 0)])


def _shifted(image, dy, dx, fill=-1.0):
    """NumPy reference: ``image`` moved down by dy and right by dx, the uncovered border set to ``fill``."""
    h, w = image.shape[:2]
    out = np.full_like(image, fill)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _find_shift(image, shifted, max_shift):
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            if np.allclose(_shifted(image, dy, dx), shifted, atol=1e-6):
                return dy, dx
    return None


def test_random_shift_moves_each_image_within_range_and_fills_background():
    x = np.random.default_rng(0).uniform(-1, 1, (64, 9, 7, 2)).astype("float32")  # not square: rows and columns
    out = ops.convert_to_numpy(gan_parts.random_shift(ops.convert_to_tensor(x), 2, keras.random.SeedGenerator(3)))
    shifts = [_find_shift(x[i], out[i], 2) for i in range(len(x))]
    assert None not in shifts  # every image is its own shift of the input, within +-2
    assert {dy for dy, _ in shifts} == {dx for _, dx in shifts} == set(range(-2, 3))  # a fresh draw per image


def test_random_shift_passes_gradients_back_through_the_same_shift():
    x = np.random.default_rng(1).uniform(-1, 1, (6, 8, 8, 1)).astype("float32")
    w = np.random.default_rng(2).normal(size=(6, 8, 8, 1)).astype("float32")
    seed = 7  # an integer seed draws the same shifts on every call

    def weighted(v):
        return ops.sum(gan_parts.random_shift(v, 3, seed) * w, axis=(1, 2, 3))

    out = ops.convert_to_numpy(gan_parts.random_shift(ops.convert_to_tensor(x), 3, seed))
    _, grad = core.input_gradient(weighted, ops.convert_to_tensor(x))
    grad = ops.convert_to_numpy(grad)
    for i in range(len(x)):
        dy, dx = _find_shift(x[i], out[i], 3)
        # d/dx of sum(w * shift(x)) is w shifted back, zero where the pixel left the picture
        np.testing.assert_allclose(grad[i], _shifted(w[i], -dy, -dx, fill=0.0), atol=1e-6)
