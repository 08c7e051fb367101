"""A small client of ``padellm serve`` (standard library only)::

    from padellm.client import NERClient
    client = NERClient("http://127.0.0.1:8000")
    client.extract(["Peter Blackburn went to Brussels."])   # -> [[{"start": 0, "end": 15, "label": "PER", ...}]]

A server started with an API key needs it: ``NERClient(url, api_key=KEY)``, or ``$PADELLM_API_KEY``. The key
files and variable are read here for both sides: a file holds one key a line (so that keys can be rotated), and
the server accepts every key given, the client sends one.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from padellm.errors import ConfigError, InvalidRequestError, PadellmError


# ------------------------------------------------------------------ API keys
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


# ------------------------------------------------------------------ the client
class ServerError(PadellmError, RuntimeError):
    """The server answered with an error (or could not be reached); ``status`` is 0 when there was no answer."""

    def __init__(self, url: str, status: int, message: str, body: dict | None = None,
                 retry_after_s: float | None = None):
        self.url, self.status, self.body, self.retry_after_s = url, status, body or {}, retry_after_s
        super().__init__(f"{url}: HTTP {status}: {message}" if status else f"{url}: {message}")


class NERClient:
    def __init__(self, url: str = "http://127.0.0.1:8000", timeout: float = 120.0, api_key: str | None = None):
        """``api_key``: sent as ``Authorization: Bearer``; default ``$PADELLM_API_KEY`` where it is set."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._api_key = client_key(key=api_key)

    def extract(self, texts: str | list[str], **options) -> list[list[dict]]:
        """Entities of each text (a list per text; for one string, still a list of one). ``options`` are the
        request's fields: labels, mode, dedup, max_count, return_probabilities, return_timings."""
        return [result["entities"] for result in self.request(texts, **options)["results"]]

    def request(self, texts: str | list[str], **options) -> dict:
        """The whole ``/v1/ner`` response (results, usage, timings)."""
        return self._call("POST", "/v1/ner", {"input": texts, **options})

    def health(self) -> dict:
        return self._call("GET", "/health")

    def models(self) -> list[dict]:
        return self._call("GET", "/v1/models")["data"]

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        url = self.url + path
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data else {}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            if path == "/health" and isinstance(body, dict) and "status" in body:
                return body  # loading / failed come with 503: still an answer
            error = body.get("error", {}) if isinstance(body, dict) else {}
            problems = error.get("problems") or []
            if err.code == 400 and len(problems) == 1 and problems[0]["field"] != "body":
                problem = problems[0]
                raise InvalidRequestError(problem["field"], _value_at(payload, problem["field"]),
                                          problem["message"]) from None
            message = error.get("message") or raw.decode("utf-8", "replace")[:200]
            if err.code == 401:
                message += (" (this client sent a key the server does not accept)" if self._api_key else
                            f" (give the client one: api_key=..., --api-key-file or ${ENVIRONMENT_VARIABLE})")
            retry_after = err.headers.get("Retry-After", "")
            raise ServerError(url, err.code, message, body,
                              float(retry_after) if retry_after.isdigit() else None) from None
        except urllib.error.URLError as err:
            raise ServerError(url, 0, f"cannot reach the server ({err.reason})") from None


def _value_at(payload: dict | None, field: str):
    """The value of ``input[2]``-style ``field`` in ``payload`` (None where it does not resolve)."""
    name, _, rest = field.partition("[")
    value = (payload or {}).get(name)
    if rest and isinstance(value, list):
        index = rest.rstrip("]")
        value = value[int(index)] if index.isdigit() and int(index) < len(value) else None
    return value
