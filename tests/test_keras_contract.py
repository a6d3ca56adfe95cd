"""What core/backends/jax.py relies on in how Keras drives a keras.StatelessScope (checked on Keras 3.15.1).

If one of these fails after a Keras upgrade, the JAX backend's discovery pass and write-back
can no longer be trusted: fix core/backends/jax.py's _RecordingScope before anything else.
"""

import numpy as np
import pytest

pytest.importorskip("jax")

import keras

from core.backends.jax import _RecordingScope


def test_a_read_inside_the_scope_is_recorded_and_answered_from_the_scope():
    v = keras.Variable(np.zeros(3, "float32"))
    scope = _RecordingScope({id(v): keras.ops.ones(3)})
    with scope:
        read = keras.ops.convert_to_numpy(v.value)
        through_ops = keras.ops.convert_to_numpy(keras.ops.add(v, 1.0))
    assert id(v) in scope.touched, "Keras no longer asks StatelessScope.get_current_value on a read"
    np.testing.assert_array_equal(read, np.ones(3))
    np.testing.assert_array_equal(through_ops, np.full(3, 2.0))


def test_an_assign_inside_the_scope_is_recorded_and_not_applied_to_the_variable():
    v = keras.Variable(np.zeros(3, "float32"))
    scope = _RecordingScope()
    with scope:
        v.assign(np.full(3, 2.0, "float32"))
        v.assign_add(np.ones(3, "float32"))
        after = keras.ops.convert_to_numpy(v.value)
    assert id(v) in scope.written, "Keras no longer routes an assign through StatelessScope.add_update"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(scope.values[id(v)]), np.full(3, 3.0))
    np.testing.assert_array_equal(after, np.full(3, 3.0))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(v.value), np.zeros(3), "the assign reached the variable")


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="TensorFlow's optimizers update variables their own way")
def test_a_layer_and_an_optimizer_inside_the_scope_touch_only_the_scope():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    opt = keras.optimizers.SGD(0.5)
    opt.build(layer.trainable_variables)
    before = [keras.ops.convert_to_numpy(v.value).copy() for v in layer.trainable_variables]
    scope = _RecordingScope()
    with scope:
        layer(np.ones((1, 3), "float32"))
        opt.apply([keras.ops.ones(v.shape) for v in layer.trainable_variables], layer.trainable_variables)
    assert {id(v) for v in layer.trainable_variables} <= set(scope.touched)
    assert {id(v) for v in layer.trainable_variables} <= set(scope.written)
    for v, b in zip(layer.trainable_variables, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v.value), b)
