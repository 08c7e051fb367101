"""The decoding settings an adapter was tuned with, saved next to its weights (``decode.yaml``).

``padellm tune`` chooses them on dev data and writes the file; ``padellm.load``, ``padellm extract``,
``padellm serve`` and ``padellm eval`` start from it and apply only the fields a user sets. An adapter without
the file decodes with ``DecodeConfig``'s defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import yaml

from padellm.engine.decoding import DecodeConfig
from padellm.errors import ConfigError

DECODE_FILE = "decode.yaml"
FIELDS = tuple(f.name for f in dataclasses.fields(DecodeConfig))


def read_decode_settings(folder: str | Path) -> dict:
    """The fields ``folder/decode.yaml`` sets (``{}`` when there is no such file), checked against
    ``DecodeConfig``: an unknown field or a bad value names the file."""
    path = Path(folder) / DECODE_FILE
    if not path.is_file():
        return {}
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not a YAML file ({err})") from err
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: expected a mapping of DecodeConfig fields; got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(unknown)}; DecodeConfig has {', '.join(FIELDS)}")
    try:
        DecodeConfig(**settings)
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{path}: {err}") from err
    return settings


def adapter_decode_config(folder: str | Path, overrides: Mapping | None = None) -> DecodeConfig:
    """``folder``'s tuned settings (``decode.yaml``) with ``overrides`` (field -> value) on top."""
    unknown = sorted(set(overrides or {}) - set(FIELDS))
    if unknown:
        raise ConfigError(f"decode settings: unknown field(s) {', '.join(unknown)}")
    return DecodeConfig(**{**read_decode_settings(folder), **(overrides or {})})


def resolve_decode_config(folder: str | Path, decode_config: DecodeConfig | Mapping | None) -> DecodeConfig:
    """What an adapter decodes with when given ``decode_config``: a ``DecodeConfig`` as it is; None or a mapping
    of fields: the adapter's tuned settings with those fields on top."""
    if isinstance(decode_config, DecodeConfig):
        return decode_config
    return adapter_decode_config(folder, decode_config)


def write_decode_settings(folder: str | Path, settings: Mapping, comment: str) -> Path:
    """Write ``settings`` (DecodeConfig fields) to ``folder/decode.yaml`` under ``comment`` (how they were
    chosen, one ``#`` line each)."""
    DecodeConfig(**settings)  # refuse what could not be read back
    path = Path(folder) / DECODE_FILE
    header = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
    path.write_text(header + yaml.safe_dump(dict(settings), sort_keys=False), encoding="utf-8")
    return path
