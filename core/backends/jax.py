"""JAX mechanics of a step: pure functions of the variables' values, jax.jit, lax.scan.

Keras code is stateful (layers read variables, optimizers and seed generators assign
them). A compiled call runs that code under one ``keras.StatelessScope`` whose
mapping holds every variable the call touches, found by a discovery pass that
traces the call once with ``jax.eval_shape`` and records each read and write.
A variable left out would be frozen into the compiled function as a constant, so
discovery, not a hand-kept list, decides. After each call the new values are
written back to the Keras variables, so user code never reads stale weights.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from core.backends.base import Backend, DataParallelMechanics, check_port_free, device_count, split_loss


# ----- The one place that relies on how Keras drives a StatelessScope (checked on Keras 3.15.1) -----
# keras.StatelessScope and its methods are public, but that Keras routes every read of a variable
# inside the scope through get_current_value(variable) and every assign through
# add_update((variable, value)), leaving the variable itself untouched, is how it works rather than
# a documented promise. tests/test_keras_contract.py fails loudly if a Keras release changes that.
class _RecordingScope(keras.StatelessScope):
    """A StatelessScope over our own id -> value mapping that remembers every variable read or written."""

    def __init__(self, values: dict[int, Any] | None = None, discovering: bool = False):
        super().__init__(initialize_variables=False)
        self.values: dict[int, Any] = {} if values is None else values
        self.discovering = discovering
        self.touched: dict[int, Any] = {}
        self.written: dict[int, Any] = {}
        self.reads: set[int] | None = None

    def get_current_value(self, variable: Any) -> Any:
        self.touched.setdefault(id(variable), variable)
        if self.reads is not None:
            self.reads.add(id(variable))
        return self.values.get(id(variable))

    def add_update(self, update: tuple) -> None:
        variable, value = update
        self.touched.setdefault(id(variable), variable)
        self.written.setdefault(id(variable), variable)
        self.values[id(variable)] = value


# Keras' own "current scope" accessor is private, so we remember which of our scopes is active.
_ACTIVE: contextvars.ContextVar[_RecordingScope | None] = contextvars.ContextVar("customloop_jax_scope", default=None)


@contextlib.contextmanager
def _entered(scope: _RecordingScope):
    token = _ACTIVE.set(scope)
    try:
        with scope:
            yield scope
    finally:
        _ACTIVE.reset(token)


def _active_scope(caller: str) -> _RecordingScope:
    scope = _ACTIVE.get()
    if scope is None:
        raise RuntimeError(f"{caller} must run inside a compiled call of the JAX backend")
    return scope


def _current(scope: _RecordingScope, v: Any) -> Any:
    value = scope.get_current_value(v)
    return v.value if value is None else value


class _Compiled:
    """A stateful Keras function turned into a jitted pure function of the variables' values."""

    def __init__(self, fn: Callable, mode: str, parallel: Any = None):
        self.fn = fn
        self.mode = mode
        self.parallel = parallel
        self.state: list | None = None  # every variable a call touches, in a fixed order
        self.written: list = []  # the ones it assigns
        self.traces = 0
        self._jitted: dict[Any, Callable] = {}

    def _discover(self, args: tuple) -> None:
        """Trace once, abstractly, to learn which variables a call reads and which it writes."""
        scope = _RecordingScope(discovering=True)

        def probe(*dynamic):
            with _entered(scope):
                self.fn(*_interleave(args, dynamic))
            return 0

        jax.eval_shape(probe, *(a for a in args if not isinstance(a, int)))
        self.state = list(scope.touched.values())
        self.written = list(scope.written.values())

    def _pure(self, state_values, *args):
        if self.mode != "eager":
            self.traces += 1
        scope = _RecordingScope({id(v): value for v, value in zip(self.state, state_values)})
        with _entered(scope):
            out = self.fn(*args)
        # Only written variables come back: read-only weights need no copy out and no write-back.
        return out, [jnp.asarray(_current(scope, v), dtype=v.dtype) for v in self.written]

    def __call__(self, *args):
        static = tuple(a for a in args if isinstance(a, int))
        if self.state is None:
            self._discover(args)
        if static not in self._jitted:
            template = tuple(a if isinstance(a, int) else None for a in args)  # keeps no arrays alive

            def call(state_values, *dynamic, template=template):
                return self._pure(state_values, *_interleave(template, dynamic))

            # Data parallel: every output replicated, so any process can read logs and new weights.
            sharded = {} if self.parallel is None else {"out_shardings": self.parallel.replicated}
            self._jitted[static] = call if self.mode == "eager" else jax.jit(call, **sharded)
        dynamic = tuple(a for a in args if not isinstance(a, int))
        # Public reads and writes cost about 1 and 2 us a variable on CPU (Keras 3.15.1: scope and dtype
        # checks), ~110 us a call for a 53-variable GAN step; Keras offers no cheaper public route.
        values = [v.value for v in self.state]
        if self.parallel is not None:
            values = [self.parallel.replicate(x) for x in values]
        out, new_values = self._jitted[static](values, *dynamic)
        for v, value in zip(self.written, new_values):
            v.assign(value)
        return out


