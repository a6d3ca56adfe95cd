"""The step builder against plain references: hand-computed gradients, eager steps, naive loops."""

import keras
import numpy as np
import pytest
from keras import ops

import core

MODES = ["eager", "graph", "xla"]
SPECS = {"x": core.InputSpec((None, 2)), "y": core.InputSpec((None, 1))}


def dense(seed=0, kernel=None, bias=None):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    if kernel is not None:
        model.layers[0].kernel.assign(np.asarray(kernel, "float32"))
        model.layers[0].bias.assign(np.asarray(bias, "float32"))
    return model


def sse_group(model, opt, name="m", transform=None):
    def loss_fn(b):
        return ops.sum(ops.square(b["y"] - model(b["x"])))

    return core.UpdateGroup(name, loss_fn, model.trainable_variables, opt, transform)


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype("float32")
    return {"x": x, "y": (x.sum(1, keepdims=True) + 0.5).astype("float32")}


@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_hand_computed(mode):
    w, b0 = np.array([[0.3], [-0.2]], "float32"), np.array([0.1], "float32")
    model = dense(kernel=w, bias=b0)
    step = core.make_step([sse_group(model, keras.optimizers.SGD(0.1))], SPECS, mode=mode)
    bt = batch()
    grads = step.gradients(bt)["m"]
    residual = bt["x"] @ w + b0 - bt["y"]  # d/dpred of sum((y - pred)^2) is 2 * residual
    np.testing.assert_allclose(grads[0], 2 * bt["x"].T @ residual, rtol=1e-5)
    np.testing.assert_allclose(grads[1], 2 * residual.sum(0), rtol=1e-5)
    # gradients() applies nothing
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), w)


@pytest.mark.parametrize("mode", MODES)
def test_sgd_step_matches_hand_update_and_logs_norms(mode):
    w, b0 = np.array([[0.3], [-0.2]], "float32"), np.array([0.1], "float32")
    model = dense(kernel=w, bias=b0)
    step = core.make_step([sse_group(model, keras.optimizers.SGD(0.01))], SPECS, mode=mode)
    bt = batch()
    residual = bt["x"] @ w + b0 - bt["y"]
    gw, gb = 2 * bt["x"].T @ residual, 2 * residual.sum(0)
    logs = step.train_step(bt)
    np.testing.assert_allclose(logs["m/loss"], float((residual**2).sum()), rtol=1e-5)
    norm = np.sqrt((gw**2).sum() + (gb**2).sum())
    np.testing.assert_allclose(logs["m/grad_norm"], norm, rtol=1e-5)
    np.testing.assert_allclose(logs["m/grad_norm_applied"], norm, rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), w - 0.01 * gw, rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].bias.numpy(), b0 - 0.01 * gb, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_clip_by_global_norm_inside_step(mode):
    w, b0 = np.array([[0.3], [-0.2]], "float32"), np.array([0.1], "float32")
    model = dense(kernel=w, bias=b0)
    step = core.make_step(
        [sse_group(model, keras.optimizers.SGD(1.0), transform=core.clip_by_global_norm(0.5))], SPECS, mode=mode
    )
    bt = batch()
    residual = bt["x"] @ w + b0 - bt["y"]
    gw, gb = 2 * bt["x"].T @ residual, 2 * residual.sum(0)
    norm = np.sqrt((gw**2).sum() + (gb**2).sum())
    assert norm > 0.5
    logs = step.train_step(bt)
    np.testing.assert_allclose(logs["m/grad_norm"], norm, rtol=1e-5)
    np.testing.assert_allclose(logs["m/grad_norm_applied"], 0.5, rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), w - gw * 0.5 / norm, rtol=1e-5)


