"""TensorFlow mechanics of a step (:class:`core.backends.base.Backend`): tapes, tf.function / XLA, fused loops,
devices, tf.distribute."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from core.backends.base import Backend, DataParallelMechanics, check_port_free, device_count, split_loss
from core.errors import StepDefinitionError


class TensorFlowBackend(Backend):
    """TensorFlow: tapes, tf.function / XLA, fused tf.while_loop, tf.distribute."""

    name = "tensorflow"

    def value_and_grad(self, loss_fn: Callable[[], Any], variables: Sequence[Any]) -> tuple[Any, dict, list]:
        """Run ``loss_fn()`` under a tape; return (loss, aux, grads) with None for unconnected."""
        with tf.GradientTape() as tape:
            loss, aux = split_loss(loss_fn())
        grads = tape.gradient(loss, list(variables))
        return loss, aux, grads

    def input_gradient(self, fn: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
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

    def compile_fn(self, fn: Callable, mode: str, input_signature: list | None, parallel: Any = None) -> Callable:
        """Wrap a step function for ``mode`` in {"eager", "graph", "xla"}.

        A data-parallel step compiles as a graph in "xla" mode too: XLA does not compile ``strategy.run``.
        """
        if mode == "eager":
            return fn
        if parallel is not None:
            mode = "graph"
        # No autograph: the step is plain Python over groups with explicit tf.while_loop
        # fusion, and without it our own errors (unconnected variables) reach the user unwrapped.
        return tf.function(
            fn,
            autograph=False,
            input_signature=input_signature,
            jit_compile=(mode == "xla"),
            reduce_retracing=input_signature is None,
        )

    def compile_population(self, fn: Callable, mode: str, input_signature: list | None, population: Any) -> Callable:
        """The members one after another in one compiled loop: each iteration loads a member's values into the
        variables, runs ``fn`` on its slice of the inputs and stores the values back. TensorFlow has no
        vectorising map for code that assigns variables (``tf.vectorized_map`` needs a pure function; Keras
        layers and optimizers assign theirs), so the members share one graph and one call, not one kernel."""
        variables, stacked = population.variables, population.stacked

        def member(carry, i, args):
            for v, s in zip(variables, stacked):
                v.assign(s[i])
            out = fn(*(a if isinstance(a, int) else tf.nest.map_structure(lambda x: x[i], a) for a in args))
            for v, s in zip(variables, stacked):  # a scatter: XLA refuses a sliced assign at a computed index
                s.value.scatter_update(tf.IndexedSlices(tf.expand_dims(tf.convert_to_tensor(v), 0), tf.reshape(i, [1])))
            return carry, out

        def all_members(*args):
            return self.scan(lambda carry, i: member(carry, i, args), (), tf.range(population.size))[1]

        return self.compile_fn(all_members, mode, input_signature)

    def tracing_count(self, compiled: Callable) -> int | None:
        if hasattr(compiled, "experimental_get_tracing_count"):
            return compiled.experimental_get_tracing_count()
        return None

    def tensor_spec(self, shape: Sequence[int | None], dtype: str) -> tf.TensorSpec:
        return tf.TensorSpec(shape=tuple(shape), dtype=tf.as_dtype(dtype))

    def to_tensor(self, value: Any, dtype: str) -> tf.Tensor:
        return tf.convert_to_tensor(value, dtype=tf.as_dtype(dtype))

    def to_numpy(self, value: Any) -> np.ndarray:
        return value.numpy() if hasattr(value, "numpy") else np.asarray(value)

    def fused_loop(self, step_fn: Callable[[dict], dict], batches: dict, num_steps: Any, unroll: int = 1) -> dict:
        """Run ``step_fn`` ``num_steps`` times over the leading axis of ``batches``, in one ``tf.while_loop``.

        ``unroll`` is not used: TensorFlow's kernels run as fast inside a loop as outside one (measured on the
        image GAN step: 7.25 steps/s fused vs 7.13 one step per call).
        """
        _, logs = self.scan(lambda carry, batch: (carry, step_fn(batch or {})), (), batches or None, length=num_steps)
        return logs

    def scan(
        self, f: Callable, init: Any, xs: Any = None, length: Any = None, reverse: bool = False, unroll: int = 1
    ) -> tuple:
        """``keras.ops.scan`` without its TensorFlow limit (outputs shaped like the carry); the body may assign
        variables.

        The TensorArrays that collect the outputs need their structure, dtypes and shapes before the loop: in a
        graph the body is traced once as a concrete function, whose outputs show them and which the loop body then
        calls (tracing the body a second time inside the loop would double the tracing of every nested loop);
        eagerly, the first iteration runs outside the loop.
        """
        n = length if length is not None else tf.shape(tf.nest.flatten(xs)[0])[0]

        def x_at(i):
            return None if xs is None else tf.nest.map_structure(lambda a: a[i], xs)

        def call(carry, i):
            carry, y = f(carry, x_at(i))
            return carry, tf.nest.map_structure(tf.convert_to_tensor, y)

        step = call
        if tf.executing_eagerly():  # eager mode: the first iteration shows the outputs' structure
            first = n - 1 if reverse else 0
            carry, y = call(init, first)
            arrays = [
                tf.TensorArray(v.dtype, size=n, element_shape=v.shape).write(first, v) for v in tf.nest.flatten(y)
            ]
            start = 1
        else:  # in a graph: the body traced once as a function, which shows the outputs and is what the loop calls
            init = tf.nest.map_structure(tf.convert_to_tensor, init)
            specs = tf.nest.map_structure(tf.TensorSpec.from_tensor, init)
            step = tf.function(call, autograph=False).get_concrete_function(specs, tf.TensorSpec([], tf.int32))
            carry, y = init, step.structured_outputs[1]
            arrays = [tf.TensorArray(v.dtype, size=n, element_shape=v.shape) for v in tf.nest.flatten(y)]
            start = 0

        def body(k, carry, arrays):
            i = n - 1 - k if reverse else k
            carry, y = step(carry, i)
            return k + 1, carry, [a.write(i, v) for a, v in zip(arrays, tf.nest.flatten(y))]

        _, carry, arrays = tf.while_loop(lambda k, *_: k < n, body, (tf.constant(start), carry, arrays))
        return carry, tf.nest.pack_sequence_as(y, [a.stack() for a in arrays])

    def leading_dim(self, batches: dict) -> Any:
        first = next(iter(batches.values()))
        return tf.shape(first)[0]

    def describe_device(self) -> str:
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return "CPU"
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return "GPU: " + ", ".join(names)

    def gpu_available(self) -> bool:
        return bool(tf.config.list_physical_devices("GPU"))

    def enable_determinism(self) -> None:
        """TensorFlow's deterministic kernels. On a busy 2-core CPU the image GAN's resume test
        (tests/test_gan_images.py) differed in the last bits in 2 of 10 processes without them and 1 of 22 with them:
        fewer, not none (docs/gan.md)."""
        tf.config.experimental.enable_op_determinism()

    def native_bfloat16(self, cpu_flags: frozenset) -> bool:
        """GPUs of compute capability 8 or more; on the CPU, oneDNN's bfloat16 kernels need AVX512_BF16 or AMX."""
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return all(
                tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) >= (8, 0) for g in gpus
            )
        return bool(cpu_flags & {"avx512_bf16", "amx_bf16"})

    def fast_entry(self, compiled: Callable, input_signature: list | None) -> Callable:
        """The cheapest way to call ``compiled`` with arguments that match ``input_signature``.

        A tf.function with a full signature has one concrete function; calling it directly
        skips the argument matching of ``tf.function.__call__`` (about 150 us a call on CPU).
        """
        if input_signature is None or not hasattr(compiled, "get_concrete_function"):
            return compiled
        return compiled.get_concrete_function(*input_signature)

    def enable_compilation_cache(self, folder: Any) -> None:
        """tf.function graphs have no persistent cache: every run traces and optimises them anew."""
        return None

    def initialize_processes(self) -> None:
        """TensorFlow joins a cluster when the strategy is made (``TF_CONFIG``): nothing to do at import."""
        return None

    def look_at_devices(self) -> None:
        tf.get_logger().setLevel("ERROR")
        tf.config.list_physical_devices()

    def split_cpu(self, count: int) -> None:
        """Show the host CPU as ``count`` logical devices (before TensorFlow's runtime starts)."""
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(count))

    def data_parallel(self, count: int | None) -> TensorFlowDataParallel:
        return TensorFlowDataParallel(count)


