"""API keys: the key file and variables (padellm.client), the server's 401s (every route but /health and the
static pages, the same answer whatever is wrong), rotation with several keys, and the client and
``padellm extract --server`` sending the key."""

import json

import pytest
from fastapi.testclient import TestClient

from padellm.cli import main as padellm_main
from padellm.client import ENVIRONMENT_VARIABLE, NERClient, ServerError, client_key, read_key_file, server_keys
from padellm.errors import ConfigError
from padellm_serve.app import create_app
from padellm_serve.auth import KeyCheck
from padellm_serve.service import NERService

from live_server import live_server
from test_app import DECODE, LIMITS, wait_ready
from threaded_backend import transformers_loader

OLD, NEW = "old-key-0123456789abcdef", "new-key-fedcba9876543210"


def test_key_files_hold_one_key_a_line_and_errors_name_the_line(write, monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    keys = write("keys", f"# rotated on Monday\n{OLD}\n\n  {NEW}  \n")
    assert read_key_file(keys) == [OLD, NEW]
    assert client_key(keys) == OLD and client_key(keys, key=NEW) == NEW
    bad = write("bad", f"{OLD}\nshort\nwith space in it 0123\n")
    with pytest.raises(ConfigError) as caught:
        read_key_file(bad)
    assert caught.value.problems == [
        f"--api-key-file {bad}, line 2: 5 characters; an API key needs at least 16",
        f"--api-key-file {bad}, line 3: contains whitespace, a control or a non-ASCII character (an HTTP header "
        "could not carry it)"]
    assert "short" not in str(caught.value)  # a key is never echoed: the message may reach a log
    with pytest.raises(ConfigError, match="no key in it"):
        read_key_file(write("empty", "# nothing\n\n"))
    with pytest.raises(ConfigError, match="missing: cannot read it"):
        read_key_file(bad.parent / "missing")


def test_keys_come_from_the_file_the_flag_and_the_environment(write, monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, NEW)
    assert server_keys(write("keys", f"{OLD}\n"), key="flag-key-0123456789") == [OLD, "flag-key-0123456789", NEW]
    assert client_key() == NEW
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "tiny")
    with pytest.raises(ConfigError, match=r"\$PADELLM_API_KEY: 4 characters"):
        server_keys()
    monkeypatch.delenv(ENVIRONMENT_VARIABLE)
    assert server_keys() == [] and client_key() is None


def test_key_check_compares_whole_keys_and_the_scheme():
    check = KeyCheck([OLD, NEW])
    assert check.accepts(f"Bearer {OLD}".encode()) and check.accepts(f"bearer  {NEW} ".encode())
    for wrong in (b"", b"Bearer", f"Basic {OLD}".encode(), f"Bearer {OLD[:-1]}".encode(), f"Bearer {OLD}x".encode(),
                  f"{OLD}".encode(), b"Bearer " + OLD.upper().encode()):
        assert not check.accepts(wrong), wrong
    assert KeyCheck().allows("POST", "/v1/ner", b"")  # no keys: an open server
    assert check.allows("GET", "/health", b"") and check.allows("GET", "/docs/assets/swagger-ui.css", b"")
    assert not check.allows("POST", "/health", b"") and not check.allows("GET", "/openapi.json", b"")


@pytest.fixture(scope="module")
def client(tiny_adapters):
    service = NERService([tiny_adapters["parallel"]], LIMITS, DECODE, loader=transformers_loader)
    with TestClient(create_app(service, keys=KeyCheck([OLD, NEW])), raise_server_exceptions=False) as client:
        assert wait_ready(client).status_code == 200
        yield client


PROTECTED = [("POST", "/v1/ner"), ("GET", "/v1/models"), ("GET", "/metrics"), ("GET", "/openapi.json"),
             ("GET", "/v2/unknown"), ("DELETE", "/v1/ner")]


@pytest.mark.parametrize("method,path", PROTECTED)
def test_every_route_but_health_and_the_pages_needs_a_key(client, method, path):
    bodies = set()
    for authorization in (None, f"Bearer {OLD[:-1]}z", f"Basic {OLD}", "Bearer", f"Token {NEW}"):
        headers = {"Authorization": authorization} if authorization else {}
        response = client.request(method, path, headers={**headers, "Content-Type": "application/json"},
                                  content=b'{"input": "Paris"}')
        assert response.status_code == 401, (authorization, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="padellm"'
        error = response.json()["error"]
        assert error["type"] == "unauthorized" and error["problems"][0]["field"] == "Authorization"
        bodies.add(json.dumps({**error, "request_id": None}))
    assert len(bodies) == 1  # the same answer whichever part was wrong


def test_with_a_key_every_route_answers_and_both_rotated_keys_work(client):
    for key in (OLD, NEW):
        response = client.post("/v1/ner", json={"input": "Paris"}, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {NEW}"}).status_code == 200
    assert 'status="401"' in client.get("/metrics", headers={"Authorization": f"Bearer {OLD}"}).text
    schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {OLD}"}).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/v1/ner"]["post"]["security"] == [{"bearer": []}]
    assert "401" in schema["paths"]["/v1/ner"]["post"]["responses"]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_health_and_the_static_pages_need_no_key(client):
    assert client.get("/health").status_code == 200 and client.head("/health").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'id="key-input"' in page.text
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_the_client_and_extract_send_the_key(tiny_adapters, write, monkeypatch, capsys):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    with live_server([tiny_adapters["parallel"]], transformers_loader, keys=[OLD, NEW],
                     max_text_chars=400) as (url, _, _):
        with pytest.raises(ServerError) as caught:
            NERClient(url).extract("Paris")
        assert caught.value.status == 401 and "give the client one" in str(caught.value)
        with pytest.raises(ServerError, match="sent a key the server does not accept"):
            NERClient(url, api_key="not-the-key-0123456789").extract("Paris")
        assert NERClient(url).health()["status"] == "ok"  # /health needs no key
        assert NERClient(url, api_key=NEW).request("Paris")["usage"]["texts"] == 1
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, OLD)
        assert NERClient(url).models()[0]["id"] == "parallel"
        monkeypatch.delenv(ENVIRONMENT_VARIABLE)
        assert padellm_main(["extract", "--server", url, "--api-key-file", str(write("k", f"{NEW}\n")), "Paris"]) == 0
        assert json.loads(capsys.readouterr().out)["text"] == "Paris"
        assert padellm_main(["extract", "--server", url, "Paris"]) == 2
        assert "HTTP 401" in capsys.readouterr().err
    assert padellm_main(["extract", "--api-key-file", "k", "Paris"]) == 2
    assert "--api-key-file is the key for --server URL" in capsys.readouterr().err


def test_serve_refuses_a_bad_key_file_before_any_engine_starts(write, capsys):
    from padellm_serve.cli import main as serve_main

    bad = write("keys", "too-short\n")
    assert serve_main(["--api-key-file", str(bad)]) == 2
    assert f"--api-key-file {bad}, line 1: 9 characters; an API key needs at least 16" in capsys.readouterr().err
