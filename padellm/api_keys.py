"""API keys of ``padellm serve``: read from a file (one key a line, so that keys can be rotated), the
``PADELLM_API_KEY`` environment variable, or a command-line value; shared by the server and its clients."""

from __future__ import annotations

import os
from pathlib import Path

from padellm.errors import ConfigError

ENVIRONMENT_VARIABLE = "PADELLM_API_KEY"
MIN_KEY_CHARS = 16


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an API key (None: it can)."""
    if len(key) < MIN_KEY_CHARS:
        return f"{len(key)} characters; an API key needs at least {MIN_KEY_CHARS}"
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in key):
        return "contains whitespace, a control or a non-ASCII character (an HTTP header could not carry it)"
    return None


def read_key_file(path: str | Path) -> list[str]:
    """The keys in ``path``: one a line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(f"--api-key-file {path}: cannot read it ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--api-key-file {path}: not UTF-8 text") from None
    keys, problems = [], []
    for number, line in enumerate(lines, 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        problem = key_problem(key)
        if problem:  # the key itself is never echoed: the message may reach a log
            problems.append(f"--api-key-file {path}, line {number}: {problem}")
        keys.append(key)
    if problems:
        raise ConfigError(problems)
    if not keys:
        raise ConfigError(f"--api-key-file {path}: no key in it (one key a line; lines starting with # are skipped)")
    return keys


def _checked(source: str, key: str) -> str:
    problem = key_problem(key.strip())
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return key.strip()


def server_keys(key_file: str | Path | None = None, key: str | None = None) -> list[str]:
    """Every key a server accepts: the file's, ``key`` and ``$PADELLM_API_KEY`` (empty: the server is open)."""
    keys = read_key_file(key_file) if key_file else []
    if key:
        keys.append(_checked("--api-key", key))
    if os.environ.get(ENVIRONMENT_VARIABLE):
        keys.append(_checked(f"${ENVIRONMENT_VARIABLE}", os.environ[ENVIRONMENT_VARIABLE]))
    return list(dict.fromkeys(keys))


def client_key(key_file: str | Path | None = None, key: str | None = None) -> str | None:
    """The key a client sends: ``key``, else the file's first, else ``$PADELLM_API_KEY``; None without any."""
    if key:
        return _checked("--api-key", key)
    if key_file:
        return read_key_file(key_file)[0]
    if os.environ.get(ENVIRONMENT_VARIABLE):
        return _checked(f"${ENVIRONMENT_VARIABLE}", os.environ[ENVIRONMENT_VARIABLE])
    return None
