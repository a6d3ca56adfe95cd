"""core.scan: a loop inside a compiled step whose body draws noise and assigns variables, on both backends."""

import keras
import numpy as np
import pytest
from keras import ops

import core


def _run(mode: str, fused: bool):
    gen = keras.random.SeedGenerator(3)
    counter = keras.Variable(0.0, trainable=False)
    w = keras.Variable(np.ones(3, "float32"))

    def prepare(batch):
        def body(carry, x):
            noise = keras.random.normal((3,), seed=gen)  # assigns the generator's state every iteration
            counter.assign(counter + 1.0)
            return carry + noise * x, noise

        total, noises = core.scan(body, ops.zeros(3), ops.arange(1.0, 6.0))
        return {"total": total, "noises": noises}

    def loss(batch):
        return ops.sum(w * batch["total"]) + 0.0 * ops.sum(batch["noises"])

    step = core.make_step([core.UpdateGroup("w", loss, [w], keras.optimizers.SGD(0.1))], mode=mode, prepare_fn=prepare)
    if fused:
        logs = step.train_steps(num_steps=2)["w/loss"]
    else:
        logs = np.array([step.train_step()["w/loss"] for _ in range(2)])
    return (
        np.asarray(logs),
        ops.convert_to_numpy(w),
        float(ops.convert_to_numpy(counter)),
        ops.convert_to_numpy(gen.state),
    )


@pytest.mark.parametrize("mode", ["graph", "xla"])
@pytest.mark.parametrize("fused", [False, True], ids=["call-by-call", "fused"])
def test_scan_body_assigns_and_draws_like_eager(mode, fused):
    eager = _run("eager", fused=False)
    got = _run(mode, fused)
    assert got[2] == eager[2] == 10.0  # 5 iterations x 2 steps, every assign kept
    np.testing.assert_array_equal(got[3], eager[3])  # the generator advanced exactly as eagerly
    # TensorFlow's XLA draws other floats from the same seeds than its graphs do: compare XLA with itself.
    ref = _run(mode, fused=False) if mode == "xla" and keras.backend.backend() == "tensorflow" else eager
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-5)
    # Each iteration drew fresh noise: the two steps' losses differ and the weights moved.
    assert ref[0][0] != ref[0][1] and not np.allclose(ref[1], 1.0)


def test_scan_outside_a_step_is_keras_scan():
    carry, ys = core.scan(lambda c, x: (c + x, c), 0.0, ops.arange(4.0))
    assert float(carry) == 6.0
    np.testing.assert_array_equal(ops.convert_to_numpy(ys), [0.0, 0.0, 1.0, 3.0])