class _PopulationCompiled:
    """One member's stateful Keras function, vectorised over the members (``jax.vmap`` of the pure function):
    each variable the call touches takes its values from the population's stacked copy (members on axis 0);
    a variable outside the population (data held on the device) is shared, read-only."""

    def __init__(self, fn: Callable, mode: str, population: Any):
        self.inner = _Compiled(fn, mode)
        self.population = population
        self._jitted: dict[Any, Callable] = {}

    @property
    def traces(self) -> int:
        return self.inner.traces

    def _plan(self, args: tuple) -> None:
        """Discover the touched variables on one member's shapes; which are per member, which shared."""
        member = tuple(a if isinstance(a, int) else jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype),
                                                                 a) for a in args)  # fmt: skip
        self.inner._discover(member)
        position = self.population.position
        self.per_member = [position(v) for v in self.inner.state]
        for v in self.inner.written:
            if position(v) is None:
                raise RuntimeError(f"a population step writes {v.path!r}, which is not in the members' objects")

    def __call__(self, *args):
        if self.inner.state is None:
            self._plan(args)
        static = tuple(a for a in args if isinstance(a, int))
        inner, stacked = self.inner, self.population.stacked
        if static not in self._jitted:
            template = tuple(a if isinstance(a, int) else None for a in args)
            axes = [None if p is None else 0 for p in self.per_member]

            def call(state_values, *dynamic, template=template):
                return inner._pure(state_values, *_interleave(template, dynamic))

            vectorised = jax.vmap(call, in_axes=(axes, *[0] * (len(args) - len(static))))
            self._jitted[static] = vectorised if self.inner.mode == "eager" else jax.jit(vectorised)
        values = [v.value if p is None else stacked[p].value for v, p in zip(inner.state, self.per_member)]
        out, new_values = self._jitted[static](values, *(a for a in args if not isinstance(a, int)))
        for v, value in zip(inner.written, new_values):
            stacked[self.population.position(v)].assign(value)
        return out


def _interleave(template: tuple, dynamic: Sequence) -> tuple:
    """``template`` with its non-int entries replaced, in order, by ``dynamic`` (ints are static)."""
    it = iter(dynamic)
    return tuple(a if isinstance(a, int) else next(it) for a in template)


_DAMAGED_ENTRY = re.compile(r"Error reading persistent compilation cache entry for '([^']+)'")


def _repair_damaged_cache_entries(folder: Path) -> None:
    """JAX warns about an unreadable cache entry (a disk that filled up mid-write, a copied cache) on every run and
    never replaces it (measured: a screen of warnings per run). Here the warning removes the entries of that
    function instead, so the program compiled now is written afresh, and one line says so."""
    show = warnings.showwarning
    if getattr(show, "repairs_cache", None) == folder:
        return
    said = []

    def showwarning(message, category, filename, lineno, file=None, line=None):
        damaged = _DAMAGED_ENTRY.search(str(message))
        if damaged is None:
            return show(message, category, filename, lineno, file, line)
        for entry in folder.glob(f"{glob.escape(damaged.group(1))}-*"):
            entry.unlink(missing_ok=True)
        if not said:
            said.append(True)
            print(f"compilation cache {folder}: unreadable entries removed as they are met, and compiled again",
                  file=sys.stderr)  # fmt: skip

    showwarning.repairs_cache = folder
    warnings.showwarning = showwarning


