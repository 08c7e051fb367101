"""Test helper: the real HTTP server (uvicorn, padellm's protocol guards) over a service, in a thread, on a free
loopback port."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from padellm_serve.app import create_app
from padellm_serve.auth import KeyCheck
from padellm_serve.config import ServerConfig
from padellm_serve.http_server import build_server
from padellm_serve.process import free_port
from padellm_serve.service import NERService


@contextmanager
def live_server(adapters, loader, keys=(), ready_s: float = 120, **settings):
    """Yields ``(url, server, service)`` once the service is ready; stops the server after."""
    config = ServerConfig(**{"port": free_port(), "warmup": False, "log_level": "warning", **settings})
    service = NERService(adapters, config, loader=loader)
    server = build_server(create_app(service, keys=KeyCheck(list(keys))), service, config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_s
    while not (server.started and service.status == "ok"):
        assert time.monotonic() < deadline and thread.is_alive() and service.status != "failed", service.detail
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}", server, service
    finally:
        server.should_exit = True
        thread.join(30)