def test_transforms_on_plain_lists():
    g = [np.array([3.0, -4.0], "float32"), np.array([0.0], "float32")]
    out = core.clip_by_global_norm(1.0)(g)
    np.testing.assert_allclose(ops.convert_to_numpy(out[0]), [0.6, -0.8], rtol=1e-6)
    small = core.clip_by_global_norm(10.0)(g)
    np.testing.assert_allclose(ops.convert_to_numpy(small[0]), [3.0, -4.0])
    clipped = core.clip_by_value(-1.0, 2.0)(g)
    np.testing.assert_allclose(ops.convert_to_numpy(clipped[0]), [2.0, -1.0])
    both = core.chain(core.clip_by_value(-1.0, 2.0), core.clip_by_global_norm(1.0))(g)
    np.testing.assert_allclose(ops.convert_to_numpy(both[0]), np.array([2.0, -1.0]) / np.sqrt(5), rtol=1e-6)
    np.testing.assert_allclose(float(core.global_norm(g)), 5.0)
    with pytest.raises(ValueError):
        core.clip_by_global_norm(0.0)
    with pytest.raises(ValueError):
        core.clip_by_value(1.0, -1.0)


@pytest.mark.parametrize("mode", MODES)
def test_user_transform_runs_in_graph(mode):
    model = dense()
    halve = lambda grads: [g * 0.5 for g in grads]  # noqa: E731
    step = core.make_step([sse_group(model, keras.optimizers.SGD(0.0), transform=halve)], SPECS, mode=mode)
    logs = step.train_step(batch())
    np.testing.assert_allclose(logs["m/grad_norm_applied"], 0.5 * logs["m/grad_norm"], rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_second_group_sees_first_groups_new_weights(mode):
    """Group b's loss reads a's weight: its gradient must use a's value after a's update."""
    a = keras.Variable(np.float32(1.0), name="a")
    b = keras.Variable(np.float32(2.0), name="b")
    groups = [
        core.UpdateGroup("a", lambda _: ops.square(a - 3.0), [a], keras.optimizers.SGD(0.25)),
        core.UpdateGroup("b", lambda _: a * b, [b], keras.optimizers.SGD(0.1)),
    ]
    step = core.make_step(groups, mode=mode)
    logs = step.train_step()
    # a: grad 2*(1-3) = -4 -> a = 1 + 0.25*4 = 2.0; b: grad = new a = 2.0 -> b = 2 - 0.2
    assert float(a.numpy()) == pytest.approx(2.0)
    assert float(b.numpy()) == pytest.approx(1.8)
    assert logs["a/loss"] == pytest.approx(4.0)
    assert logs["b/loss"] == pytest.approx(4.0)  # a * b with the new a
    assert logs["b/grad_norm"] == pytest.approx(2.0)


def test_variable_in_two_groups_is_an_error():
    model = dense()
    g1 = sse_group(model, keras.optimizers.SGD(0.1), "first")
    g2 = sse_group(model, keras.optimizers.SGD(0.1), "second")
    with pytest.raises(core.StepDefinitionError, match=r"kernel.*first.*second"):
        core.make_step([g1, g2], SPECS)


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_unconnected_variables_are_an_error_naming_them(mode):
    model = dense()
    stray = keras.Variable(np.zeros((3,), "float32"), name="stray")
    group = sse_group(model, keras.optimizers.SGD(0.1))
    group.variables = [*model.trainable_variables, stray]
    step = core.make_step([group], SPECS, mode=mode)
    with pytest.raises(core.StepDefinitionError, match="stray"):
        step.train_step(batch())


def _fresh_run(mode, n_steps, fused, seed=3, unroll=1):
    model = dense(seed)
    step = core.make_step([sse_group(model, keras.optimizers.Adam(0.05))], SPECS, mode=mode, fused_unroll=unroll)
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n_steps, 4, 2)).astype("float32")
    ys = (xs.sum(-1, keepdims=True) + 0.5).astype("float32")
    if fused:
        losses = step.train_steps({"x": xs, "y": ys})["m/loss"]
    else:
        losses = np.array([step.train_step({"x": xs[i], "y": ys[i]})["m/loss"] for i in range(n_steps)])
    return losses, [v.numpy() for v in model.trainable_variables], step


@pytest.mark.parametrize("mode", MODES)
def test_fused_steps_equal_single_calls(mode):
    single, w_single, _ = _fresh_run(mode, 7, fused=False)
    fused, w_fused, step = _fresh_run(mode, 7, fused=True)
    assert fused.shape == (7,)
    np.testing.assert_allclose(fused, single, rtol=1e-5, atol=1e-6)
    for a, b in zip(w_fused, w_single):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unroll", [3, 7, 50])