class JaxBackend(Backend):
    """JAX: pure functions of the variables' values under a recording StatelessScope, jax.jit, lax.scan."""

    name = "jax"

    def value_and_grad(self, loss_fn: Callable[[], Any], variables: Sequence[Any]) -> tuple[Any, dict, list]:
        """Loss, aux and gradients of ``loss_fn()`` with respect to ``variables``; None where the loss never reads one.

        Runs inside the call's scope: the group's variables are swapped for traced values,
        and writes the forward pass makes to other variables (BatchNormalization
        statistics, seed generators) are carried out of the gradient trace as aux.
        """
        scope = _active_scope("value_and_grad")
        ids = [id(v) for v in variables]
        values = [_current(scope, v) for v in variables]
        reads: set[int] = set()

        def f(vals):
            saved = dict(scope.values)
            outer_reads = scope.reads
            scope.values.update(zip(ids, vals))
            scope.reads = reads
            try:
                loss, aux = split_loss(loss_fn())
                written = {k: v for k, v in scope.values.items() if k not in ids and v is not saved.get(k)}
            finally:
                scope.values.clear()
                scope.values.update(saved)
                scope.reads = outer_reads
            return loss, (aux, written)

        (loss, (aux, written)), grads = jax.value_and_grad(f, has_aux=True)(values)
        scope.values.update(written)
        if scope.reads is not None:
            scope.reads |= reads
        return loss, aux, [g if i in reads else None for i, g in zip(ids, grads)]

    def input_gradient(self, fn: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
        """Value of ``fn(x)`` and the gradient of its sum with respect to ``x`` (differentiable again)."""
        y, vjp = jax.vjp(fn, jnp.asarray(x))
        return y, vjp(jnp.ones_like(y))[0]

    def compile_fn(self, fn: Callable, mode: str, input_signature: list | None, parallel: Any = None) -> Callable:
        """Wrap a step function for ``mode`` in {"eager", "graph", "xla"}; on JAX, graph and XLA are both jax.jit."""
        return _Compiled(fn, mode, parallel)

    def compile_population(self, fn: Callable, mode: str, input_signature: list | None, population: Any) -> Callable:
        """``jax.vmap`` over the members of the pure function a compiled call runs (see ``_PopulationCompiled``)."""
        return _PopulationCompiled(fn, mode, population)

    def fast_entry(self, compiled: Callable, input_signature: list | None) -> Callable:
        """A jitted call has no cheaper entry point than itself."""
        return compiled

    def tracing_count(self, compiled: Callable) -> int | None:
        inner = compiled.inner if isinstance(compiled, _PopulationCompiled) else compiled
        if isinstance(inner, _Compiled) and inner.mode != "eager":
            return compiled.traces
        return None

    def tensor_spec(self, shape: Sequence[int | None], dtype: str) -> tuple:
        return (tuple(shape), dtype)

    def to_tensor(self, value: Any, dtype: str) -> Any:
        # jax.jit takes NumPy arrays as they are; jnp.asarray first would cost ~30 us a call.
        if isinstance(value, np.ndarray):
            return value if value.dtype == dtype else value.astype(dtype)
        return jnp.asarray(value, dtype=dtype)

    def to_numpy(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def scan(
        self, f: Callable, init: Any, xs: Any = None, length: int | None = None, reverse: bool = False, unroll: int = 1
    ) -> tuple:
        """``keras.ops.scan`` whose body may read and assign Keras variables (seed generators, state held in variables).

        Inside a compiled call the values of every variable the call touches travel in the ``lax.scan`` carry
        beside ``f``'s own carry, so an assign in the body is seen by the next iteration and by the code after
        the loop (a plain scan would leak the body's tracers into the scope instead).
        """
        scope = _ACTIVE.get()
        if scope is None:
            return keras.ops.scan(f, init, xs, length=length, reverse=reverse, unroll=unroll)
        if length is None:
            length = int(jax.tree.leaves(xs)[0].shape[0])
        if scope.discovering:  # one iteration shows every variable the body touches
            first = None if xs is None else jax.tree.map(lambda a: a[-1 if reverse else 0], xs)
            carry, y = f(init, first)
            return carry, jax.tree.map(lambda v: jnp.broadcast_to(v, (int(length), *jnp.shape(v))), y)
        ids = list(scope.values)
        dtypes = {k: v.dtype for k, v in scope.values.items()}

        def body(carry, x):
            state, inner = carry
            scope.values.update(zip(ids, state))
            inner, y = f(inner, x)
            if set(scope.values) - set(ids):
                raise RuntimeError("a loop body wrote a variable the discovery pass did not see")
            return ([jnp.asarray(scope.values[k], dtype=dtypes[k]) for k in ids], inner), y

        init_state = [scope.values[k] for k in ids]
        unroll = max(1, min(int(unroll), int(length)))
        (final, carry), ys = jax.lax.scan(
            body, (init_state, init), xs, length=int(length), reverse=reverse, unroll=unroll
        )
        scope.values.update(zip(ids, final))
        return carry, ys

    def fused_loop(self, step_fn: Callable[[dict], dict], batches: dict, num_steps: Any, unroll: int = 1) -> dict:
        """``num_steps`` steps in one ``lax.scan`` (``unroll`` steps per loop iteration), the scope's values as the
        carry."""
        _, logs = self.scan(
            lambda carry, batch: (carry, step_fn(batch or {})),
            (),
            batches or None,
            length=int(num_steps),
            unroll=unroll,
        )
        return logs

    def leading_dim(self, batches: dict) -> int:
        return int(next(iter(batches.values())).shape[0])

    def describe_device(self) -> str:
        device = jax.devices()[0]
        if device.platform == "gpu":
            return "GPU: " + ", ".join(d.device_kind for d in jax.devices())
        return device.platform.upper()

    def gpu_available(self) -> bool:
        return jax.devices()[0].platform == "gpu"

    def enable_determinism(self) -> None:
        """Nothing to switch on: XLA's CPU programs were bit-reproducible in every test here."""

    def native_bfloat16(self, cpu_flags: frozenset) -> bool:
        """GPUs of compute capability 8 or more; never XLA's CPU, whose bfloat16 convolutions ran slower than float32
        here (docs/gan.md) even on a CPU with AVX512_BF16."""
        devices = jax.devices()
        if devices[0].platform != "gpu":
            return False
        return all(float(getattr(d, "compute_capability", "0")) >= 8.0 for d in devices)

    def enable_compilation_cache(self, folder: Path) -> Path | None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:  # an unwritable home: run without the cache rather than fail
            return None
        jax.config.update("jax_compilation_cache_dir", str(folder))
        # Small programs too: an agent's many short compiles are what the cache saves.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        _repair_damaged_cache_entries(folder)
        return folder

    def initialize_processes(self) -> None:
        """Join the processes Keras' ``KERAS_DISTRIBUTION_*`` variables describe, before JAX picks its devices."""
        import os

        if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1) > 1:
            if os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "0").strip() == "0":  # the coordinator binds it
                address = os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").split(",")[0]
                check_port_free(address, "KERAS_DISTRIBUTION_JOB_ADDRESSES")
            keras.distribution.initialize()

    def look_at_devices(self) -> None:
        jax.devices()

    def split_cpu(self, count: int) -> None:
        """Show the host CPU as ``count`` devices (before JAX first looks at its devices)."""
        jax.config.update("jax_num_cpu_devices", int(count))

    def data_parallel(self, count: int | None) -> JaxDataParallel:
        return JaxDataParallel(count)


