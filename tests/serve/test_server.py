"""``padellm serve`` as a subprocess on vLLM (one server for the module, on the tiny random Llama with a parallel
and an autoregressive LoRA adapter): results equal offline extraction, concurrent requests equal sequential
ones, a client disconnect aborts the engine requests, a fuzz of the OpenAPI schema finds no 500, and SIGTERM
drains in-flight requests. The last test stops the server."""

import importlib.util
import json
import signal
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import require

require("vllm")

from padellm import load  # noqa: E402
from padellm.cli import main as padellm_main  # noqa: E402
from padellm.client import NERClient, ServerError  # noqa: E402
from padellm.configargs import dataclass_to_argv  # noqa: E402
from padellm.engine.decoding import DecodeConfig  # noqa: E402
from padellm.errors import InvalidRequestError  # noqa: E402
from padellm_serve.process import ServerProcess, free_port  # noqa: E402

# Quantile 0.9 makes the tiny adapter state counts > 0, so that requests have branches; 96 autoregressive tokens
# (a random model rarely stops) make an autoregressive request last long enough to disconnect from it.
DECODE = DecodeConfig(max_mention_tokens=8, max_autoregressive_tokens=96, count_rule="quantile", count_quantile=0.9)
TEXTS = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "Paris", "BRUSSELS 1996-08-22",
         "The European Commission said on Thursday it disagreed with German advice .", "Germany 's representative",
         "Fischler proposed EU-wide measures after reports from Britain and France", "Rabinovich is winding up"]


def metric(server: ServerProcess, name: str) -> float:
    """The sum of the samples whose line starts with ``name`` (a metric, or a metric with its labels)."""
    text = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def wait_for(server: ServerProcess, name: str, predicate, seconds: float = 30) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = metric(server, name)
        if predicate(value):
            return value
        time.sleep(0.02)
    raise AssertionError(f"{name} stayed at {value}")


@pytest.fixture(scope="module")
def server(tiny_adapters, tmp_path_factory):
    args = ["--adapter", str(tiny_adapters["parallel"]), "--adapter", str(tiny_adapters["autoregressive"]),
            "--dtype", "float32", "--lora", "request", "--max-model-len", "512", "--max-num-seqs", "64",
            "--max-texts", "8", "--max-text-chars", "400", "--max-count-limit", "9", *dataclass_to_argv(DECODE)]
    server = ServerProcess(args, tmp_path_factory.mktemp("server") / "server.log").start(ready_timeout=240)
    yield server
    server.stop()


def test_endpoints(server, tiny_adapters):
    client = NERClient(server.url)
    assert client.health() == {"status": "ok"}
    assert {m["mode"]: (m["id"], m["base_model"]) for m in client.models()} == {
        "parallel": ("parallel", "tiny-llama"), "autoregressive": ("autoregressive", "tiny-llama")}
    schema = json.loads(urllib.request.urlopen(f"{server.url}/openapi.json").read())
    assert schema["paths"]["/v1/ner"]["post"]["requestBody"]["content"]["application/json"]
    assert metric(server, "padellm_ready") == 1


@pytest.mark.parametrize("mode", ["parallel", "autoregressive"])
def test_results_equal_offline_extraction(server, tiny_adapters, mode):
    response = NERClient(server.url).request(TEXTS[:3], mode=mode)
    offline = load(tiny_adapters[mode], "transformers", decode_config=DECODE).run(TEXTS[:3])
    got = [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in response["results"]]
    assert got == [[(e.start, e.end, e.label) for e in entities] for entities in offline.entities]
    if mode == "parallel":
        assert response["usage"]["sequences"] == offline.stats["count_prompts"] + offline.stats["branches"]
        assert offline.stats["branches"] > 0


def test_concurrent_requests_equal_sequential_ones(server):
    # The tiny random model's mentions rarely occur in the text, so entity lists are mostly empty: the
    # comparison also covers what was decoded (sequences and tokens generated per text).
    client = NERClient(server.url)

    def decoded(response):
        spans = [[(e["start"], e["end"], e["label"], round(e["score"], 3)) for e in r["entities"]]
                 for r in response["results"]]
        return spans, response["usage"]

    sequential = [decoded(client.request(text)) for text in TEXTS]
    with ThreadPoolExecutor(len(TEXTS)) as pool:
        concurrent = list(pool.map(lambda text: decoded(client.request(text)), TEXTS))
    assert concurrent == sequential
    assert sum(usage["sequences"] for _, usage in sequential) > 4 * len(TEXTS)  # branches, not only counts
    batched = client.request(TEXTS)
    assert [r["entities"] for r in batched["results"]] == [client.extract(text)[0] for text in TEXTS]
    assert batched["usage"]["generated_tokens"] == sum(usage["generated_tokens"] for _, usage in sequential)


