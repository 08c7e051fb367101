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
                # Plain text for --help: collapse whitespace, drop reST literal markup, escape argparse's %.
                docs[node.target.id] = " ".join(following.value.value.replace("``", "").replace("%", "%%").split())
    return docs


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "",
                            default_from: str = "") -> None:
    """Add ``--{prefix}{field}`` for every field of ``cls`` (underscores become dashes). ``default_from``: the
    fields' defaults come from elsewhere (named in the help, e.g. "the adapter's decode.yaml"): a flag the user
    does not give stays absent from the namespace (see :func:`given_fields`)."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag = f"--{prefix}{field.name}".replace("_", "-")
        help_text = docs.get(field.name, "")
        default = argparse.SUPPRESS if default_from else field.default
        shown = f"{default_from}, else {field.default}" if default_from else field.default
        hint = hints[field.name]
        if hint is bool:
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{help_text} (default: {shown})" if default_from else help_text)
        elif typing.get_origin(hint) is tuple:  # repeatable: each use adds one item
            parser.add_argument(flag, dest=field.name, action="append", metavar="VALUE",
                                default=argparse.SUPPRESS if default_from else None, help=help_text)
        else:
            kind = hint if hint in (int, float, str) else str
            parser.add_argument(flag, dest=field.name, type=kind, default=default,
                                help=f"{help_text} (default: {shown})")


def given_fields(cls: type, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` the user set on a command line built with ``add_dataclass_arguments(...,
    default_from=...)``: ``{field: value}``."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def dataclass_from_args(cls: type, args: argparse.Namespace):
    """Build ``cls`` from the parsed flags that :func:`add_dataclass_arguments` added."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        value = getattr(args, field.name)
        if typing.get_origin(hints[field.name]) is tuple:
            value = tuple(value or ())
        values[field.name] = value
    return cls(**values)


def dataclass_to_argv(config) -> list[str]:
    """The flags that rebuild ``config`` through :func:`add_dataclass_arguments` (fields left at their default
    are omitted): for handing a config to a child process's command line."""
    argv = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value == field.default:
            continue
        flag = field.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, tuple):
            argv += [item for v in value for item in (f"--{flag}", str(v))]
        else:
            argv += [f"--{flag}", str(value)]
    return argv


def add_override_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """``--field`` and ``--section.field`` flags for a config with nested dataclass sections. Their values stay
    strings and default to absent: they override a YAML file, and the config loader converts and validates them."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            section_docs = field_docs(hint)
            for sub in dataclasses.fields(hint):
                parser.add_argument(f"--{field.name}.{sub.name}", dest=f"{field.name}.{sub.name}", default=argparse.SUPPRESS,
                                    metavar=typing.get_type_hints(hint)[sub.name].__name__.upper(),
                                    help=f"{section_docs.get(sub.name, '')} (default: {sub.default})")
        else:
            parser.add_argument(f"--{field.name}", dest=field.name, default=argparse.SUPPRESS,
                                help=f"{docs.get(field.name, '')} (default: {field.default!r})")


def overrides_from_args(args: argparse.Namespace, cls: type) -> dict[str, str]:
    """The ``{"section.field": value}`` overrides that :func:`add_override_arguments` parsed."""
    names = set()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            names |= {f"{field.name}.{sub.name}" for sub in dataclasses.fields(hint)}
        else:
            names.add(field.name)
    return {name: value for name, value in vars(args).items() if name in names}