# ----- Data parallel: a keras.distribution mesh, global arrays, GSPMD -----
class JaxDataParallel(DataParallelMechanics):
    """Replicated variables and batches split along their rows on a ``keras.distribution.DataParallel`` mesh.

    ``jax.jit`` partitions the unchanged step (GSPMD): its math sees the global batch, so it computes what one
    device would on the whole batch, collectives included. Processes started with Keras'
    ``KERAS_DISTRIBUTION_*`` variables have joined in ``core``'s import (``initialize_processes``).
    """

    loops_with_updates = True

    def __init__(self, count: int | None):
        devices = keras.distribution.list_devices()
        count = device_count(count, devices, jax.process_count())
        self.distribution = keras.distribution.DataParallel(devices=devices[:count])
        self.mesh = self.distribution.device_mesh.backend_mesh
        self.replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        self._device_set = set(self.mesh.devices.flat)
        self.num_devices, self.num_processes, self.process_index = count, jax.process_count(), jax.process_index()

    def describe(self) -> str:
        return f"keras.distribution.DataParallel over {', '.join(map(str, self.mesh.devices.flat))}"

    def scope(self):
        return self.distribution.scope()

    def put(self, value: Any, leading: int) -> Any:
        """This process's rows of a batch (stacked steps first) as one global array split along the rows."""
        spec = jax.sharding.PartitionSpec(*([None] * leading), self.distribution.batch_dim_name)
        return jax.make_array_from_process_local_data(jax.sharding.NamedSharding(self.mesh, spec), value)

    def replicate(self, value: Any) -> Any:
        """``value`` on every device of the mesh (variables created or loaded outside the scope included)."""
        sharding = getattr(value, "sharding", None)
        if sharding is not None and sharding.is_fully_replicated and sharding.device_set == self._device_set:
            return value
        host = np.asarray(value)
        return jax.make_array_from_callback(host.shape, self.replicated, lambda index: host[index])

    def step_rows(self, rows: int) -> int:
        return rows

    def shard_rows(self, x: Any) -> Any:
        spec = jax.sharding.PartitionSpec(self.distribution.batch_dim_name)
        return jax.lax.with_sharding_constraint(x, jax.sharding.NamedSharding(self.mesh, spec))

    def wrap(self, fn: Callable, kind: str) -> Callable:
        return fn  # the step's math already is the global computation

    def check_variables(self, variables: Sequence[Any]) -> None:
        return None  # every value is replicated at each call, wherever it was created

    def mean_gradients(self, grads: list) -> list:
        return grads  # gradients of the global loss already

    def optimizer_gradients(self, grads: list) -> list:
        return grads