# ----- Data parallel: tf.distribute -----
class TensorFlowDataParallel(DataParallelMechanics):
    """A ``MirroredStrategy`` over local devices, or a ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names a
    cluster. Each replica steps on its rows; what keeps the replicas one model:

    - gradients all-reduced to their mean before a group's transform (clipping sees the global gradients), then
      divided by the replica count for the Keras optimizer, which sums gradients over replicas when it applies;
    - non-trainable float variables created in :meth:`scope` average every write across replicas
      (BatchNormalization's moving statistics; its batch statistics stay per replica unless the layer has
      ``synchronized=True``);
    - seed generators created in :meth:`scope` are shifted by the replica's index while it steps, so no two
      replicas draw the same noise, and shifted back, so their saved state stays one value.
    """

    # The Keras optimizer's apply goes through merge_call, which cannot run inside a loop in a replica.
    loops_with_updates = False
    # Measured (tests/test_optimizer_options.py): Keras clips each replica's share of the gradients before
    # tf.distribute sums them, so the clipping thresholds act on the wrong norm; accumulation and EMA overwriting
    # branch (ops.cond) around merge_call, which tf.distribute refuses inside a replica.
    unsupported_optimizer_options = {
        "clipnorm": "core.clip_by_global_norm as the group's transform (it sees the global gradients)",
        "global_clipnorm": "core.clip_by_global_norm as the group's transform (it sees the global gradients)",
        "clipvalue": "core.clip_by_value as the group's transform (it sees the global gradients)",
        "gradient_accumulation_steps": "a larger global batch over more devices, or the JAX backend",
        "ema_overwrite_frequency": "core.ema into a copy of the model, or the JAX backend",
    }

    def __init__(self, count: int | None):
        import json
        import os

        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}")
        workers = cluster.get("cluster", {}).get("worker", [])
        if workers:
            index = int(cluster.get("task", {}).get("index", 0))
            check_port_free(str(workers[index]), "TF_CONFIG")  # this process's worker server binds it
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
            self.num_processes, self.process_index = len(workers), index
            replicas = [f"replica {i}" for i in range(self.strategy.num_replicas_in_sync)]
            device_count(count, replicas, self.num_processes)
        else:
            visible = [d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]
            self.strategy = tf.distribute.MirroredStrategy(visible[: device_count(count, visible, 1)])
            self.num_processes, self.process_index = 1, 0
        self.num_devices = self.strategy.num_replicas_in_sync
        self.local_replicas = self.num_devices // self.num_processes
        self.seed_states: list = []

    def describe(self) -> str:
        return f"tf.distribute.{type(self.strategy).__name__} over {', '.join(self.strategy.extended.worker_devices)}"

    def scope(self):
        import contextlib

        stack = contextlib.ExitStack()
        stack.enter_context(self.strategy.scope())
        stack.enter_context(tf.variable_creator_scope(self._create))
        return stack

    def _create(self, next_creator: Callable, **kwargs: Any) -> Any:
        dtype = tf.as_dtype(kwargs.get("dtype") or tf.float32)
        unaggregated = kwargs.get("aggregation") in (None, tf.VariableAggregation.NONE)
        if dtype.is_floating and not kwargs.get("trainable", True) and unaggregated:
            kwargs["aggregation"] = tf.VariableAggregation.MEAN
        variable = next_creator(**kwargs)
        if dtype.is_integer and str(kwargs.get("name", "")).endswith("seed_generator_state"):
            self.seed_states.append(variable)
        return variable

    def put(self, value: Any, leading: int) -> Any:
        return value  # rows are dealt to the replicas inside the compiled call

    def step_rows(self, rows: int) -> int:
        return rows // self.num_devices

    def shard_rows(self, x: Any) -> Any:
        return x

    def check_variables(self, variables: Sequence[Any]) -> None:
        for v in variables:
            if not isinstance(getattr(v, "value", v), tf.distribute.DistributedValues):
                raise StepDefinitionError(
                    f"variable {getattr(v, 'path', v.name)!r} was created outside parallel.scope(); "
                    "build the models and optimizers inside it"
                )

    def mean_gradients(self, grads: list) -> list:
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, list(grads))

    def optimizer_gradients(self, grads: list) -> list:
        return [g / self.num_devices for g in grads]

    def wrap(self, fn: Callable, kind: str) -> Callable:
        """``fn`` (one step's math on a batch) run on every replica's rows, its outputs reduced to one value."""

        def each_replica(batch):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            shifts = [tf.cast(tf.stack([replica * 1_000_003, 0]), s.dtype) for s in self.seed_states]
            for state, shift in zip(self.seed_states, shifts):
                state.assign_add(shift)
            out = fn(batch)
            for state, shift in zip(self.seed_states, shifts):
                state.assign_sub(shift)
            return out

        def all_replicas(batch):
            results = self.strategy.run(each_replica, args=(self._deal(batch),))
            return tf.nest.map_structure(lambda r: self._reduce(r, kind), results)

        return all_replicas

    def _deal(self, batch: dict) -> Any:
        n = self.local_replicas

        def rows(context):
            i = context.replica_id_in_sync_group % n
            return {k: v[i * (tf.shape(v)[0] // n) : (i + 1) * (tf.shape(v)[0] // n)] for k, v in batch.items()}

        return self.strategy.experimental_distribute_values_from_function(rows)

    def _reduce(self, value: Any, kind: str) -> Any:
        first = self.strategy.experimental_local_results(value)[0]
        if kind == "grads":  # all-reduced in the step: every replica holds the same
            return first
        if first.shape.rank == 0:
            return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
        return self.strategy.gather(value, axis=0)  # per-row outputs, back in the batch's order
