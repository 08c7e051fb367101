"""Config files: YAML (or nothing) plus ``section.field`` overrides -> a frozen config dataclass, every problem
(unknown keys, wrong types, invalid values) reported at once; and back to YAML next to what was trained."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import yaml

from padellm.errors import ConfigError


def config_from_dict(raw: dict, source: str, cls: type):
    """Build the config dataclass ``cls`` from nested dicts: fields typed as dataclasses are sections
    (``data.dataset``); unknown keys and wrong types are rejected, all problems at once."""
    problems = []
    hints = typing.get_type_hints(cls)
    top_fields = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict = {}
    for key, value in raw.items():
        if key not in top_fields:
            problems.append(f"{source}: unknown key {key!r} (known: {', '.join(sorted(top_fields))})")
        elif dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                problems.append(f"{source}: {key} must be a mapping; got {value!r}")
                continue
            section = hints[key]
            section_fields = {f.name for f in dataclasses.fields(section)}
            section_hints = typing.get_type_hints(section)
            values = {}
            for name, item in value.items():
                if name not in section_fields:
                    problems.append(f"{source}: unknown key {key}.{name} (known: {', '.join(section_fields)})")
                    continue
                coerced, problem = _coerce(item, section_hints[name], f"{key}.{name}")
                if problem:
                    problems.append(f"{source}: {problem}")
                else:
                    values[name] = coerced
            kwargs[key] = values
        else:
            coerced, problem = _coerce(value, hints[key], key)
            if problem:
                problems.append(f"{source}: {problem}")
            else:
                kwargs[key] = coerced
    # Validate what could be read too, so that one error lists every problem.
    try:
        sections = {k: hints[k](**v) for k, v in kwargs.items() if dataclasses.is_dataclass(hints[k])}
        config = cls(**{**kwargs, **sections})
    except ConfigError as err:
        problems += [f"{source}: {p}" for p in err.problems]
    if problems:
        raise ConfigError(problems)
    return config


def _coerce(value, kind, name: str):
    """YAML and command-line values -> the field's type; ``(value, problem or None)``."""
    if kind is bool:
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes"), None
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        if isinstance(value, str):
            try:
                return int(value), None
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        if isinstance(value, str):
            try:
                return float(value), None
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value, None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value), None
    return value, f"{name} must be {kind.__name__}; got {value!r}"


def read_raw_config(path: str | Path | None, overrides: dict[str, str] | None = None) -> tuple[dict, str]:
    """A YAML config file (or none) as nested dicts with ``section.field`` overrides applied, and its name."""
    raw: dict = {}
    source = "config"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        source = str(path)
    for dotted, value in (overrides or {}).items():
        section, _, name = dotted.partition(".")
        if name:
            raw.setdefault(section, {})
            if isinstance(raw[section], dict):
                raw[section][name] = value
        else:
            raw[dotted] = value
    return raw, source


def load_config(path: str | Path | None, overrides: dict[str, str] | None, cls: type):
    """A YAML config file (or none) with ``section.field`` overrides applied on top, as the dataclass ``cls``.
    Which class a file needs (its ``mode``) is for the command that dispatches to decide."""
    raw, source = read_raw_config(path, overrides)
    return config_from_dict(raw, source, cls)


def save_config(config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True),
                          encoding="utf-8")
