"""A dataclass config becomes argparse flags; a bad value becomes one line and exit code 2."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

C = TypeVar("C")


class UsageError(ValueError):
    """Bad user input: reported as one line with exit code 2, never a traceback."""


def arg(default: Any, *, min: float | None = None, max: float | None = None, above: float | None = None) -> Any:
    """A dataclass field whose range is declared once: ``--flag`` values outside it are a one-line error.

    ``min`` / ``max`` are inclusive bounds, ``above`` an exclusive lower bound (learning rates: ``above=0``).
    ``None`` (for optional fields) is always allowed. NaN never passes a range.
    """
    bounds = {k: v for k, v in {"min": min, "max": max, "above": above}.items() if v is not None}
    return dataclasses.field(default=default, metadata={"range": bounds})


def _range_error(name: str, value: Any, bounds: dict) -> str | None:
    if value is None or not bounds:
        return None
    lo, hi, above = bounds.get("min"), bounds.get("max"), bounds.get("above")
    ok = value == value  # NaN fails every comparison below, but make it explicit
    ok = ok and (lo is None or value >= lo) and (hi is None or value <= hi) and (above is None or value > above)
    if ok:
        return None
    lo, hi, above = (_num(b) for b in (lo, hi, above))
    if above is not None and hi is not None:
        want = f"in ({above}, {hi}]"
    elif lo is not None and hi is not None:
        want = f"in [{lo}, {hi}]"
    elif above is not None:
        want = "positive" if above == "0" else f"greater than {above}"
    elif lo is not None:
        want = f"at least {lo}"
    else:
        want = f"at most {hi}"
    return f"--{name.replace('_', '-')} must be {want}, got {value}"


def _num(x: float | None) -> str | None:
    if x is None:
        return None
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_ranges(config: Any) -> None:
    """Raise UsageError for the first field outside the range declared with :func:`arg`."""
    for f in dataclasses.fields(config):
        message = _range_error(f.name, getattr(config, f.name), f.metadata.get("range", {}))
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
    try:
        config = cls(**ns)
        check_ranges(config)
        validate = getattr(config, "validate", None)
        if validate:
            validate()
    except UsageError as e:
        parser.error(str(e))
    return config


def run_main(train_fn: Callable[[C], Any], cls: type[C], argv: Sequence[str] | None = None) -> int:
    """Parse a config and call ``train_fn``; returns the exit code, never a traceback for expected faults.

    Bad input (a UsageError, a file that cannot be read or written) is one line and code 2; a
    non-finite value is one line and code 1 (the last good checkpoint is kept); Ctrl-C that reaches
    here (a second Ctrl-C, or one outside training) is one line and code 130.
    """
    from core.device import enable_compilation_cache
    from core.runs import NonFiniteLossError
    from core.step import InputError

    prog = sys.argv[0].split("/")[-1] if sys.argv and sys.argv[0] else "customloop"
    try:
        config = parse_config(cls, argv)
    except SystemExit as e:  # --help (0) or a bad flag (2, its line already printed)
        return int(e.code or 0)
    try:
        enable_compilation_cache()
        train_fn(config)
    except (UsageError, InputError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder or file the user named cannot be read or written
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"{prog}: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__
