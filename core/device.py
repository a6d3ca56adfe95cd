"""What a run steps on."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import keras

from core.backends import get_backend


def describe_device() -> str:
    """``"<backend> on GPU: <name>"`` or ``"<backend> on CPU"``."""
    return f"{keras.backend.backend()} on {get_backend().describe_device()}"


def gpu_available() -> bool:
    return get_backend().gpu_available()


def cpu_flags() -> frozenset:
    """The CPU's feature flags as Linux lists them (``avx512_bf16``, ``amx_bf16``, ...); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def available_memory() -> int | None:
    """Bytes of host memory available to a new allocation now (Linux's MemAvailable), None where unknown. On the
    CPU the engines allocate there; a GPU's own memory is not counted."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@functools.cache
def native_bfloat16() -> bool:
    """Whether the devices a run steps on compute bfloat16 natively, so ``mixed_bfloat16`` runs faster than
    float32: GPUs of compute capability 8 or more; CPUs with AVX512_BF16 or AMX on TensorFlow (oneDNN)."""
    return get_backend().native_bfloat16(cpu_flags())


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled programs on disk so a repeated run (same shapes, any seed) skips compiling them.

    JAX: ``jax_compilation_cache_dir``; on the CPU it cuts a small agent's start-up from seconds to a fraction
    of one. TensorFlow has no cache for graphs (returns None). ``path`` defaults to
    ``$CUSTOMLOOP_COMPILE_CACHE`` or ``~/.cache/customloop/xla``; ``CUSTOMLOOP_COMPILE_CACHE=off`` turns it off.
    """
    setting = os.environ.get("CUSTOMLOOP_COMPILE_CACHE", "")
    if setting.lower() == "off":
        return None
    folder = Path(path or setting or Path.home() / ".cache" / "customloop" / "xla").expanduser()
    return get_backend().enable_compilation_cache(folder)
