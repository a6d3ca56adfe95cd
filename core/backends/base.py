"""The backend interface, written once: everything backend-specific about a compiled step.

:class:`Backend` is what ``core/step.py``, ``core/forward.py`` and the rest of the core call; ``TensorFlowBackend``
(core/backends/tensorflow.py) and ``JaxBackend`` (core/backends/jax.py) implement all of it, and
:class:`DataParallelMechanics` is how each engine shards a step (``core.DataParallel`` is the user-facing side).
Abstract methods make a missing piece an error when the backend is made, not when a step first needs it.
"""

from __future__ import annotations

import abc
import contextlib
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import StartupError, UsageError


class Backend(abc.ABC):
    """The mechanics of one Keras backend: gradients, compilation, fused loops, tensors, devices."""

    name: str = ""

    # ----- the math of a step: gradients -----
    @abc.abstractmethod
    def value_and_grad(self, loss_fn: Callable[[], Any], variables: Sequence[Any]) -> tuple[Any, dict, list]:
        """``(loss, aux, grads)`` of ``loss_fn()`` (which returns ``loss`` or ``(loss, aux)``), None for a variable
        the loss does not read."""

    @abc.abstractmethod
    def input_gradient(self, fn: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
        """``(fn(x), d sum(fn(x)) / dx)``, differentiable again (R1 and gradient penalties inside a loss)."""

    # ----- compilation -----
    @abc.abstractmethod
    def compile_fn(self, fn: Callable, mode: str, input_signature: list | None, parallel: Any = None) -> Callable:
        """``fn`` compiled for ``mode`` ("eager", "graph", "xla"), optionally data parallel (``parallel``: this
        backend's :class:`DataParallelMechanics`)."""

    @abc.abstractmethod
    def compile_population(self, fn: Callable, mode: str, input_signature: list | None, population: Any) -> Callable:
        """``fn`` (one member's math) compiled for every member of ``population`` (a ``core.Population``) in one
        call: its tensor arguments and outputs gain a leading members axis; the values of the population's
        variables come from, and go back to, its stacked per-member copies."""

    @abc.abstractmethod
    def fast_entry(self, compiled: Callable, input_signature: list | None) -> Callable:
        """The cheapest way to call ``compiled`` with arguments matching ``input_signature``."""

    @abc.abstractmethod
    def tracing_count(self, compiled: Callable) -> int | None:
        """How often ``compiled`` has been traced (None in eager mode)."""

    @abc.abstractmethod
    def scan(
        self, f: Callable, init: Any, xs: Any = None, length: Any = None, reverse: bool = False, unroll: int = 1
    ) -> tuple:
        """``keras.ops.scan`` whose body may read and assign Keras variables inside a compiled call."""

    @abc.abstractmethod
    def fused_loop(self, step_fn: Callable[[dict], dict], batches: dict, num_steps: Any, unroll: int = 1) -> dict:
        """``num_steps`` calls of ``step_fn`` over the leading axis of ``batches`` in one loop; the logs stacked."""

    @abc.abstractmethod
    def leading_dim(self, batches: dict) -> Any:
        """The number of steps stacked in ``batches`` (a tensor inside a graph)."""

    # ----- tensors -----
    @abc.abstractmethod
    def tensor_spec(self, shape: Sequence[int | None], dtype: str) -> Any:
        """The signature entry of one input."""

    @abc.abstractmethod
    def to_tensor(self, value: Any, dtype: str) -> Any:
        """``value`` as what a compiled call takes, in ``dtype``."""

    @abc.abstractmethod
    def to_numpy(self, value: Any) -> np.ndarray:
        """A compiled call's output as a NumPy array."""

    # ----- devices and the process -----
    @abc.abstractmethod
    def describe_device(self) -> str:
        """``"CPU"`` or ``"GPU: <names>"``."""

    @abc.abstractmethod
    def gpu_available(self) -> bool:
        """Whether a GPU is visible."""

    @abc.abstractmethod
    def native_bfloat16(self, cpu_flags: frozenset) -> bool:
        """Whether the devices compute bfloat16 natively (so ``mixed_bfloat16`` runs faster than float32)."""

    @abc.abstractmethod
    def enable_determinism(self) -> None:
        """Deterministic kernels, so that a seed (and a resumed run) gives the same bits."""

    @abc.abstractmethod
    def enable_compilation_cache(self, folder: Path) -> Path | None:
        """Keep compiled programs in ``folder``; the folder used, or None where the engine has no such cache."""

    @abc.abstractmethod
    def split_cpu(self, count: int) -> None:
        """Show the host CPU as ``count`` devices (before the engine first looks at its devices)."""

    @abc.abstractmethod
    def initialize_processes(self) -> None:
        """Join the processes a launcher started together, if any (before the engine picks its devices)."""

    @abc.abstractmethod
    def look_at_devices(self) -> None:
        """The engine's first look at its devices (what it prints then, core keeps off the terminal)."""

    @abc.abstractmethod
    def data_parallel(self, count: int | None) -> DataParallelMechanics:
        """The engine's data-parallel mechanics over ``count`` devices (None: all of them)."""


class DataParallelMechanics(abc.ABC):
    """How one engine runs a step data parallel; see core/parallel.py for the user-facing ``DataParallel``."""

    num_devices: int = 1
    num_processes: int = 1
    process_index: int = 0
    loops_with_updates: bool = True
    """whether an optimizer may apply inside a compiled loop (repeat_key groups, fused calls)"""
    unsupported_optimizer_options: dict[str, str] = {}
    """Keras optimizer options this engine cannot apply data parallel, each with what to use instead"""

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def scope(self) -> contextlib.AbstractContextManager:
        """Variables created inside are replicated over the devices."""

    @abc.abstractmethod
    def put(self, value: Any, leading: int) -> Any:
        """This process's rows of a batch (``leading`` stacked-step axes first) as the step's input."""

    @abc.abstractmethod
    def step_rows(self, rows: int) -> int:
        """Rows of a global batch one run of the step's math sees."""

    @abc.abstractmethod
    def shard_rows(self, x: Any) -> Any:
        """Inside a step: a batch the step made itself, split along its rows over the devices."""

    @abc.abstractmethod
    def check_variables(self, variables: Sequence[Any]) -> None:
        """Raise StepDefinitionError for variables this engine cannot train data parallel."""

    @abc.abstractmethod
    def mean_gradients(self, grads: list) -> list:
        """The global batch's gradients, from each replica's."""

    @abc.abstractmethod
    def optimizer_gradients(self, grads: list) -> list:
        """What the Keras optimizer must be given so that it applies the mean gradients."""

    @abc.abstractmethod
    def wrap(self, fn: Callable, kind: str) -> Callable:
        """``fn`` (one step's math on a batch) run on every replica, its outputs reduced (``kind``: "train",
        "test" or "grads")."""


def split_loss(out: Any) -> tuple[Any, dict]:
    """A loss function returns ``loss`` or ``(loss, aux_dict)``; always give both."""
    if isinstance(out, tuple):
        loss, aux = out
        return loss, dict(aux)
    return out, {}


def check_port_free(address: str, variable: str) -> None:
    """Raise StartupError naming the port if ``address`` (``host:port``) cannot be bound here now: a coordinator or
    worker port that another program holds fails later with a gRPC traceback (JAX: sometimes a crash)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "localhost"
    if host not in ("localhost", "127.0.0.1", "::1", "0.0.0.0", socket.gethostname()):
        return  # another machine's address: it binds there, not here
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OverflowError:
            raise StartupError(f"{variable}: port {port} is not a port number") from None
        except OSError as e:
            raise StartupError(f"{variable}: port {port} on {host} is in use ({e.strerror}); choose a free one") \
                from None  # fmt: skip


def device_count(asked: int | None, visible: list[str], processes: int) -> int:
    """The devices a step runs on: ``asked`` (None: all ``visible``), checked against them; one line if not."""
    if asked is None:
        return len(visible)
    if processes > 1 and asked != len(visible):
        raise UsageError(f"--devices {asked}: a run of {processes} processes steps on all {len(visible)} devices "
                         "(--devices all)")  # fmt: skip
    if asked > len(visible):
        raise UsageError(
            f"--devices {asked}: only {len(visible)} device(s) are visible ({', '.join(visible)}); "
            "on a CPU, CUSTOMLOOP_CPU_DEVICES=N splits it into N devices"
        )
    return asked
