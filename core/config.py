"""A dataclass config becomes argparse flags; a bad value becomes one line and exit code 2."""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import inspect
import math
import subprocess
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

C = TypeVar("C")


class UsageError(ValueError):
    """Bad user input: reported as one line with exit code 2, never a traceback."""


def arg(
    default: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    below: float | None = None,
    infinite: bool = False,
) -> Any:
    """A dataclass field whose range is declared once: ``--flag`` values outside it are a one-line error.

    ``min`` / ``max`` are inclusive bounds, ``above`` / ``below`` exclusive ones (learning rates: ``above=0``;
    decays: ``below=1``). ``None`` (for optional fields) is always allowed. NaN never passes a range, nor does
    infinity unless ``infinite=True`` (then +inf only: "never", as in a target that ends nothing).
    """
    given = {"min": min, "max": max, "above": above, "below": below}
    bounds = {k: v for k, v in given.items() if v is not None}
    return dataclasses.field(default=default, metadata={"range": bounds, "infinite": infinite})


def _range_error(name: str, value: Any, bounds: dict) -> str | None:
    if value is None or not bounds:
        return None
    lo, hi = bounds.get("min", bounds.get("above")), bounds.get("max", bounds.get("below"))
    ok = value == value  # NaN fails every comparison below, but make it explicit
    ok = ok and (lo is None or value > lo or ("min" in bounds and value == lo))
    ok = ok and (hi is None or value < hi or ("max" in bounds and value == hi))
    if ok:
        return None
    left, right = "[" if "min" in bounds else "(", "]" if "max" in bounds else ")"
    if lo is not None and hi is not None:
        want = f"in {left}{_num(lo)}, {_num(hi)}{right}"
    elif lo is not None:
        want = ("positive" if lo == 0 else f"greater than {_num(lo)}") if left == "(" else f"at least {_num(lo)}"
    else:
        want = f"at most {_num(hi)}" if right == "]" else f"less than {_num(hi)}"
    return f"--{name.replace('_', '-')} must be {want}, got {value}"


