"""The server's settings: where it listens and the limits it enforces on every request."""

from __future__ import annotations

from dataclasses import dataclass

from padellm.errors import ConfigError, one_of_problem

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0: every interface)."""
    port: int = 8000
    """TCP port (0: any free port; the chosen one is logged)."""
    max_texts: int = 64
    """Most texts in one request."""
    max_text_chars: int = 10_000
    """Longest text in characters (checked before tokenising; the model's context is checked after)."""
    max_body_bytes: int = 1_048_576
    """Largest request body in bytes (HTTP 413 above it)."""
    max_count_limit: int = 20
    """Largest mention cap per label (a request's max_count) a request may ask for."""
    request_timeout_s: float = 60.0
    """A request still decoding after this many seconds is aborted (its engine requests too) with HTTP 504."""
    max_in_flight: int = 256
    """Requests decoding at once; more get HTTP 503 with Retry-After instead of waiting without bound."""
    max_texts_in_flight: int = 1024
    """Texts decoding at once, over all requests; a request that would bring more gets HTTP 503 with Retry-After."""
    shed_at: float = 0.8
    """Refuse (HTTP 503, Retry-After) a request the measured throughput predicts to finish after this fraction of
    request_timeout_s, behind the texts already in flight: accepted requests finish, the rest are told at once."""
    graceful_shutdown_s: float = 30.0
    """On SIGTERM/SIGINT: how long in-flight requests may take to finish; those still decoding a moment before it
    ends are answered 503."""
    read_timeout_s: float = 10.0
    """A connection that has not sent a whole request head this long after it opened (or after its last
    response) is closed, and a body not received in this time is answered 408: slow clients cannot hold sockets."""
    max_connections: int = 1000
    """Open connections beyond this are answered 503 at once (keeps file descriptors for real clients)."""
    warmup: bool = True
    """Decode one short text per adapter before /health says ok (a cold engine's first request takes seconds)."""
    docs: bool = True
    """Serve the API's documentation (Swagger UI) at /docs, from files installed with padellm (no other host)."""
    log_level: str = "info"
    """Server log level: critical, error, warning, info or debug."""

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be in 0..65535; got {self.port}")
        for name in ("max_texts", "max_text_chars", "max_body_bytes", "max_count_limit", "max_in_flight",
                     "max_texts_in_flight", "max_connections"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("request_timeout_s", "graceful_shutdown_s", "read_timeout_s"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0; got {getattr(self, name)}")
        if not 0 < self.shed_at <= 1:
            problems.append(f"shed_at must be in (0, 1]; got {self.shed_at}")
        if self.log_level not in LOG_LEVELS:
            problems.append(one_of_problem("log_level", LOG_LEVELS, self.log_level))
        if problems:
            raise ConfigError(problems)
