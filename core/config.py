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


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right after a field) of a dataclass."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
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
    for f in dataclasses.fields(cls):
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
        validate = getattr(config, "validate", None)
        if validate:
            validate()
    except UsageError as e:
        parser.error(str(e))
    return config


def run_main(train_fn: Callable[[C], Any], cls: type[C], argv: Sequence[str] | None = None) -> int:
    """Parse a config and call ``train_fn``; returns the exit code.

    A UsageError raised during the run (a bad file, say) is one line and code 2; a
    non-finite loss is one line and code 1 (the last good checkpoint is kept).
    """
    from core.runs import NonFiniteLossError

    config = parse_config(cls, argv)
    prog = sys.argv[0].split("/")[-1] if sys.argv and sys.argv[0] else "customloop"
    try:
        train_fn(config)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"{prog}: stopped: {e}", file=sys.stderr)
        return 1
    return 0
