"""The wire types of the HTTP API (pydantic models) and the one place they turn into library types.

Types are strict (a number is not a string, ``"yes"`` is not a boolean) and unknown fields are rejected, so
that a typo in a field name is an error rather than a silently ignored option.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from padellm.engine.decoding import DecodeConfig
from padellm.engine.dedup import STRATEGIES
from padellm.ner import entity_record
from padellm.types import Entity, surrogate_problem

Mode = Literal["parallel", "autoregressive"]
Text = Annotated[StrictStr, Field(min_length=1)]


def _whole_number(value):
    """JSON Schema counts 2.0 as an integer (generated clients send it): read it as 2; strings, booleans and
    fractions stay errors."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Count = Annotated[StrictInt, Field(ge=1), BeforeValidator(_whole_number)]


class NERRequest(BaseModel):
    """Entities of one text or of a list of texts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: Text | list[Text] = Field(
        description="One text, or a list of texts decoded together (at most the server's max_texts).")
    labels: list[StrictStr] | None = Field(
        None, min_length=1, description="Only these of the adapter's labels (default: all of them).")
    mode: Mode | None = Field(None, description="parallel (PaDeLLM) or autoregressive (the baseline adapter, "
                                                "when the server was started with one). Default: parallel where "
                                                "the server has a parallel adapter, else autoregressive.")
    dedup: Literal[tuple(STRATEGIES)] | None = Field(  # type: ignore[valid-type]
        None, description="De-duplication across labels: paper (a mention keeps its most probable label) or none.")
    max_count: Count | None = Field(
        None, description="Cap on the mentions per label (at most the server's max_count_limit).")
    return_probabilities: StrictBool = Field(
        True, description="Add each entity's log-probability (score) and probability (parallel mode only).")
    return_timings: StrictBool = Field(False, description="Add per-stage timings in milliseconds.")

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)

    def decode_config(self, default: DecodeConfig) -> DecodeConfig:
        """The server's decoding settings with this request's overrides."""
        overrides = {}
        if self.dedup is not None:
            overrides["dedup"] = self.dedup
        if self.max_count is not None:
            overrides["max_count"] = self.max_count
        return replace(default, **overrides)


class EntityOut(BaseModel):
    start: int = Field(description="First character of the mention (0-based).")
    end: int = Field(description="One past its last character.")
    label: str
    text: str = Field(description="The mention: input[start:end].")
    score: float | None = Field(None, description="Log-probability of the mention's generated tokens.")
    probability: float | None = Field(None, description="exp(score).")

    @classmethod
    def of(cls, text: str, entity: Entity, probabilities: bool) -> EntityOut:
        record = entity_record(text, entity)
        if not probabilities:
            record.pop("score", None), record.pop("probability", None)
        return cls(**record)


class TextResult(BaseModel):
    entities: list[EntityOut]


class Usage(BaseModel):
    texts: int
    sequences: int = Field(description="Sequences decoded: count prompts + branches, or one per text.")
    generated_tokens: int


class NERResponse(BaseModel):
    id: str = Field(description="The request id (also in the X-Request-ID header).")
    model: str = Field(description="The adapter that decoded the request.")
    mode: Mode
    results: list[TextResult] = Field(description="One per input text, in order.")
    usage: Usage
    timings_ms: dict[str, float] | None = Field(None, description="Per-stage wall time (with return_timings).")


class Problem(BaseModel):
    field: str = Field(description="The request field, e.g. input[2] or max_count; body for the whole body.")
    message: str
    limit: int | float | None = Field(None, description="The limit the value exceeds, where there is one.")


class ErrorBody(BaseModel):
    type: str = Field(description="invalid_request, unauthorized, payload_too_large, unsupported_media_type, "
                                  "not_ready, overloaded, timeout, internal.")
    message: str
    request_id: str
    problems: list[Problem] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody


class ModelInfo(BaseModel):
    id: str = Field(description="The adapter's name (its folder's name).")
    mode: Mode
    base_model: str = Field(description="The base model: a packaged model's padellm name, or its folder's name.")
    labels: list[str]
    template: str = Field(description="The prompt template's name and version the adapter was trained with.")


class ModelsResponse(BaseModel):
    data: list[ModelInfo]


class Health(BaseModel):
    status: Literal["loading", "ok", "failed"]
    detail: str | None = None


# ------------------------------------------------------------------ validation errors -> problems
def is_union_tag(part) -> bool:
    """pydantic names the members of a union in error locations ("constrained-str", "list[constrained-str]");
    field names are identifiers and never builtin type names."""
    return isinstance(part, str) and (not part.isidentifier() or part in ("str", "int", "float", "bool", "list"))


def field_path(loc: tuple) -> str:
    """``("body", "input", 2)`` -> ``input[2]``; ``("body",)`` -> ``body``."""
    path = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not is_union_tag(part):
            path += f".{part}" if path else str(part)
    return path or "body"


def problems_from_validation(errors: list[dict]) -> list[Problem]:
    """pydantic / FastAPI validation errors as one problem per field. A value that fits neither side of
    ``str | list[str]`` gives one problem, or the element's own where a list had a bad element."""
    problems: dict[str, Problem] = {}
    union_fields: set[str] = set()
    for error in errors:
        loc = tuple(error.get("loc", ()))
        field = field_path(loc)
        kind = error.get("type", "")
        if kind == "json_invalid":
            position = loc[1] if len(loc) > 1 else None
            reason = error.get("ctx", {}).get("error", "invalid JSON")
            problems["body"] = Problem(field="body", message=f"not valid JSON: {reason}"
                                       + (f" at character {position}" if isinstance(position, int) else ""))
            continue
        if any(is_union_tag(part) for part in loc):
            union_fields.add(loc[1] if loc and loc[0] == "body" else loc[0])
            if is_union_tag(loc[-1]):  # the value itself fits no member of the union
                continue
        limit = error.get("ctx", {}).get("ge", error.get("ctx", {}).get("le"))
        message = "unknown field" if kind == "extra_forbidden" else error.get("msg", kind)
        if kind == "missing":
            message = "required"
        problems.setdefault(field, Problem(field=field, message=message, limit=limit))
    for name in union_fields:
        if not any(key == name or key.startswith(f"{name}[") for key in problems):
            problems[name] = Problem(field=name, message="must be a non-empty string or a list of non-empty strings")
    return list(problems.values())