def test_unrolled_fused_steps_equal_single_calls(unroll):
    single, w_single, _ = _fresh_run("graph", 7, fused=False)
    fused, w_fused, _ = _fresh_run("graph", 7, fused=True, unroll=unroll)  # 7 steps: 3 does not divide them
    np.testing.assert_allclose(fused, single, rtol=1e-5, atol=1e-6)
    for a, b in zip(w_fused, w_single):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unroll", [0, 2.5, None])
def test_fused_unroll_must_be_a_positive_int(unroll):
    with pytest.raises(core.StepDefinitionError, match="fused_unroll"):
        _fresh_run("graph", 2, fused=True, unroll=unroll)


def test_modes_agree():
    results = {mode: _fresh_run(mode, 5, fused=False) for mode in MODES}
    for mode in ("graph", "xla"):
        np.testing.assert_allclose(results[mode][0], results["eager"][0], rtol=1e-5, atol=1e-6)
        for a, b in zip(results[mode][1], results["eager"][1]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_same_seed_same_logs_and_different_seed_differs():
    a, _, _ = _fresh_run("graph", 4, fused=True, seed=11)
    b, _, _ = _fresh_run("graph", 4, fused=True, seed=11)
    c, _, _ = _fresh_run("graph", 4, fused=True, seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_no_retracing_for_same_shapes(mode):
    _, _, step = _fresh_run(mode, 3, fused=True)
    b = {"x": np.zeros((4, 2), "float32"), "y": np.zeros((4, 1), "float32")}
    for _ in range(3):
        step.train_steps({"x": np.zeros((3, 4, 2), "float32"), "y": np.zeros((3, 4, 1), "float32")})
        step.train_step(b)
        step.test_step(b)
        step.gradients(b)
    assert step.tracing_counts() == {"train_steps": 1, "train_step": 1, "test_step": 1, "gradients": 1}


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="jax.jit specialises on shapes by design")
@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_no_retracing_for_other_batch_sizes_on_tensorflow(mode):
    _, _, step = _fresh_run(mode, 3, fused=True)
    for n in (3, 5):  # a different step count or batch size is still the same signature
        step.train_steps({"x": np.zeros((n, 4, 2), "float32"), "y": np.zeros((n, 4, 1), "float32")})
    for size in (1, 4, 9):
        step.train_step({"x": np.zeros((size, 2), "float32"), "y": np.zeros((size, 1), "float32")})
    counts = step.tracing_counts()
    assert counts["train_steps"] == 1 and counts["train_step"] == 1


def test_random_losses_fused_without_inputs_match_single_calls():
    """A loss that samples its own data (a SeedGenerator in the step) fuses without inputs."""

    def run(fused):
        keras.utils.set_random_seed(5)
        seed = keras.random.SeedGenerator(7)
        w = keras.Variable(np.zeros((2,), "float32"), name="w")

        def loss_fn(_):
            x = keras.random.normal((8, 2), seed=seed)
            return ops.mean(ops.square(ops.sum(x * w, -1) - ops.sum(x, -1)))

        step = core.make_step([core.UpdateGroup("w", loss_fn, [w], keras.optimizers.SGD(0.1))])
        if fused:
            losses = step.train_steps(num_steps=6)["w/loss"]
        else:
            losses = np.array([step.train_step()["w/loss"] for _ in range(6)])
        return losses, w.numpy()

    (l1, w1), (l2, w2) = run(True), run(False)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    np.testing.assert_allclose(w1, w2, rtol=1e-5)
    assert l1[-1] < l1[0]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"x": np.zeros((4, 3), "float32"), "y": np.zeros((4, 1), "float32")}, r"'x'.*\(None, 2\).*\(4, 3\)"),
        ({"x": np.zeros((4, 2), "float64"), "y": np.zeros((4, 1), "float32")}, r"'x'.*float32.*float64"),
        ({"x": np.zeros((2,), "float32"), "y": np.zeros((4, 1), "float32")}, r"'x'.*\(2,\)"),
        ({"x": np.zeros((4, 2), "float32")}, r"missing \['y'\]"),
        ({"x": np.zeros((4, 2), "float32"), "y": np.zeros((4, 1), "float32"), "z": 1}, r"unexpected \['z'\]"),
    ],
)
def test_bad_batches_raise_before_running(bad, match):
    model = dense()
    before = [v.numpy() for v in model.trainable_variables]
    step = core.make_step([sse_group(model, keras.optimizers.SGD(0.1))], SPECS)
    with pytest.raises(core.InputError, match=match):
        step.train_step(bad)
    for v, b in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(v.numpy(), b)
    assert step.tracing_counts()["train_step"] == 0


