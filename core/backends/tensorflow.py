"""TensorFlow mechanics of a step: tapes, tf.function / XLA, fused loops, devices."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from core.backends import split_loss

NAME = "tensorflow"


def value_and_grad(loss_fn: Callable[[], Any], variables: Sequence[Any]) -> tuple[Any, dict, list]:
    """Run ``loss_fn()`` under a tape; return (loss, aux, grads) with None for unconnected."""
    with tf.GradientTape() as tape:
        loss, aux = split_loss(loss_fn())
    grads = tape.gradient(loss, list(variables))
    return loss, aux, grads


def input_gradient(fn: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
    """Value of ``fn(x)`` and the gradient of its sum with respect to the tensor ``x``.

    The inner tape is recorded by any outer tape, so a loss that uses this
    gradient (R1, WGAN-GP) is itself differentiable.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        total = tf.reduce_sum(y)
    return y, tape.gradient(total, x)


def compile_fn(fn: Callable, mode: str, input_signature: list | None) -> Callable:
    """Wrap a step function for ``mode`` in {"eager", "graph", "xla"}."""
    if mode == "eager":
        return fn
    # No autograph: the step is plain Python over groups with explicit tf.while_loop
    # fusion, and without it our own errors (unconnected variables) reach the user unwrapped.
    return tf.function(
        fn,
        autograph=False,
        input_signature=input_signature,
        jit_compile=(mode == "xla"),
        reduce_retracing=input_signature is None,
    )


def tracing_count(compiled: Callable) -> int | None:
    if hasattr(compiled, "experimental_get_tracing_count"):
        return compiled.experimental_get_tracing_count()
    return None


def tensor_spec(shape: Sequence[int | None], dtype: str) -> tf.TensorSpec:
    return tf.TensorSpec(shape=tuple(shape), dtype=tf.as_dtype(dtype))


def to_tensor(value: Any, dtype: str) -> tf.Tensor:
    return tf.convert_to_tensor(value, dtype=tf.as_dtype(dtype))


def to_numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def fused_loop(step_fn: Callable[[dict], dict], batches: dict, num_steps: Any) -> dict:
    """Run ``step_fn`` ``num_steps`` times over the leading axis of ``batches``, in one ``tf.while_loop``."""
    _, logs = scan(lambda carry, batch: (carry, step_fn(batch or {})), (), batches or None, length=num_steps)
    return logs


def scan(f: Callable, init: Any, xs: Any = None, length: Any = None, reverse: bool = False) -> tuple:
    """``keras.ops.scan`` without its TensorFlow limit (outputs shaped like the carry); the body may assign variables.

    The TensorArrays that collect the outputs need their structure, dtypes and shapes before the loop: in a
    graph a throwaway trace of the body shows them (measured on the PPO iteration: a third less compile time
    than running a first iteration outside the loop, which doubles the graph, at the same speed per call);
    eagerly, the first iteration runs outside the loop.
    """
    n = length if length is not None else tf.shape(tf.nest.flatten(xs)[0])[0]

    def x_at(i):
        return None if xs is None else tf.nest.map_structure(lambda a: a[i], xs)

    def call(carry, i):
        carry, y = f(carry, x_at(i))
        return carry, tf.nest.map_structure(tf.convert_to_tensor, y)

    if tf.executing_eagerly():  # eager mode: the first iteration shows the outputs' structure
        first = n - 1 if reverse else 0
        carry, y = call(init, first)
        arrays = [tf.TensorArray(v.dtype, size=n, element_shape=v.shape).write(first, v) for v in tf.nest.flatten(y)]
        start = 1
    else:  # in a graph: a throwaway trace shows the outputs; the loop body is the only copy in the graph
        init = tf.nest.map_structure(tf.convert_to_tensor, init)
        specs = tf.nest.map_structure(tf.TensorSpec.from_tensor, init)
        probe = tf.function(call, autograph=False).get_concrete_function(specs, tf.TensorSpec([], tf.int32))
        carry, y = init, probe.structured_outputs[1]
        arrays = [tf.TensorArray(v.dtype, size=n, element_shape=v.shape) for v in tf.nest.flatten(y)]
        start = 0

    def body(k, carry, arrays):
        i = n - 1 - k if reverse else k
        carry, y = call(carry, i)
        return k + 1, carry, [a.write(i, v) for a, v in zip(arrays, tf.nest.flatten(y))]

    _, carry, arrays = tf.while_loop(lambda k, *_: k < n, body, (tf.constant(start), carry, arrays))
    return carry, tf.nest.pack_sequence_as(y, [a.stack() for a in arrays])


def leading_dim(batches: dict) -> Any:
    first = next(iter(batches.values()))
    return tf.shape(first)[0]


def describe_device() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    names = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return "GPU: " + ", ".join(names)


def gpu_available() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def fast_entry(compiled: Callable, input_signature: list | None) -> Callable:
    """The cheapest way to call ``compiled`` with arguments that match ``input_signature``.

    A tf.function with a full signature has one concrete function; calling it directly
    skips the argument matching of ``tf.function.__call__`` (about 150 us a call on CPU).
    """
    if input_signature is None or not hasattr(compiled, "get_concrete_function"):
        return compiled
    return compiled.get_concrete_function(*input_signature)


def enable_compilation_cache(folder: Any) -> None:
    """tf.function graphs have no persistent cache: every run traces and optimises them anew."""
    return None
