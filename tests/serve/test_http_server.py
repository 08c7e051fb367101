"""The HTTP server's guards on a real socket (uvicorn in a thread, a backend that never answers): slow clients
are cut off, connections are capped, and a stopping server answers its unfinished requests."""

import contextlib
import http.client
import json
import signal
import socket
import threading
import time

import pytest

from padellm import load

from live_server import live_server
from test_app import HangingBackend


@pytest.fixture
def running(tiny_adapters):
    """Start a server (on a backend that never answers) with given settings; stop it after the test."""
    with contextlib.ExitStack() as stack:
        def start(**settings):
            backends = []

            def loader(adapters, decode_config, vllm_config):
                backends.append(HangingBackend(adapters[0].resolve()))
                return [load(adapters[0], backends[0], decode_config=decode_config)]

            _, server, service = stack.enter_context(live_server([tiny_adapters["parallel"]], loader, ready_s=60,
                                                                 **settings))
            return server, service, backends

        yield start


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


def test_slow_request_heads_and_bodies_are_cut_off(running):
    server, _, _ = running(read_timeout_s=0.5)
    port = server.config.port
    with socket.create_connection(("127.0.0.1", port)) as dripping:  # a head that never ends
        dripping.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        assert closed_by_server(dripping, within=5)
    with socket.create_connection(("127.0.0.1", port)) as kept_alive:  # the same after a first request
        kept_alive.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in kept_alive.recv(4096)
        kept_alive.sendall(b"GET /health HTTP/1.1\r\n")
        assert closed_by_server(kept_alive, within=5)
    with socket.create_connection(("127.0.0.1", port)) as slow_body:
        slow_body.sendall(b"POST /v1/ner HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100\r\n\r\n{\"input\":")
        slow_body.settimeout(5)
        answer = slow_body.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 408") and '"type":"request_timeout"' in answer
        assert "connection: close" in answer.lower()
        assert closed_by_server(slow_body, within=1)  # at once, not after the keep-alive time
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # prompt clients are served as ever
    connection.request("HEAD", "/health")
    assert connection.getresponse().status == 200


def answer_to(port: int, raw: bytes) -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of the answer to ``raw`` bytes sent on a new connection."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(raw)
        sock.settimeout(5)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_requests_the_http_parser_cannot_read_get_json_errors(running):
    server, _, _ = running()
    port = server.config.port
    status, headers, body = answer_to(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 131_072
                                      + b"\r\n\r\n")
    assert status == 431 and headers["content-type"] == "application/json" and headers["connection"] == "close"
    assert body["error"]["type"] == "request_header_fields_too_large"
    assert body["error"]["problems"][0] == {"field": "headers", "limit": 16384,
                                            "message": "the request head (request line and headers) is too large"}
    for malformed in (b"GET /health HTTP/1.1\r\nHost x\r\n\r\n", b"NOT HTTP AT ALL\r\n\r\n",
                      b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"):
        status, headers, body = answer_to(port, malformed)
        assert status == 400 and headers["connection"] == "close", malformed
        assert body["error"]["type"] == "invalid_http" and body["error"]["request_id"], malformed
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # and the server goes on
    connection.request("GET", "/health")
    assert connection.getresponse().status == 200


def test_connections_beyond_the_cap_get_503(running):
    server, _, _ = running(max_connections=3)
    idle = [socket.create_connection(("127.0.0.1", server.config.port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        connection = http.client.HTTPConnection("127.0.0.1", server.config.port, timeout=5)
        connection.request("GET", "/health")
        assert connection.getresponse().status == 503
    finally:
        for sock in idle:
            sock.close()


def test_requests_unfinished_when_the_grace_period_ends_get_503(running):
    server, _, backends = running(graceful_shutdown_s=2.0)
    answer = {}

    def request():
        connection = http.client.HTTPConnection("127.0.0.1", server.config.port, timeout=30)
        connection.request("POST", "/v1/ner", json.dumps({"input": "Paris"}), {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer["status"], answer["body"] = response.status, json.loads(response.read())
        answer["retry_after"] = response.getheader("Retry-After")

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.5)  # the request is decoding (for ever: the backend never answers)
    started = time.monotonic()
    server.handle_exit(signal.SIGTERM, None)
    thread.join(30)
    assert answer["status"] == 503 and answer["body"]["error"]["type"] == "shutting_down"
    assert answer["retry_after"] == "5" and time.monotonic() - started < 2.0
    assert backends[0].cancelled.is_set()  # its engine requests were aborted
