"""Command-line flags generated from a frozen config dataclass, so that the CLI and the config class can
never disagree: one flag per field, its help text taken from the field's docstring, and validation left to
the class's ``__post_init__`` (which names the parameter and the value it rejects)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import cache


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (``name: type = default`` then ``\"\"\"...\"\"\"``)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body
        for node, following in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                # Plain text for --help: collapse whitespace, drop reST literal markup.
                docs[node.target.id] = " ".join(following.value.value.replace("``", "").split())
    return docs


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add ``--{prefix}{field}`` for every field of ``cls`` (underscores become dashes)."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag = f"--{prefix}{field.name}".replace("_", "-")
        help_text = docs.get(field.name, "")
        default = field.default
        hint = hints[field.name]
        if hint is bool:
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
        else:
            kind = hint if hint in (int, float, str) else str
            parser.add_argument(flag, dest=field.name, type=kind, default=default,
                                help=f"{help_text} (default: {default})")


def dataclass_from_args(cls: type, args: argparse.Namespace):
    """Build ``cls`` from the parsed flags that :func:`add_dataclass_arguments` added."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