def test_fused_input_needs_steps_axis():
    step = core.make_step([sse_group(dense(), keras.optimizers.SGD(0.1))], SPECS)
    with pytest.raises(core.InputError, match=r"'x'.*\(None, None, 2\)"):
        step.train_steps(batch())
    with pytest.raises(ValueError, match="mode"):
        core.make_step([sse_group(dense(), keras.optimizers.SGD(0.1))], SPECS, mode="fast")


@pytest.mark.parametrize("mode", MODES)
def test_symbolic_function_like_k_function(mode):
    """The article's form: symbolic inputs, outputs and updates, then train / test callables."""
    keras.utils.set_random_seed(0)
    x = keras.Input(shape=[2], name="x")
    y_true = keras.Input(shape=[1], name="y_true")
    model = keras.Model(x, keras.layers.Dense(1)(x))
    loss = ops.sum(ops.square(y_true - model(x)))
    train = core.function(
        [x, y_true],
        {"loss": loss},
        core.minimize(loss, model.trainable_variables, keras.optimizers.SGD(0.01)),
        mode=mode,
    )
    test = core.function([x, y_true], {"loss": loss}, mode=mode)
    bt = batch()
    expected = float(np.sum((bt["y"] - model.predict(bt["x"], verbose=0)) ** 2))
    assert test([bt["x"], bt["y"]])["loss"] == pytest.approx(expected, rel=1e-5)
    out = train([bt["x"], bt["y"]])  # the outputs are the values before the update
    assert out["loss"] == pytest.approx(expected, rel=1e-5)
    assert out["train/loss"] == pytest.approx(expected, rel=1e-5)
    assert test({"x": bt["x"], "y_true": bt["y"]})["loss"] < expected
    fused = train.fused([np.stack([bt["x"]] * 3), np.stack([bt["y"]] * 3)])
    assert fused["loss"].shape == (3,) and fused["loss"][2] < fused["loss"][0]
    with pytest.raises(core.InputError, match="'y_true'"):
        test([bt["x"], bt["x"]])


