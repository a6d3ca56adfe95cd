"""Mixed precision: the core's loss scaling (LossScaleOptimizer) against plain steps, and mixed GAN runs tracking
float32 ones."""

import dataclasses

import keras
import numpy as np
import pytest
from keras import ops

import core
from examples import gan_2d, gan_images

SPECS = {"x": core.InputSpec((None, 2)), "y": core.InputSpec((None, 1))}


def sse_step(optimizer, mode="graph"):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    def loss_fn(b):
        return ops.sum(ops.square(b["y"] - model(b["x"])))

    return model, core.make_step(
        [core.UpdateGroup("m", loss_fn, model.trainable_variables, optimizer)], SPECS, mode=mode
    )


def data(n, scale=1.0):
    rng = np.random.default_rng(0)
    x = (scale * rng.normal(size=(n, 4, 2))).astype("float32")
    return {"x": x, "y": (x.sum(-1, keepdims=True) + 0.5).astype("float32")}


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_loss_scaled_steps_equal_plain_steps_and_log_unscaled_norms(mode):
    plain, step_a = sse_step(keras.optimizers.SGD(0.01), mode)
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01), initial_scale=2.0**10, dynamic_growth_steps=2)
    scaled, step_b = sse_step(lso, mode)
    d = data(5)
    logs_a = step_a.train_steps(d)
    logs_b = step_b.train_steps(d)
    np.testing.assert_allclose(logs_b["m/grad_norm"], logs_a["m/grad_norm"], rtol=1e-5)
    np.testing.assert_allclose(logs_b["m/loss"], logs_a["m/loss"], rtol=1e-5)
    for a, b in zip(plain.weights, scaled.weights):
        np.testing.assert_allclose(ops.convert_to_numpy(b), ops.convert_to_numpy(a), rtol=1e-5, atol=1e-6)
    # Two finite steps in a row double the scale: 2^10 for steps 1-2, 2^11 for 3-4, 2^12 for step 5.
    np.testing.assert_array_equal(logs_b["m/loss_scale"], [2.0**10] * 2 + [2.0**11] * 2 + [2.0**12])
    assert float(ops.convert_to_numpy(lso.dynamic_scale)) == 2.0**12
    assert int(ops.convert_to_numpy(lso.iterations)) == 5 and not np.any(logs_b["m/skipped"])


def test_overflowing_scale_skips_the_update_and_halves_the_scale():
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.1), initial_scale=2.0**127)
    model, step = sse_step(lso)
    before = [ops.convert_to_numpy(w) for w in model.weights]
    logs = step.train_step({k: v[0] for k, v in data(1, scale=100.0).items()})  # loss * 2^127 overflows float32
    assert logs["m/skipped"] == 1.0 and np.isfinite(logs["m/grad_norm"]) and np.isfinite(logs["m/loss"])
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(ops.convert_to_numpy(w), b)
    assert int(ops.convert_to_numpy(lso.iterations)) == 0  # Adam's state is put back too
    assert float(ops.convert_to_numpy(lso.dynamic_scale)) == 2.0**126


def _losses(precision, steps=300):
    cfg = gan_2d.Config(steps=steps, lr_decay=1.0, steps_per_call=100)
    core.seed_everything(0)
    model = gan_2d.MixtureGAN(cfg, precision=precision)  # not a flag: the 2D program trains in float32
    calls = [model.step.train_steps(num_steps=100) for _ in range(steps // 100)]
    return {k: np.concatenate([c[k] for c in calls]) for k in ("d/loss", "g/loss")}, model


# Measured on CPU, seed 0, 300 steps (TF / JAX): 50-step means of both losses differ from float32 by at most
# 0.006 / 0.0008 (bfloat16) and 0.006 / 0.0025 (float16); the bar is 5x the worst of those.
TOLERANCE = 0.03


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_2d_run_tracks_float32_losses(precision):
    reference, _ = _losses("float32")
    mixed, model = _losses(precision)
    for key in reference:
        assert np.all(np.isfinite(mixed[key]))
        means = lambda v: v.reshape(-1, 50).mean(1)  # noqa: E731
        np.testing.assert_allclose(means(mixed[key]), means(reference[key]), atol=TOLERANCE, err_msg=key)
    assert model.G.layers[0].compute_dtype == precision.split("_")[1]
    assert all(v.dtype == "float32" for v in model.G.weights)
    assert keras.config.dtype_policy().name == "float32"  # the policy applied to the GAN's networks only


def test_mixed_float16_image_run(tmp_path):
    from PIL import Image

    pics = tmp_path / "pics"
    pics.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(pics / f"{i}.png")
    cfg = gan_images.Config(
        dataset="folder",
        data_dir=str(pics),
        image_size=8,
        channels=1,
        batch_size=8,
        epochs=2,
        num_samples=4,
        precision="mixed_float16",
        out=str(tmp_path / "run"),
    )
    summary = gan_images.train(cfg)
    assert summary["steps"] == 4
    assert np.all(np.isfinite(np.load(tmp_path / "run" / "samples.npy")))


def test_auto_precision_follows_native_bfloat16_and_sets_the_epochs(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(core, "native_bfloat16", lambda native=native: native)
        config = gan_images.Config(dataset="mnist")
        expected = ("mixed_bfloat16", 22) if native else ("float32", 18)
        assert (config.compute_precision(), config.epoch_budget()) == expected
        assert gan_2d.MixtureGAN.precision == "float32"  # 2D: always float32 (no --precision flag)
        assert "precision" not in {f.name for f in dataclasses.fields(gan_2d.Config)}
        assert gan_images.Config(dataset="mnist", precision="float32", epochs=3).epoch_budget() == 3


def test_native_bfloat16_on_the_cpu_reads_the_cpu_flags():
    if core.gpu_available():
        pytest.skip("a GPU decides by its compute capability")
    backend = core.backends.get_backend()
    assert not backend.native_bfloat16(frozenset({"avx2", "fma"}))
    expected = keras.backend.backend() == "tensorflow"  # oneDNN uses AVX512_BF16 / AMX; XLA's CPU does not
    assert backend.native_bfloat16(frozenset({"avx2", "avx512_bf16"})) == expected
    assert backend.native_bfloat16(frozenset({"amx_bf16"})) == expected
    assert isinstance(core.native_bfloat16(), bool)
