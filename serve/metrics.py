"""Prometheus metrics of one server (its own registry, so that several apps in one process never clash)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BRANCH_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("padellm_requests", "NER requests by decoding mode and HTTP status.",
                                ["mode", "status"], registry=r)
        self.latency = Histogram("padellm_request_seconds", "Wall time of answered NER requests.", ["mode"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.stage_latency = Histogram("padellm_stage_seconds", "Wall time of each decoding stage per request.",
                                       ["mode", "stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.branches = Histogram("padellm_branches_per_request", "Stage-2 branches (mention sequences) per "
                                  "parallel request.", buckets=BRANCH_BUCKETS, registry=r)
        self.generated_tokens = Counter("padellm_generated_tokens", "Tokens generated, by mode.", ["mode"],
                                        registry=r)
        self.in_flight = Gauge("padellm_requests_in_flight", "NER requests being decoded now.", registry=r)
        self.engine_queue = Gauge("padellm_engine_unfinished_sequences", "Sequences the vLLM engines hold "
                                  "(running or waiting): the engines' queue depth.", registry=r)
        self.ready = Gauge("padellm_ready", "1 once the engines are loaded.", registry=r)

    def watch_engine_queue(self, depth: Callable[[], float]) -> None:
        """Read the engines' queue depth at every scrape."""
        self.engine_queue.set_function(depth)

    def record(self, mode: str, status: int, seconds: float | None = None, timings: dict[str, float] | None = None,
               stats: dict[str, int] | None = None) -> None:
        self.requests.labels(mode=mode, status=str(status)).inc()
        if seconds is not None:
            self.latency.labels(mode=mode).observe(seconds)
        for stage, value in (timings or {}).items():
            if stage != "total_s":
                self.stage_latency.labels(mode=mode, stage=stage.removesuffix("_s")).observe(value)
        if stats:
            if mode == "parallel":
                self.branches.observe(stats.get("branches", 0))
            self.generated_tokens.labels(mode=mode).inc(
                stats.get("count_tokens", 0) + stats.get("branch_tokens", 0) + stats.get("generated_tokens", 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
