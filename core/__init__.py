"""customloop core: compiled custom training steps for Keras 3, and the pieces every run needs.

Importing it imports Keras with TensorFlow's start-up log hidden (so ``import core`` comes first) and changes
nothing else in the process. The public names, by topic (docs/core.md follows the same groups):

- steps: ``make_step``, ``UpdateGroup``, ``InputSpec``, ``StepFunctions``, ``check_batch``; the symbolic form
  ``function`` / ``minimize``; ``make_forward``; ``input_gradient``, ``scan``; ``Population`` (many members of
  one step in one compiled call)
- gradient transforms and after-update rules: ``clip_by_global_norm``, ``clip_by_value``, ``chain``,
  ``global_norm``; ``ema``, ``EMA``, ``copy_weights``
- a run: ``Run``, ``RunConfig``; its pieces ``Checkpointer``, ``save_checkpoint``, ``load_checkpoint``,
  ``GracefulInterrupt``, ``assert_finite``, ``RunLogger``, ``Progress``, ``write_summary``, ``strict_json``,
  ``atomic_write_bytes``, ``rng_state``, ``set_rng_state``; ``save_keras``, ``export_models`` (``.keras`` files out)
- seeds and devices: ``seed_everything``, ``derive_seed``, ``derived_rng``; ``describe_device``, ``gpu_available``,
  ``native_bfloat16``, ``enable_compilation_cache``, ``available_memory``
- data parallel: ``DataParallel``, ``SingleDevice``, ``devices_from_flag``
- device environments: ``make_device_env``, ``DeviceEnv``, ``DeviceVectorEnv``, ``DEVICE_ENV_IDS``
- pictures: ``image_grid``, ``save_png``, ``save_gif``, ``to_uint8``
- commands (flags and exit codes): ``run_main``, ``run_script``, ``arg``, ``parse_config``, ``make_parser``,
  ``check_ranges``, ``field_docs``, ``OneLineErrorParser``, ``positive_int``
- errors: ``UsageError``, ``InputError``, ``StepDefinitionError``, ``AfterUpdateError``, ``CheckpointError``,
  ``NonFiniteLossError``, ``StartupError``
"""

from core.startup import import_keras_quietly

import_keras_quietly()

# Grouped by topic, as the docstring lists them (pyproject.toml exempts this file from import sorting).
# Steps
from core.step import InputSpec, StepFunctions, UpdateGroup, check_batch, make_step
from core.symbolic import Function, Minimize, function, minimize
from core.forward import ForwardFunction, make_forward
from core.ops import input_gradient, scan
from core.population import Population

# Gradient transforms and after-update rules
from core.transforms import chain, clip_by_global_norm, clip_by_value, global_norm
from core.averaging import EMA, copy_weights, ema

# A run and its pieces
from core.lifecycle import Run, RunConfig
from core.checkpoint import load_checkpoint, save_checkpoint
from core.export import export_models, save_keras
from core.runs import Checkpointer, GracefulInterrupt, assert_finite, rng_state, set_rng_state
from core.run_log import Progress, RunLogger, atomic_write_bytes, strict_json, write_summary

# Seeds and devices
from core.seeding import derive_seed, derived_rng, seed_everything
from core.device import available_memory, describe_device, enable_compilation_cache, gpu_available, native_bfloat16

# Data parallel
from core.parallel import DataParallel, SingleDevice, devices_from_flag

# Device environments
from core.envs import DEVICE_ENV_IDS, DeviceEnv, DeviceVectorEnv, make_device_env

# Pictures
from core.media import image_grid, save_gif, save_png, to_uint8

# Commands: flags and exit codes
from core.cli import run_main, run_script
from core.config import OneLineErrorParser, arg, check_ranges, field_docs, make_parser, parse_config, positive_int

# Errors
from core.errors import (
    AfterUpdateError,
    CheckpointError,
    InputError,
    NonFiniteLossError,
    StartupError,
    StepDefinitionError,
    UsageError,
)

__all__ = [
    # steps
    "make_step", "UpdateGroup", "InputSpec", "StepFunctions", "check_batch",
    "function", "minimize", "Function", "Minimize", "make_forward", "ForwardFunction", "input_gradient", "scan",
    "Population",
    # gradient transforms and after-update rules
    "clip_by_global_norm", "clip_by_value", "chain", "global_norm", "ema", "EMA", "copy_weights",
    # a run and its pieces
    "Run", "RunConfig", "Checkpointer", "save_checkpoint", "load_checkpoint", "GracefulInterrupt", "assert_finite",
    "RunLogger", "Progress", "write_summary", "strict_json", "atomic_write_bytes", "rng_state", "set_rng_state",
    "save_keras", "export_models",
    # seeds and devices
    "seed_everything", "derive_seed", "derived_rng",
    "describe_device", "gpu_available", "native_bfloat16", "enable_compilation_cache", "available_memory",
    # data parallel
    "DataParallel", "SingleDevice", "devices_from_flag",
    # device environments
    "make_device_env", "DeviceEnv", "DeviceVectorEnv", "DEVICE_ENV_IDS",
    # pictures
    "image_grid", "save_png", "save_gif", "to_uint8",
    # commands: flags and exit codes
    "run_main", "run_script", "arg", "parse_config", "make_parser", "check_ranges", "field_docs",
    "OneLineErrorParser", "positive_int",
    # errors
    "UsageError", "InputError", "StepDefinitionError", "AfterUpdateError", "CheckpointError", "NonFiniteLossError",
    "StartupError",
]  # fmt: skip