# ------------------------------------------------------------------ what an error echoes
MAX_PROBLEMS = 20  # an error lists this many problems, then how many more there were
MAX_ECHO_CHARS = 60  # longest echo of a request's value in a message


def brief(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``value`` as a message quotes it: whole when short, else its start and its length."""
    shown = str(value) if isinstance(value, int) and not isinstance(value, bool) else repr(value)
    if len(shown) <= limit:
        return shown
    unit = "digits" if isinstance(value, int) else "characters"
    return f"{shown[: limit - 20]}... ({len(shown)} {unit})"


def capped(problems: list[Problem]) -> list[Problem]:
    """The first ``MAX_PROBLEMS`` problems, and one more that counts the rest."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS],
            Problem(field="body", message=f"{len(problems) - MAX_PROBLEMS} more problems not listed")]


# ------------------------------------------------------------------ the body, before the schema reads it
class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        self.key = key


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict:
    keys = set()
    for key, _ in pairs:
        if key in keys:
            raise _DuplicateKey(key)
        keys.add(key)
    return dict(pairs)


class _LongInteger:
    def __init__(self, digits: int):
        self.digits = digits


def _parse_int(digits: str):
    return int(digits) if len(digits) <= sys.get_int_max_str_digits() else _LongInteger(len(digits))


def _paths(value, path: str = ""):
    """``(field path, value)`` of every value nested in ``value``, without recursion (nesting may be deep)."""
    stack = [(path, value)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else k, v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))


def body_problem(body: bytes) -> Problem | None:
    """What the schema cannot report well about a JSON body (None: nothing, or a syntax error the schema names):
    a key given twice (strict types: the second would silently win), nesting too deep to read, an integer too long
    for Python to read, a string with an unpaired UTF-16 surrogate."""
    try:
        value = json.loads(body, object_pairs_hook=_unique_pairs, parse_int=_parse_int)
    except _DuplicateKey as err:
        return Problem(field=err.key, message=f"the key {brief(err.key)} is given more than once")
    except RecursionError:
        return Problem(field="body", message="JSON nested too deeply to read")
    except ValueError:
        return None  # a syntax error: the schema's own message names its position
    for path, item in _paths(value):
        if isinstance(item, _LongInteger):
            return Problem(field=path or "body", message=f"an integer of {item.digits} digits is too long to read",
                           limit=sys.get_int_max_str_digits())
        if isinstance(item, str):
            problem = surrogate_problem(item)
            if problem:
                return Problem(field=path or "body", message=problem)
    return None
