"""customloop core: compiled custom training steps for Keras 3, and the pieces every run needs."""

from core._quiet import import_keras_quietly

import_keras_quietly()

from core.averaging import EMA, AfterUpdateError, copy_weights, ema  # noqa: E402
from core.backends import get_backend as _get_backend  # noqa: E402
from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from core.config import (  # noqa: E402
    OneLineErrorParser,
    UsageError,
    arg,
    check_ranges,
    field_docs,
    make_parser,
    parse_config,
    positive_int,
    run_main,
    run_script,
)
from core.device import describe_device, enable_compilation_cache, gpu_available, native_bfloat16  # noqa: E402
from core.envs import DEVICE_ENV_IDS, DeviceEnv, DeviceVectorEnv, make_device_env  # noqa: E402
from core.forward import ForwardFunction, make_forward  # noqa: E402
from core.lifecycle import Run, RunConfig  # noqa: E402
from core.media import image_grid, save_gif, save_png, to_uint8  # noqa: E402
from core.parallel import DataParallel, SingleDevice, devices_from_flag  # noqa: E402
from core.run_log import Progress, RunLogger, atomic_write_bytes, strict_json, write_summary  # noqa: E402
from core.runs import (  # noqa: E402
    Checkpointer,
    GracefulInterrupt,
    NonFiniteLossError,
    assert_finite,
    rng_state,
    set_rng_state,
)
from core.seeding import seed_everything  # noqa: E402
from core.step import (  # noqa: E402
    InputError,
    InputSpec,
    StepDefinitionError,
    StepFunctions,
    UpdateGroup,
    check_batch,
    make_step,
)
from core.symbolic import Function, Minimize, function, minimize  # noqa: E402
from core.transforms import chain, clip_by_global_norm, clip_by_value, global_norm  # noqa: E402


def input_gradient(fn, x):
    """``(fn(x), d sum(fn(x)) / dx)``, differentiable again: for R1 and WGAN-GP penalties inside a loss."""
    return _get_backend().input_gradient(fn, x)


def scan(f, init, xs=None, length=None, reverse=False):
    """``keras.ops.scan`` whose body may read and assign Keras variables (a seed generator, environment state in
    variables) inside a compiled step: on JAX the touched variables' values travel in the loop's carry."""
    return _get_backend().scan(f, init, xs, length, reverse)


__all__ = [
    "EMA",
    "DataParallel",
    "SingleDevice",
    "devices_from_flag",
    "AfterUpdateError",
    "copy_weights",
    "ema",
    "DEVICE_ENV_IDS",
    "DeviceEnv",
    "DeviceVectorEnv",
    "make_device_env",
    "CheckpointError",
    "Checkpointer",
    "GracefulInterrupt",
    "NonFiniteLossError",
    "assert_finite",
    "image_grid",
    "rng_state",
    "save_gif",
    "save_png",
    "set_rng_state",
    "strict_json",
    "to_uint8",
    "ForwardFunction",
    "Function",
    "InputError",
    "InputSpec",
    "Minimize",
    "Progress",
    "Run",
    "RunConfig",
    "RunLogger",
    "StepDefinitionError",
    "StepFunctions",
    "UpdateGroup",
    "UsageError",
    "arg",
    "atomic_write_bytes",
    "check_ranges",
    "chain",
    "check_batch",
    "clip_by_global_norm",
    "clip_by_value",
    "describe_device",
    "enable_compilation_cache",
    "field_docs",
    "function",
    "global_norm",
    "gpu_available",
    "input_gradient",
    "load_checkpoint",
    "make_forward",
    "make_parser",
    "make_step",
    "minimize",
    "native_bfloat16",
    "parse_config",
    "run_main",
    "run_script",
    "positive_int",
    "OneLineErrorParser",
    "save_checkpoint",
    "scan",
    "seed_everything",
    "write_summary",
]
