"""The OpenAPI schema says what the server enforces: its limits come from the server's config and its served
adapters, and every request schemathesis generates from it as valid (positive data) is accepted, against the real
HTTP server on the tiny adapters (transformers backend, in a thread; the vLLM server's fuzz is in test_server)."""

import json

import pytest
from hypothesis import HealthCheck, given, settings

from conftest import require
from padellm_serve.config import ServerConfig
from padellm_serve.schema import common_labels, constrain_request

from live_server import live_server
from test_app import DECODE
from threaded_backend import transformers_loader

LIMITS = dict(max_texts=3, max_text_chars=120, max_count_limit=4)


def request_properties():
    from padellm_serve.protocol import NERRequest

    return NERRequest.model_json_schema()["properties"]


def test_the_request_schema_carries_the_limits_the_server_enforces():
    properties = request_properties()
    config = ServerConfig(max_texts=7, max_text_chars=99, max_count_limit=3)
    constrain_request(properties, config, {"parallel": ("LOC", "PER"), "autoregressive": ("PER", "LOC", "ORG")},
                      "parallel")
    text, texts = properties["input"]["anyOf"]
    assert text == {"type": "string", "minLength": 1, "maxLength": 99, "pattern": r"\S"}
    assert texts == {"type": "array", "items": text, "minItems": 1, "maxItems": 7}
    labels = properties["labels"]["anyOf"][0]
    assert labels["items"] == {"type": "string", "enum": ["LOC", "PER"]}  # what every served mode accepts
    assert "autoregressive: PER, LOC, ORG" in properties["labels"]["description"]
    assert properties["max_count"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 3}
    assert properties["mode"]["anyOf"][0]["enum"] == ["autoregressive", "parallel"]
    assert common_labels({"parallel": ("A", "B")}) == ["A", "B"]


@pytest.fixture(scope="module")
def server(tiny_adapters):
    with live_server([tiny_adapters["parallel"], tiny_adapters["autoregressive"]], transformers_loader,
                     **LIMITS) as (url, _, service):
        service.decode_config = DECODE
        yield url


def test_every_request_the_schema_allows_is_accepted(server):
    schemathesis = require("schemathesis")
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    ner = schema["/v1/ner"]["POST"].operation if hasattr(schema["/v1/ner"]["POST"], "operation") \
        else schema["/v1/ner"]["POST"]
    body = ner.definition.raw["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/NERRequest")
    refused, statuses = [], []

    @given(case=ner.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def call(case):
        response = case.call(base_url=server, timeout=60)
        statuses.append(response.status_code)
        if response.status_code != 200:
            refused.append((case.body, response.status_code, response.text[:300]))

    call()
    assert not refused, "\n".join(f"{json.dumps(b)} -> {s}" for b, s, t in refused[:4])
    assert len(statuses) >= 30  # hypothesis found that many distinct valid requests