@pytest.mark.parametrize("mode", MODES)
def test_input_gradient_inside_a_loss_is_differentiable(mode):
    """A penalty on d f / d x (as R1 and WGAN-GP use) gets the right gradient for the weights."""
    w = keras.Variable(np.float32(1.5), name="w")
    x = np.array([1.0, -2.0, 3.0], "float32")

    def loss_fn(_):
        y, gx = core.input_gradient(lambda t: w * t**2, x)  # gx = 2 w x
        return ops.sum(gx**2), {"aux/y_sum": ops.sum(y)}

    step = core.make_step([core.UpdateGroup("w", loss_fn, [w], keras.optimizers.SGD(0.01))], mode=mode)
    grads = step.gradients()["w"]
    np.testing.assert_allclose(grads[0], 8 * 1.5 * np.sum(x**2), rtol=1e-5)  # d/dw sum(4 w^2 x^2)
    logs = step.train_step()
    assert logs["w/loss"] == pytest.approx(4 * 1.5**2 * np.sum(x**2), rel=1e-5)
    assert logs["aux/y_sum"] == pytest.approx(1.5 * np.sum(x**2), rel=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_make_forward_matches_model_and_draws_fresh_noise(mode):
    model = dense(kernel=[[2.0], [-1.0]], bias=[0.5])
    seed = keras.random.SeedGenerator(0)

    def fn(b):
        return {"y": model(b["x"]), "noise": keras.random.uniform((3,), seed=seed)}

    forward = core.make_forward(fn, {"x": core.InputSpec((None, 2))}, mode=mode)
    x = np.array([[1.0, 1.0], [0.0, 2.0]], "float32")
    first, second = forward({"x": x}), forward({"x": x[:1]})
    np.testing.assert_allclose(first["y"], [[1.5], [-1.5]], rtol=1e-6)
    np.testing.assert_allclose(second["y"], [[1.5]], rtol=1e-6)
    assert not np.allclose(first["noise"], second["noise"])  # the seed state advances between calls
    with pytest.raises(core.InputError, match=r"'x'.*\(None, 2\).*\(2, 3\)"):
        forward({"x": np.zeros((2, 3), "float32")})
    if mode != "eager":
        forward({"x": x[:1]})
        assert forward.tracing_count() == (1 if keras.backend.backend() == "tensorflow" else 2)


def test_symbolic_outputs_may_be_arrays_and_lists_are_cast():
    keras.utils.set_random_seed(0)
    x = keras.Input(shape=[2], name="x")
    y_true = keras.Input(shape=[1], name="y_true")
    model = keras.Model(x, keras.layers.Dense(1)(x))
    pred = model(x)
    loss = ops.sum(ops.square(y_true - pred))
    opt = keras.optimizers.SGD(0.0)
    train = core.function([x, y_true], {"pred": pred}, core.minimize(loss, model.trainable_variables, opt))
    out = train([[[1.0, 2.0], [3.0, 4.0]], [[3.0], [7.0]]])  # plain lists: no dtype to check, cast to float32
    assert out["pred"].shape == (2, 1)
    np.testing.assert_allclose(out["pred"], model.predict(np.array([[1.0, 2.0], [3.0, 4.0]]), verbose=0), rtol=1e-6)
    assert isinstance(out["train/loss"], float)


def test_fused_inputs_must_hold_the_same_number_of_steps():
    step = core.make_step([sse_group(dense(), keras.optimizers.SGD(0.1))], SPECS)
    bad = {"x": np.zeros((4, 3, 2), "float32"), "y": np.zeros((2, 3, 1), "float32")}
    with pytest.raises(core.InputError, match="different numbers of steps"):
        step.train_steps(bad)


def test_a_step_needs_groups_to_train_and_one_optimizer_per_group():
    test_only = core.make_step([], SPECS, outputs_fn=lambda b: {"s": ops.sum(b["x"])})
    assert test_only.test_step(batch())["s"] == pytest.approx(float(batch()["x"].sum()), rel=1e-6)
    with pytest.raises(core.StepDefinitionError, match="no update groups"):
        test_only.train_step(batch())
    a, b = dense(1), dense(2)
    shared = keras.optimizers.SGD(0.1)
    with pytest.raises(core.StepDefinitionError, match="share one optimizer"):
        core.make_step([sse_group(a, shared, "a"), sse_group(b, shared, "b")], SPECS)


@pytest.mark.parametrize("mode", MODES)
def test_prepare_fn_runs_once_per_step_before_the_groups(mode):
    """Shared targets: computed once, at the step's starting weights, seen by every group, no gradient."""
    a = keras.Variable(np.float32(1.0), name="a")
    b = keras.Variable(np.float32(2.0), name="b")
    calls = []

    def prepare(batch):
        calls.append(1)
        return {"target": a * 3.0}  # read before group "a" updates a

    groups = [
        core.UpdateGroup("a", lambda bt: ops.square(a - bt["target"]), [a], keras.optimizers.SGD(0.25)),
        core.UpdateGroup("b", lambda bt: ops.square(b - bt["target"]), [b], keras.optimizers.SGD(0.25)),
    ]
    step = core.make_step(groups, mode=mode, prepare_fn=prepare)
    logs = step.train_step()
    # target = 3 (not differentiated): a: grad 2 * (1 - 3) = -4 -> 2.0; b: grad 2 * (2 - 3) = -2 -> 2.5
    assert float(a.numpy()) == pytest.approx(2.0)
    assert float(b.numpy()) == pytest.approx(2.5)
    assert logs["b/loss"] == pytest.approx(1.0)
    if mode == "eager":  # (the JAX backend's discovery pass traces the first call once more)
        before = len(calls)
        step.train_step()
        assert len(calls) - before == 1
