"""The HTTP server around the app: uvicorn, with the guards a public endpoint needs.

- A connection that does not deliver a whole request head within ``read_timeout_s`` (after it opens, or after
  its previous response) is closed: slow clients that drip headers (slowloris) cannot hold sockets for ever.
- Past ``max_connections`` open connections, requests are answered 503 at once.
- On SIGTERM / SIGINT the server stops accepting connections and lets in-flight requests finish; those still
  decoding shortly before ``graceful_shutdown_s`` ends are answered 503 (Retry-After) instead of being cut off.
"""

from __future__ import annotations

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from padellm_serve.config import ServerConfig
from padellm_serve.service import NERService


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head (``read_timeout_s``, set by ``protocol``)."""

    read_timeout_s: float = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline = None
        self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        waiting_after = self.cycle  # the request before the one awaited (None on a new connection)

        def too_slow() -> None:
            if self.cycle is waiting_after and not self.transport.is_closing():
                self.transport.close()

        self._head_deadline = self.loop.call_later(self.read_timeout_s, too_slow)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def connection_lost(self, exc) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)


def protocol(read_timeout_s: float) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"read_timeout_s": read_timeout_s})


class NERServer(uvicorn.Server):
    """uvicorn's server; its first stop signal also starts the service's shutdown clock (``NERService.stop_by``)."""

    def __init__(self, config: uvicorn.Config, service: NERService, graceful_shutdown_s: float):
        super().__init__(config)
        self.service, self.graceful_shutdown_s = service, graceful_shutdown_s

    def handle_exit(self, sig, frame) -> None:
        if not self.should_exit:
            self.service.stop_by(self.graceful_shutdown_s)
        super().handle_exit(sig, frame)


def build_server(app, service: NERService, config: ServerConfig) -> NERServer:
    settings = uvicorn.Config(app, host=config.host, port=config.port, log_level=config.log_level,
                              http=protocol(config.read_timeout_s), limit_concurrency=config.max_connections,
                              timeout_graceful_shutdown=config.graceful_shutdown_s, lifespan="on")
    return NERServer(settings, service, config.graceful_shutdown_s)
