"""The HTTP app in-process (FastAPI's TestClient) on the transformers reference backend: every endpoint, every
kind of bad input, failures, readiness, time-outs and client disconnects."""

import asyncio
import json
import re
import threading
import time

import pytest
from fastapi.testclient import TestClient

from padellm import load
from padellm.engine.decoding import DecodeConfig
from padellm.errors import ConfigError
from padellm_serve.app import create_app, decode_or_abort
from padellm_serve.config import ServerConfig
from padellm_serve.service import NERService

from threaded_backend import SENTENCE, scripted_loader, transformers_loader

LIMITS = ServerConfig(max_texts=4, max_text_chars=2000, max_body_bytes=8192, max_count_limit=5,
                      request_timeout_s=60)
DECODE = DecodeConfig(max_mention_tokens=6, max_autoregressive_tokens=16)


def wait_ready(client, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = client.get("/health")
        if response.json()["status"] != "loading":
            return response
        time.sleep(0.05)
    raise AssertionError("the service did not finish loading")


@pytest.fixture(scope="module")
def service(tiny_adapters):
    return NERService([tiny_adapters["parallel"], tiny_adapters["autoregressive"]], LIMITS, DECODE,
                      loader=transformers_loader)


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        assert wait_ready(client).status_code == 200
        yield client


INTERNALS = re.compile(r"Traceback|File \"|(?<![\w.])/(?:home|root|tmp|usr|opt|var|work)/|\.cache|site-packages")


def assert_no_internals(response) -> None:
    """An error body never shows a path on the server's disk or a traceback."""
    assert not INTERNALS.search(response.text), response.text


def post(client, body, content_type="application/json", **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/v1/ner", content=data, headers={"Content-Type": content_type, **headers})
    if response.status_code >= 400:
        assert_no_internals(response)
    return response


def test_health_and_models(client, tiny_adapters):
    assert client.get("/health").json() == {"status": "ok"}
    answer = client.get("/v1/models")
    models = {m["mode"]: m for m in answer.json()["data"]}
    assert set(models) == {"parallel", "autoregressive"}
    assert models["parallel"]["id"] == tiny_adapters["parallel"].name == "parallel"
    assert models["parallel"]["base_model"] == "tiny-llama"  # a local base model: its folder's name, no path
    assert "/" not in answer.text  # names only: nothing of the server's disk
    assert models["parallel"]["labels"] == ["LOC", "MISC", "ORG", "PER"]
    assert models["parallel"]["template"] == "padellm-en-v1"
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/v1/ner", "/health", "/v1/models", "/metrics"}


@pytest.mark.parametrize("mode", ["parallel", "autoregressive"])
def test_entities_equal_offline_extraction(client, tiny_adapters, mode):
    texts = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "Paris"]
    response = post(client, {"input": texts, "mode": mode, "return_timings": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == mode and body["model"] == tiny_adapters[mode].name and body["usage"]["texts"] == 3
    offline = load(tiny_adapters[mode], "transformers", decode_config=DECODE).run(texts)
    for text, result, expected in zip(texts, body["results"], offline.entities):
        assert [(e["start"], e["end"], e["label"]) for e in result["entities"]] == \
               [(e.start, e.end, e.label) for e in expected]
        assert all(e["text"] == text[e["start"]:e["end"]] for e in result["entities"])
    stages = {"parallel": {"count", "branches", "dedup_align", "total"}, "autoregressive": {"generate", "align", "total"}}
    assert set(body["timings_ms"]) == stages[mode]
    tokens = offline.stats["count_tokens"] + offline.stats["branch_tokens"] if mode == "parallel" \
        else offline.stats["generated_tokens"]
    assert body["usage"]["generated_tokens"] == tokens


@pytest.fixture(scope="module")
def scripted_client(tiny_adapters):
    """The parallel adapter's decoding path on a backend whose answers are known (threaded_backend.ANSWERS)."""
    # Room for the tiny tokenizer's many tokens per word (6 cut "Brussels" to "Brussel").
    service = NERService([tiny_adapters["parallel"]], LIMITS, DecodeConfig(max_mention_tokens=16),
                         loader=scripted_loader)
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        assert wait_ready(client).status_code == 200
        yield client


def test_options_labels_probabilities_and_one_text(scripted_client):
    full = post(scripted_client, {"input": SENTENCE, "max_count": 5, "dedup": "none"}).json()
    assert len(full["results"]) == 1 and "timings_ms" not in full
    entities = full["results"][0]["entities"]
    assert [(e["start"], e["end"], e["label"], e["text"]) for e in entities] == [
        (0, 15, "PER", "Peter Blackburn"), (24, 32, "LOC", "Brussels")]
    assert [e["score"] for e in entities] == pytest.approx([-0.05, -0.2])  # the mention's log-probability
    assert [e["probability"] for e in entities] == pytest.approx([0.951229, 0.818731])  # its exp
    only = post(scripted_client, {"input": SENTENCE, "labels": ["LOC"], "return_probabilities": False}).json()
    assert only["results"][0]["entities"] == [{"start": 24, "end": 32, "label": "LOC", "text": "Brussels"}]


LONG_TEXT = " ".join(f"word{i}" for i in range(200))  # < 2000 characters, > 256 tokens
BAD_REQUESTS = [
    ({"input": ""}, "input", None),
    ({"input": ["fine", "  \n"]}, "input[1]", None),
    ({"input": []}, "input", None),
    ({"input": 3}, "input", None),
    ({"input": ["a", 3]}, "input[1]", None),
    ({"input": None}, "input", None),
    ({"input": "a", "labels": ["PER", "FOO"]}, "labels[1]", None),
    ({"input": "a", "labels": []}, "labels", None),
    ({"input": "a", "labels": "PER"}, "labels", None),
    ({"input": "a", "max_count": -1}, "max_count", 1),
    ({"input": "a", "max_count": 6}, "max_count", 5),
    ({"input": "a", "max_count": 10**40}, "max_count", 5),
    ({"input": "a", "max_count": 2.5}, "max_count", None),
    ({"input": "a", "return_timings": "yes"}, "return_timings", None),
    ({"input": "a", "mode": "beam"}, "mode", None),
    ({"input": "a", "dedup": "maybe"}, "dedup", None),
    ({"inptu": "a"}, "inptu", None),
    ({"inptu": "a"}, "input", None),
    ([1, 2], "body", None),
    (b'{"input": "a",', "body", None),
    (b'{"input": "caf\xe9"}', "body", None),
    (b'{"input": "\\ud800 lone surrogate"}', "input", None),
]


def test_a_text_longer_than_the_engines_context_is_answered_from_windows(client):
    """Under the server's character limit, a text the engine's 256 tokens cannot hold is decoded in windows."""
    response = post(client, {"input": LONG_TEXT})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["results"]) == 1 and body["usage"]["sequences"] > 4  # more than one window's label branches
    assert all(LONG_TEXT[e["start"] : e["end"]] == e["text"] for e in body["results"][0]["entities"])


@pytest.mark.parametrize("body,field,limit", BAD_REQUESTS, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD_REQUESTS)])
def test_bad_input_is_a_400_naming_the_field(client, body, field, limit):
    response = post(client, body, **{"X-Request-ID": "test-42"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and error["request_id"] == "test-42"
    assert response.headers["x-request-id"] == "test-42"
    problem = next((p for p in error["problems"] if p["field"] == field), None)
    assert problem is not None, error
    assert problem["limit"] == limit
    assert field in error["message"]


TOO_LARGE = [
    ({"input": "x" * 2001}, {"input": 2000}),
    ({"input": ["a"] * 5}, {"input": 4}),
    ({"input": ["fine", "y" * 2001, " "]}, {"input[1]": 2000, "input[2]": None}),
]


@pytest.mark.parametrize("body,limits", TOO_LARGE, ids=["text", "texts", "text-among-others"])
def test_a_request_over_a_size_limit_is_a_413_naming_the_limit(client, body, limits):
    """Texts longer than max_text_chars or more than max_texts: 413, with every other problem listed too."""
    response = post(client, body)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["type"] == "payload_too_large"
    assert {p["field"]: p["limit"] for p in error["problems"]} == limits
    assert next(p for p in error["problems"] if p["limit"])["message"] in error["message"]


def test_every_problem_is_reported_at_once(client):
    # Two passes: the schema's types first, then the values against the adapter and the limits.
    error = post(client, {"input": ["a", 3, ""], "max_count": -1, "mode": "x"}).json()["error"]
    assert {p["field"] for p in error["problems"]} == {"input[1]", "input[2]", "max_count", "mode"}
    error = post(client, {"input": ["\t", "ok", " "], "max_count": 99, "labels": ["NOPE"]}).json()["error"]
    assert {p["field"] for p in error["problems"]} == {"input[0]", "input[2]", "max_count", "labels[0]"}


def requests_total(client, mode: str, status: str) -> float:
    line = next((line for line in client.get("/metrics").text.splitlines()
                 if line.startswith(f'padellm_requests_total{{mode="{mode}",status="{status}"}}')), None)
    return float(line.split()[-1]) if line else 0.0


HOSTILE = [  # bodies a strict reader must refuse by field, which the schema alone names badly or not at all
    (b'{"input": "Paris", "mode": "bogus", "mode": "parallel"}', "mode", "the key 'mode' is given more than once"),
    (b'{"input": "Paris", "max_count": ' + b"9" * 5000 + b"}", "max_count", "an integer of 5000 digits"),
    (b'{"input": ' + b"[" * 3000 + b"]" * 3000 + b"}", "body", "JSON nested too deeply"),
    (b'{"input": "\\ud800"}', "input", "an unpaired UTF-16 surrogate (\\ud800) at character 0 is not text"),
    (b'{"input": ["ok", "x\\udfff"]}', "input[1]", "an unpaired UTF-16 surrogate (\\udfff) at character 1"),
]


@pytest.mark.parametrize("body,field,message", HOSTILE, ids=[h[1] + str(i) for i, h in enumerate(HOSTILE)])
def test_hostile_bodies_are_refused_naming_the_field(client, body, field, message):
    before = requests_total(client, "unknown", "400")
    response = post(client, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["problems"][0]["field"] == field and message in error["problems"][0]["message"], error
    assert requests_total(client, "unknown", "400") == before + 1  # counted in /metrics


def test_errors_stay_small_whatever_the_request_repeats(client):
    from padellm_serve.protocol import MAX_PROBLEMS

    response = post(client, {"input": "Paris", "labels": [""] * 2000})
    assert response.status_code == 400 and len(response.content) < 10_000
    problems = response.json()["error"]["problems"]
    assert len(problems) == MAX_PROBLEMS + 1 and problems[-1]["message"] == "1 more problems not listed"
    assert problems[0] == {"field": "labels[0]", "limit": None,
                           "message": "'' is not one of the adapter's labels ['LOC', 'MISC', 'ORG', 'PER']"}
    response = post(client, {"input": "Paris", "max_count": int("7" * 4000)})
    problem = response.json()["error"]["problems"][0]
    assert problem["field"] == "max_count" and len(problem["message"]) < 100 and "(4000 digits)" in problem["message"]


def test_the_page_to_try_it_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    for element in ('id="text"', 'id="mode"', 'id="labels"', 'id="run"', 'id="result"', 'fetch("/v1/ner"'):
        assert element in page
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # nothing from another host (no CDN)
    assert "innerHTML" not in page  # the user's text is set as text only


def test_the_docs_are_served_from_installed_files_or_not_at_all(client, tiny_adapters):
    page = client.get("/docs")
    assert page.status_code == 200 and not re.search(r"(src|href)=[\"']?(https?:)?//", page.text)
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
    assert client.get("/redoc").status_code == 404  # ReDoc would load its script from a CDN: not served
    service = NERService([tiny_adapters["parallel"]], ServerConfig(docs=False), loader=transformers_loader)
    assert TestClient(create_app(service)).get("/docs").status_code == 404


def test_head_health_for_health_checkers(client):
    response = client.head("/health")
    assert response.status_code == 200 and response.content == b""


def test_body_too_large_is_a_413(client):
    response = post(client, {"input": "a" * 9000})
    assert response.status_code == 413
    assert response.json()["error"]["problems"] == [{"field": "body", "message": "the request body is too large",
                                                     "limit": 8192}]


def test_unknown_routes_and_methods_are_json_errors(client):
    assert client.get("/v2/ner").json()["error"]["type"] == "not_found"
    response = client.get("/v1/ner")
    assert response.status_code == 405 and response.json()["error"]["type"] == "method_not_allowed"
    for method in ("PUT", "PATCH"):  # a method no route has is a 405, whatever its body (schemathesis' ST204)
        response = client.request(method, "/v1/models", content=b"x", headers={"Content-Type": "text/plain"})
        assert response.status_code == 405, response.text


def test_an_unexpected_failure_is_a_logged_500_and_the_server_goes_on(client, service, monkeypatch, caplog):
    async def explode(job):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(service, "run", explode)
    response = post(client, {"input": "Paris"}, **{"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json()["error"] == {"type": "internal", "request_id": "boom-1", "problems": [],
                                        "message": "internal error; the server log has the details under request id boom-1"}
    assert any("boom-1" in r.getMessage() and "kaboom" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    assert post(client, {"input": "Paris"}).status_code == 200


def test_metrics(client):
    post(client, {"input": "Paris"})
    post(client, {"input": ""})
    text = client.get("/metrics").text
    assert 'padellm_requests_total{mode="parallel",status="200"}' in text
    assert 'padellm_requests_total{mode="parallel",status="400"}' in text
    assert 'padellm_stage_seconds_count{mode="parallel",stage="branches"}' in text
    assert "padellm_branches_per_request_count" in text
    assert "padellm_requests_in_flight 0.0" in text
    assert "padellm_ready 1.0" in text


class HangingBackend:
    """Never answers; records that its caller was cancelled."""

    def __init__(self, adapter):
        self.adapter, self.max_model_len, self.cancelled = adapter, 256, threading.Event()

    async def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=()):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


def test_a_request_that_times_out_is_aborted_with_a_504(tiny_adapters):
    backends = []

    def loader(adapters, decode_config, vllm_config):
        backends.append(HangingBackend(adapters[0].resolve()))
        return [load(adapters[0], backends[0], decode_config=decode_config)]

    service = NERService([tiny_adapters["parallel"]], ServerConfig(request_timeout_s=0.3, warmup=False), loader=loader)
    with TestClient(create_app(service)) as client:
        wait_ready(client)
        started = time.monotonic()
        response = post(client, {"input": "Paris"})
        assert response.status_code == 504 and time.monotonic() - started < 5
        assert response.json()["error"]["problems"][0]["limit"] == 0.3
        assert backends[0].cancelled.is_set()
        assert 'status="504"' in client.get("/metrics").text


class FakeRequest:
    def __init__(self, disconnect_after: float | None):
        self.disconnect_after = disconnect_after

    async def receive(self):
        if self.disconnect_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(self.disconnect_after)
        return {"type": "http.disconnect"}


def test_decode_or_abort():
    async def scenario(disconnect_after, work_seconds, timeout):
        cancelled = []

        async def work():
            try:
                await asyncio.sleep(work_seconds)
                return "result"
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        outcome = await decode_or_abort(work(), FakeRequest(disconnect_after), timeout)
        return outcome, bool(cancelled)

    assert asyncio.run(scenario(None, 0.01, 5)) == ("result", False)
    assert asyncio.run(scenario(0.01, 5, 5)) == ("disconnected", True)
    assert asyncio.run(scenario(None, 5, 0.05)) == ("timeout", True)


def test_not_ready_then_ready_and_a_failed_load(tiny_adapters):
    release = threading.Event()

    def slow_loader(adapters, decode_config, vllm_config):
        release.wait(30)
        return transformers_loader(adapters, decode_config, vllm_config)

    service = NERService([tiny_adapters["parallel"]], loader=slow_loader)
    with TestClient(create_app(service)) as client:
        health = client.get("/health")
        assert health.status_code == 503 and health.json() == {"status": "loading"}
        response = post(client, {"input": "Paris"})
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert response.json()["error"]["type"] == "not_ready"
        assert client.get("/v1/models").status_code == 503
        release.set()
        assert wait_ready(client).status_code == 200
        assert post(client, {"input": "Paris"}).status_code == 200

    def broken_loader(adapters, decode_config, vllm_config):
        raise OSError("no such model")

    failures = []
    service = NERService([tiny_adapters["parallel"]], loader=broken_loader)
    with TestClient(create_app(service, on_load_failure=lambda: failures.append(1))) as client:
        health = wait_ready(client)
        assert health.status_code == 503 and health.json() == {"status": "failed", "detail": "OSError: no such model"}
        assert "no such model" in post(client, {"input": "Paris"}).json()["error"]["message"]
    assert failures == [1]


def test_a_server_without_an_autoregressive_adapter_says_so(tiny_adapters):
    service = NERService([tiny_adapters["parallel"]], loader=transformers_loader)
    with TestClient(create_app(service)) as client:
        wait_ready(client)
        error = post(client, {"input": "Paris", "mode": "autoregressive"}).json()["error"]
        assert error["problems"] == [{"field": "mode", "message": "this server has no autoregressive adapter; it "
                                                                  "serves parallel", "limit": None}]


def test_two_adapters_of_one_mode_are_refused_before_any_engine_starts(tiny_adapters):
    def loader(*args):
        raise AssertionError("no engine may start")

    with pytest.raises(ConfigError, match="two parallel adapters given"):
        NERService([tiny_adapters["parallel"], tiny_adapters["parallel"]], loader=loader)


def test_a_server_of_one_autoregressive_adapter_defaults_to_it(tiny_adapters):
    service = NERService([tiny_adapters["autoregressive"]], LIMITS, DECODE, loader=transformers_loader)
    with TestClient(create_app(service)) as client:
        wait_ready(client)
        response = post(client, {"input": "Paris"})
        assert response.status_code == 200 and response.json()["mode"] == "autoregressive"
        schema = client.get("/openapi.json").json()
        mode = schema["components"]["schemas"]["NERRequest"]["properties"]["mode"]
        assert mode["anyOf"][0]["enum"] == ["autoregressive"] and "default autoregressive" in mode["description"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_a_body_that_is_not_json_is_a_415_naming_the_type(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/v1/ner", content=json.dumps({"input": "Paris"}).encode(), headers=headers)
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["type"] == "unsupported_media_type" and error["problems"][0]["field"] == "Content-Type"
    sent = f"sent as {content_type.split(';')[0]!r}" if content_type else "sent without a Content-Type"
    assert sent in error["message"] and "application/json" in error["message"]


def test_json_with_a_charset_is_read(client):
    assert post(client, {"input": "Paris"}, content_type="Application/JSON; charset=utf-8").status_code == 200


def test_a_failed_load_shows_no_path_of_the_servers_disk(tiny_adapters):
    def loader(adapters, decode_config, vllm_config):
        raise OSError("cannot open /root/.cache/padellm/models/secret-model/model.safetensors: no space left")

    with TestClient(create_app(NERService([tiny_adapters["parallel"]], loader=loader))) as client:
        health = wait_ready(client)
        assert health.json()["detail"] == "OSError: cannot open model.safetensors: no space left"
        assert_no_internals(post(client, {"input": "Paris"}))
