"""core.ema after the update groups: a NumPy reference over several steps, single and fused calls, checkpoints."""

import keras
import numpy as np
import pytest
from keras import ops

import core

MODES = ["eager", "graph", "xla"]
SPECS = {"x": core.InputSpec((None, 2)), "y": core.InputSpec((None, 1))}


def setup(decay, mode, lr=0.05, warmup=False):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    avg = keras.models.clone_model(model)
    core.copy_weights(avg, model)

    def loss_fn(b):
        return ops.sum(ops.square(b["y"] - model(b["x"])))

    opt = keras.optimizers.SGD(lr)
    group = core.UpdateGroup("m", loss_fn, model.trainable_variables, opt)
    rule = core.ema(avg.weights, model.weights, decay, count=opt.iterations if warmup else None)
    step = core.make_step([group], SPECS, mode=mode, after_update=[rule])
    return model, avg, step


def batches(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4, 2)).astype("float32")
    return {"x": x, "y": (x.sum(-1, keepdims=True) + 0.5).astype("float32")}


def reference(w0, b0, data, decay, lr=0.05, warmup=False):
    """SGD on the sum of squares by hand, and the average after each step (k = 1, 2, ...)."""
    w, b = w0.astype("float64"), b0.astype("float64")
    aw, ab = w.copy(), b.copy()
    for k, (x, y) in enumerate(zip(data["x"], data["y"]), start=1):
        r = x @ w + b - y
        w, b = w - lr * 2 * x.T @ r, b - lr * 2 * r.sum(0)
        d = min(decay, (1 + k) / (10 + k)) if warmup else decay
        aw, ab = d * aw + (1 - d) * w, d * ab + (1 - d) * b
    return w, b, aw, ab


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fused", [False, True], ids=["train_step", "train_steps"])
@pytest.mark.parametrize("warmup", [False, True], ids=["constant", "warm-up"])
def test_ema_matches_numpy_over_several_steps(mode, fused, warmup):
    decay, n = 0.9, 6
    model, avg, step = setup(decay, mode, warmup=warmup)
    w0, b0 = (ops.convert_to_numpy(v) for v in model.weights)
    data = batches(n)
    if fused:
        step.train_steps({k: v[:3] for k, v in data.items()})  # two fused calls: the average carries across
        step.train_steps({k: v[3:] for k, v in data.items()})
    else:
        for i in range(n):
            step.train_step({k: v[i] for k, v in data.items()})
    w, b, aw, ab = reference(w0, b0, data, decay, warmup=warmup)
    np.testing.assert_allclose(ops.convert_to_numpy(model.weights[0]), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(avg.weights[0]), aw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(avg.weights[1]), ab, rtol=1e-5, atol=1e-6)
    assert not np.allclose(aw, w)  # the average lags: it is not a copy


def test_decay_zero_copies_and_one_freezes():
    model, avg, step = setup(0.0, "graph")
    step.train_steps(batches(3))
    for a, m in zip(avg.weights, model.weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(m))
    model, avg, step = setup(1.0, "graph")
    before = [ops.convert_to_numpy(a) for a in avg.weights]
    step.train_steps(batches(3))
    for a, b in zip(avg.weights, before):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), b)


def test_average_is_checkpointed_and_restored(tmp_path):
    model, avg, step = setup(0.5, "graph")
    step.train_steps(batches(3))
    saved = [ops.convert_to_numpy(a) for a in avg.weights]
    core.save_checkpoint(tmp_path / "c.npz", {"avg": avg})
    step.train_steps(batches(2, seed=1))
    core.load_checkpoint(tmp_path / "c.npz", {"avg": avg})
    for a, b in zip(avg.weights, saved):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), b)


def test_test_step_and_gradients_leave_the_average_alone():
    model, avg, step = setup(0.5, "graph")
    before = [ops.convert_to_numpy(a) for a in avg.weights]
    step.test_step({k: v[0] for k, v in batches(1).items()})
    step.gradients({k: v[0] for k, v in batches(1).items()})
    for a, b in zip(avg.weights, before):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), b)


def test_bad_rules_are_errors_naming_the_problem():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(core.AfterUpdateError, match="decay must be in"):
        core.ema(other.weights, model.weights, 1.5)
    with pytest.raises(core.AfterUpdateError, match="has shape"):
        core.ema(other.weights, model.weights, 0.9)
    with pytest.raises(core.AfterUpdateError, match="2 target variables but 1"):
        core.ema(model.weights, model.weights[:1], 0.9)
    with pytest.raises(core.AfterUpdateError, match="its own source"):
        core.ema(model.weights, model.weights, 0.9)
    group = core.UpdateGroup("m", lambda b: ops.sum(model(b["x"])), model.trainable_variables, keras.optimizers.SGD())
    clone = keras.models.clone_model(model)
    with pytest.raises(core.StepDefinitionError, match="update group 'm' trains"):
        core.make_step([group], SPECS, after_update=[core.ema(model.weights, clone.weights, 0.9)])
    with pytest.raises(core.StepDefinitionError, match="not callable"):
        core.make_step([group], SPECS, after_update=[0.9])


def test_jax_discovery_sees_the_averaged_variables_as_written():
    if keras.backend.backend() != "jax":
        pytest.skip("the discovery pass is the JAX backend's")
    model, avg, step = setup(0.5, "graph")
    d = batches(2)
    step.train_step({k: v[0] for k, v in d.items()})
    step.train_steps(d)
    for compiled in (step._compiled_step, step._compiled_steps):
        written = {id(v) for v in compiled.written}
        assert all(id(v) in written for v in avg.weights)