def test_extract_command_and_client_use_the_server(server, capsys):
    assert padellm_main(["extract", "--server", server.url, "--timings", *TEXTS[:2]]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == TEXTS[:2]
    assert [line["entities"] for line in lines] == NERClient(server.url).extract(TEXTS[:2])
    assert all(line["ms"] > 0 for line in lines)
    with pytest.raises(InvalidRequestError) as caught:
        NERClient(server.url).extract(["fine", " "])
    assert caught.value.parameter == "input[1]" and caught.value.value == " "
    assert padellm_main(["extract", "--server", server.url, "--count-rule", "greedy", "Paris"]) == 2
    assert "--count-rule are set when the server starts" in capsys.readouterr().err
    with pytest.raises(ServerError) as caught:
        NERClient(f"http://127.0.0.1:{free_port()}").health()
    assert caught.value.status == 0 and "cannot reach the server" in str(caught.value)


def test_a_client_disconnect_aborts_its_engine_requests(server):
    client = NERClient(server.url)
    before = client.request(TEXTS[:2], mode="autoregressive")
    closed_before = metric(server, 'padellm_requests_total{mode="autoregressive",status="499"}')
    body = json.dumps({"input": TEXTS, "mode": "autoregressive"}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/ner HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    wait_for(server, "padellm_engine_unfinished_sequences", lambda n: n == len(TEXTS))
    sock.close()
    wait_for(server, 'padellm_requests_total{mode="autoregressive",status="499"}', lambda n: n == closed_before + 1)
    assert wait_for(server, "padellm_engine_unfinished_sequences", lambda n: n == 0) == 0
    assert metric(server, "padellm_requests_in_flight") == 0
    after = client.request(TEXTS[:2], mode="autoregressive")  # still serving, and nothing aborted leaks in
    assert (after["results"], after["usage"]) == (before["results"], before["usage"])


def test_fuzzing_the_openapi_schema_finds_no_server_error_and_valid_requests_pass(server):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    answered = metric(server, 'padellm_requests_total{mode="parallel",status="200"}')
    failures = []
    both = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for path, method, modes, examples in [("/v1/ner", "POST", both, 40), ("/health", "GET", both[:1], 2),
                                          ("/v1/models", "GET", both[:1], 2), ("/metrics", "GET", both[:1], 2)]:
        operation = schema[path][method]
        for mode in modes:
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def call(case):
                response = case.call(base_url=server.url, timeout=60)
                if response.status_code >= 500 or (mode is GenerationMode.POSITIVE and response.status_code != 200):
                    # a server error, or a request the schema allows that the server refused
                    failures.append((case.method, case.path, case.body, response.status_code, response.text[:300]))
                elif response.status_code >= 400 and path == "/v1/ner":
                    assert response.json()["error"]["request_id"]

            call()
    assert not failures, failures
    # Both kinds got through: valid requests were decoded, invalid ones were refused.
    assert metric(server, 'padellm_requests_total{mode="parallel",status="200"}') > answered + 5
    assert metric(server, 'padellm_requests_total{mode="unknown",status="400"}') > 10


def test_load_benchmark_script(server, tiny_adapters, tmp_path):
    path = Path(__file__).resolve().parents[2] / "eval" / "benchmark_server.py"
    spec = importlib.util.spec_from_file_location("benchmark_server", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, plot = tmp_path / "load.json", tmp_path / "load.png"
    argv = ["--url", server.url, "--parallel", str(tiny_adapters["parallel"]), "--autoregressive",
            str(tiny_adapters["autoregressive"]), "--dataset", str(tiny_adapters["corpus"]), "--clients", "3",
            # One sentence for the clients to cycle over: any two requests repeat it, however slow the machine.
            "--sample", "1", "--duration", "2", "--warmup", "1", "--spot-check", "0", "--no-progress", "--out", str(out),
            "--plot", str(plot)]
    assert module.main(argv) == 0
    result = json.loads(out.read_text())
    for mode in ("parallel", "autoregressive"):
        summary = result["results"][mode]
        assert summary["requests"] == summary["ok"] > 0 and summary["lost"] == 0 and summary["errors"] == {}
        assert len(summary["latencies_ms"]) == summary["ok"]
        assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
        assert summary["identical_every_time"] == summary["repeated_sentences"] > 0
    assert plot.stat().st_size > 10_000
    assert module.main([*argv, "--modes", "beam"]) == 2


def test_sigterm_drains_in_flight_requests_then_exits(server):
    outcome = {}

    def slow_request():
        outcome["entities"] = NERClient(server.url).extract(TEXTS, mode="autoregressive")

    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_for(server, "padellm_requests_in_flight", lambda n: n == 1)
    server.process.send_signal(signal.SIGTERM)
    thread.join(60)
    assert len(outcome["entities"]) == len(TEXTS)  # answered, not cut off
    # uvicorn re-raises the signal once it has shut down cleanly, so the exit status is "terminated by SIGTERM".
    assert server.process.wait(60) == -signal.SIGTERM
    log = server.log_path.read_text()
    assert log.index("Waiting for connections to close") < log.index("Application shutdown complete")
