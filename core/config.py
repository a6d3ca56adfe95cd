"""A dataclass config becomes argparse flags; a bad value is the parser's one-line error (exit code 2).

What a command does with the parsed config, and how its faults become exit codes, is core/cli.py's business.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import math
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from core.errors import UsageError

C = TypeVar("C")


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
        for item in value if isinstance(value, tuple) else (value,):  # a list flag: each value in the range
            if isinstance(item, float) and not math.isfinite(item) and not (f.metadata.get("infinite") and item > 0):
                raise UsageError(f"{flag} must be a finite number, got {item}")
            message = _range_error(f.name, item, f.metadata.get("range", {}))
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
    """Bad input is one line on stderr and exit code 2 (argparse would print the whole usage block first).

    ``programs`` names the modules of sibling commands (``"examples.gan_images"``): a flag this command does not
    have but one of them does is named in the error, so a user who picked the wrong program learns which one."""

    def __init__(self, *args: Any, programs: Sequence[str] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.programs = tuple(programs)

    def error(self, message: str):
        if message.startswith("unrecognized arguments:"):
            message += _owners(message.split(":", 1)[1].split(), self.programs)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _owners(words: Sequence[str], programs: Sequence[str]) -> str:
    """``" (--epochs is a flag of python -m examples.gan_images)"`` for the given flags other programs have."""
    notes = []
    for flag in (w.split("=", 1)[0] for w in words if w.startswith("--")):
        owners = [f"python -m {m}" for m in dict.fromkeys(programs) if flag in _flags_of(m)]
        if owners:
            notes.append(f"{flag} is a flag of {', '.join(owners[:-1])}{' and ' if owners[1:] else ''}{owners[-1]}")
    return f" ({'; '.join(notes)})" if notes else ""


def _flags_of(module: str) -> frozenset:
    """The flags of the command ``module`` (its dataclass ``Config``); none if it cannot be imported."""
    try:
        cls = importlib.import_module(module).Config
    except (ImportError, AttributeError):
        return frozenset()
    names = {f.name.replace("_", "-"): f.type for f in dataclasses.fields(cls)}
    return frozenset([f"--{n}" for n in names] + [f"--no-{n}" for n, tp in names.items() if tp in (bool, "bool")])


def number_list(text: str) -> tuple[float, ...]:
    """An argparse ``type`` for a flag that takes one number or several, comma-separated (a sweep's values)."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or numbers separated by commas, got {text!r}") from None
    return values


def _is_list(tp: Any) -> bool:
    """A ``tuple[float, ...]`` field, optional or not: a flag that takes a comma-separated list."""
    return typing.get_origin(tp) is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(tp))


def _one_number(tp: type, lists: Sequence[str]) -> Callable[[str], Any]:
    """An argparse ``type`` for a flag of one number in a config that has list flags: a list given to it is
    refused naming the flags that take lists (the ones a population varies per member)."""

    def parse(text: str):
        try:
            return tp(text)
        except ValueError:
            if "," not in text:
                raise
        names = ", ".join(lists[:-1]) + (" and " if len(lists) > 1 else "") + lists[-1]
        raise argparse.ArgumentTypeError(f"takes one value, got {text!r}; lists of values are for {names}")

    parse.__name__ = tp.__name__  # argparse's own message says "invalid float value" by this name
    return parse


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts (steps, seeds, rounds): a bad one is the parser's one-line error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def make_parser(cls: type, description: str | None = None, programs: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The flags of a dataclass config: one per field, its type, range, default and docstring as help."""
    parser = OneLineErrorParser(
        description=description or (inspect.getdoc(cls) or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        programs=programs,
    )
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    own = cls.__dict__.get("__annotations__", {})
    # The example's own flags first, the inherited run flags (--seed, --out, --resume, ...) after them.
    fields = sorted(dataclasses.fields(cls), key=lambda f: f.name not in own)
    lists = [f"--{f.name.replace('_', '-')}" for f in fields if _is_list(hints[f.name])]
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
        elif origin is tuple:  # tuple[float, ...]: one value or several, comma-separated ("3e-4,1e-3")
            kwargs["type"] = number_list
        elif origin is typing.Literal:
            kwargs["choices"] = list(args)
            kwargs["type"] = type(args[0])
        elif tp in (int, float) and lists:
            kwargs["type"] = _one_number(tp, lists)
        else:
            kwargs["type"] = tp
        parser.add_argument(flag, dest=f.name, **kwargs)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up log")
    return parser


def parse_config(cls: type[C], argv: Sequence[str] | None = None, programs: Sequence[str] = ()) -> C:
    """Parse ``argv`` into ``cls``; exits with code 2 and one line on bad input (naming the sibling program of
    ``programs`` that has a flag this one lacks)."""
    parser = make_parser(cls, programs=programs)
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