def _num(x: float | None) -> str | None:
    if x is None:
        return None
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_ranges(config: Any) -> None:
    """Raise UsageError for the first field outside the range declared with :func:`arg`, for a non-finite
    number (no flag means infinity or NaN) and for an empty string (an empty path is never meant)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        flag = f"--{f.name.replace('_', '-')}"
        infinity_ok = f.metadata.get("infinite") and value == math.inf
        if isinstance(value, float) and not math.isfinite(value) and not infinity_ok:
            raise UsageError(f"{flag} must be a finite number, got {value}")
        if isinstance(value, str) and not value.strip():
            raise UsageError(f"{flag} must not be empty")
        message = _range_error(f.name, value, f.metadata.get("range", {}))
        if message:
            raise UsageError(message)


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right after a field) of a dataclass."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    for base in cls.__mro__[1:]:  # fields inherited from a base config (RunConfig) keep their docs
        if dataclasses.is_dataclass(base):
            docs.update(field_docs(base))
    body = tree.body[0].body
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad input is one line on stderr and exit code 2 (argparse would print the whole usage block first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts (steps, seeds, rounds): a bad one is the parser's one-line error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def run_script(main: Callable[[], Any]) -> int:
    """Run a script's ``main()`` (a benchmark) with the examples' exit codes: bad input, a file that cannot be
    read or written, or memory that ran out is one line and code 2. Returns the exit code."""

    prog = sys.argv[0].split("/")[-1] if sys.argv and sys.argv[0] else "customloop"
    try:
        result = main()
    except subprocess.CalledProcessError as e:  # a benchmark's child run failed: its own code, its own line
        print(f"{prog}: error: {_child_failure(e)}", file=sys.stderr)
        return e.returncode if 0 < e.returncode < 128 else 1
    except Exception as e:
        return _bad_input(prog, e)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _child_failure(e: subprocess.CalledProcessError) -> str:
    """A failed child process in one line: its command, and the last line it wrote to stderr (an example's own
    one-line error, or a traceback's last line) when it was captured."""
    stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
    last = stderr.strip().splitlines()[-1:] or [f"exit code {e.returncode}"]
    command = " ".join(map(str, e.cmd)) if isinstance(e.cmd, list | tuple) else str(e.cmd)
    return f"{command[:200]} failed: {last[0].strip()[:300]}"


def make_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        description=description or (inspect.getdoc(cls) or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    own = cls.__dict__.get("__annotations__", {})
    # The example's own flags first, the inherited run flags (--seed, --out, --resume, ...) after them.
    fields = sorted(dataclasses.fields(cls), key=lambda f: f.name not in own)
    for f in fields:
        flag = "--" + f.name.replace("_", "-")
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kwargs: dict[str, Any] = {"default": default, "help": docs.get(f.name, " ")}
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        optional = origin in (typing.Union, types.UnionType) and type(None) in args
        if optional:
            tp = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs["choices"] = list(args)
            kwargs["type"] = type(args[0])
        else:
            kwargs["type"] = tp
        parser.add_argument(flag, dest=f.name, **kwargs)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up log")
    return parser


def parse_config(cls: type[C], argv: Sequence[str] | None = None) -> C:
    """Parse ``argv`` into ``cls``; exits with code 2 and one line on bad input."""
    parser = make_parser(cls)
    ns = vars(parser.parse_args(argv))
    ns.pop("verbose")
    given = _given_flags(parser, argv, list(ns))
    try:
        config = cls(**ns)
        with contextlib.suppress(AttributeError, TypeError):  # a slotted config cannot take it: nothing refused
            object.__setattr__(config, "_given_flags", given)  # for RunConfig.refuse_unused; not a field
        check_ranges(config)
        validate = getattr(config, "validate", None)
        if validate:
            validate()
    except UsageError as e:
        parser.error(str(e))
    return config


def _given_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None, names: list[str]) -> frozenset:
    """The fields set on the command line (not left at their defaults): parsed again with a marker as default."""
    unset = object()
    parser.set_defaults(**{name: unset for name in names})
    return frozenset(k for k, v in vars(parser.parse_args(argv)).items() if k in names and v is not unset)


def run_main(train_fn: Callable[[C], Any], cls: type[C], argv: Sequence[str] | None = None) -> int:
    """Parse a config and call ``train_fn``; returns the exit code, never a traceback for expected faults.

    Bad input (a UsageError, a file that cannot be read or written) is one line and code 2; a
    non-finite value is one line and code 1 (the last good checkpoint is kept); Ctrl-C that reaches
    here (a second Ctrl-C, or one outside training) is one line and code 130.
    """
    from core.device import enable_compilation_cache
    from core.runs import NonFiniteLossError

    prog = sys.argv[0].split("/")[-1] if sys.argv and sys.argv[0] else "customloop"
    try:
        config = parse_config(cls, argv)
    except SystemExit as e:  # --help (0) or a bad flag (2, its line already printed)
        return int(e.code or 0)
    try:
        enable_compilation_cache()
        train_fn(config)
    except NonFiniteLossError as e:
        print(f"{prog}: stopped: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        return _bad_input(prog, e)
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


def _bad_input(prog: str, e: Exception) -> int:
    """Exit code 2 and one line for the faults of the input (a UsageError, a check of the step's inputs, a file
    or folder that cannot be read or written, sizes that ran out of memory); anything else is re-raised."""
    from core.step import InputError

    if isinstance(e, UsageError | InputError | OSError):
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
    elif out_of_memory(e):
        print(f"{prog}: error: out of memory ({_one_line(e)[:200]}); lower the sizes in the flags", file=sys.stderr)
    else:
        raise e
    return 2


def out_of_memory(e: BaseException) -> bool:
    """Host or device memory ran out: NumPy's MemoryError, TensorFlow's ResourceExhaustedError, XLA's status."""
    text = str(e)
    return (
        isinstance(e, MemoryError)
        or type(e).__name__ == "ResourceExhaustedError"
        or "RESOURCE_EXHAUSTED" in text
        or "Out of memory" in text
    )


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__
