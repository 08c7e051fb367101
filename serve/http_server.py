"""The HTTP server around the app: uvicorn, with the guards a public endpoint needs.

- A connection that does not deliver a whole request head within ``read_timeout_s`` (after it opens, or after
  its previous response) is closed: slow clients that drip headers (slowloris) cannot hold sockets for ever.
- Past ``max_connections`` open connections, requests are answered 503 at once.
- On SIGTERM / SIGINT the server stops accepting connections and lets in-flight requests finish; those still
  decoding shortly before ``graceful_shutdown_s`` ends are answered 503 (Retry-After) instead of being cut off.
- A request the HTTP parser cannot read is answered with the app's JSON error body, not the HTTP library's plain
  text: 431 when its head is larger than h11 buffers (16 KiB), 400 for anything else malformed. Both close the
  connection. (A request line that is not HTTP at all, such as TLS sent to a plain port, still gets this 400: the
  parser cannot tell it from a malformed request.)
"""

from __future__ import annotations

import json
import uuid

import h11
import uvicorn
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.h11_impl import H11Protocol

from padellm_serve.config import ServerConfig
from padellm_serve.service import NERService


H11_MAX_HEAD_BYTES = DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # what uvicorn gives h11 unless told otherwise
LINGER_S = 1.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head (``read_timeout_s``, set by ``protocol``)."""

    read_timeout_s: float = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline = None
        self._protocol_error: h11.RemoteProtocolError | None = None
        next_event = self.conn.next_event

        def next_event_noting_errors():
            try:
                return next_event()
            except h11.RemoteProtocolError as err:  # uvicorn answers it with send_400_response, below
                self._protocol_error = err
                raise

        self.conn.next_event = next_event_noting_errors
        self._arm_head_deadline()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 could not parse, as the app's JSON error (431 for a head too large)."""
        error = self._protocol_error
        too_large = error is not None and getattr(error, "error_status_hint", 400) == 431
        status, kind = (431, "request_header_fields_too_large") if too_large else (400, "invalid_http")
        message = ("the request head (request line and headers) is too large" if too_large
                   else f"not a valid HTTP/1.1 request ({str(error) if error else msg})")
        body = json.dumps({"error": {"type": kind, "message": message, "request_id": uuid.uuid4().hex[:16],
                                     "problems": [{"field": "headers" if too_large else "request", "message": message,
                                                   "limit": H11_MAX_HEAD_BYTES if too_large else None}]}}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self._close_lingering()

    def _close_lingering(self) -> None:
        """Close after the answer, reading and dropping what the client still sends for up to a second: closing
        with unread data makes the kernel reset the connection, and the client may lose the answer with it (a
        431 arrives while the client is still sending its oversized head)."""
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if getattr(self, "_lingering", False):
            return  # the answer is sent: drop the rest of the request
        super().data_received(data)

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
