"""The OpenAPI schema as the server enforces it: the request's limits come from the same ``ServerConfig`` and the
same served adapters that ``NERService.check`` enforces, so that a client generated from ``/openapi.json`` sends
only what is accepted. (The checks stay in the service, where their messages name each limit; this module only
writes them into the schema.)"""

from __future__ import annotations

from fastapi.openapi.utils import get_openapi

from padellm_serve.auth import CHALLENGE, MESSAGE, KeyCheck
from padellm_serve.config import ServerConfig
from padellm_serve.service import NON_BLANK


def common_labels(labels_by_mode: dict[str, tuple[str, ...]]) -> list[str]:
    """Labels every served mode accepts (a request may name them whatever its mode)."""
    common = set.intersection(*(set(labels) for labels in labels_by_mode.values()))
    return sorted(common)


def _text(config: ServerConfig) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": config.max_text_chars, "pattern": NON_BLANK.pattern}


def constrain_request(properties: dict, config: ServerConfig, labels_by_mode: dict[str, tuple[str, ...]],
                      default_mode: str) -> None:
    """Write the server's limits into the ``NERRequest`` schema's ``properties`` (in place)."""
    text = _text(config)
    properties["input"]["anyOf"] = [text, {"type": "array", "items": text, "minItems": 1,
                                           "maxItems": config.max_texts}]
    labels = next(s for s in properties["labels"]["anyOf"] if s.get("type") == "array")
    labels["items"] = {"type": "string", "enum": common_labels(labels_by_mode)}
    count = next(s for s in properties["max_count"]["anyOf"] if s.get("type") == "integer")
    count["maximum"] = config.max_count_limit
    mode = next(s for s in properties["mode"]["anyOf"] if s.get("type") == "string")
    mode["enum"] = sorted(labels_by_mode)
    properties["mode"]["description"] += f" This server: {', '.join(sorted(labels_by_mode))}; default {default_mode}."
    if len({tuple(sorted(labels)) for labels in labels_by_mode.values()}) > 1:
        properties["labels"]["description"] += " Per mode: " + "; ".join(
            f"{mode}: {', '.join(labels)}" for mode, labels in sorted(labels_by_mode.items())) + "."


def openapi_schema(app, config: ServerConfig, labels_by_mode: dict[str, tuple[str, ...]], default_mode: str,
                   keys: KeyCheck) -> dict:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    constrain_request(schema["components"]["schemas"]["NERRequest"]["properties"], config, labels_by_mode,
                      default_mode)
    schema["paths"]["/v1/ner"]["post"]["description"] = (
        f"At most {config.max_texts} texts of at most {config.max_text_chars} characters each, in a JSON body "
        f"(Content-Type: application/json) of at most {config.max_body_bytes} bytes; 413 above any of the three, "
        "naming the limit. A text longer than the engine's context is decoded in windows. A request "
        f"the server would not finish within {config.request_timeout_s:g} s, behind the work already queued, is "
        "refused at once with 503 and Retry-After.")
    if keys.enabled:
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                              "description": MESSAGE}}
        unauthorized = {"description": f"No valid API key (WWW-Authenticate: {CHALLENGE})",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                if not keys.is_public(method.upper(), path):
                    operation["security"] = [{"bearer": []}]
                    operation.setdefault("responses", {})["401"] = unauthorized
    return schema
