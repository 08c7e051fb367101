"""Load shedding by queued work: a request is accepted only when the texts already in flight and its own are
predicted to be decoded before the server's request time-out; otherwise it is refused at once (HTTP 503 with
Retry-After) instead of waiting and timing out.

The prediction divides the texts in flight by the throughput the server has measured (texts finished per second
of busy time, i.e. time with at least one text in flight, over its last ``window`` requests). An engine that
batches everything in flight (vLLM's continuous batching) serves a request in about that time even as others
arrive behind it, because admission keeps the queue under the same bound. An engine that serves calls one after
another does worse: a parallel request waits twice (its count stage, then its branches behind newer requests'
count stages). So the prediction is scaled by how long recent requests took against the most texts that were in
flight while they ran, divided by the throughput: the 90th percentile of that ratio over the last ``window``
requests, at least 1. (Not the largest: a request that writes a hundred tokens takes seconds whatever the queue,
and one such request must not make the server refuse everything behind it.) Until the first requests have
finished there is no estimate, and only ``max_texts_in_flight`` bounds the queue. Requests that cannot finish
within the time-out even alone are not foreseen: the time-out must leave room for the longest answer.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


SCALE_QUANTILE = 0.9


@dataclass
class Ticket:
    """An accepted request: its texts, when it started, and the most texts in flight while it ran."""

    texts: int
    started: float
    peak_in_flight: int


@dataclass(frozen=True)
class Refusal:
    message: str
    limit: float
    retry_after_s: int


class Admission:
    def __init__(self, max_texts_in_flight: int, timeout_s: float, shed_at: float = 0.8, window: int = 32,
                 clock: Callable[[], float] = time.monotonic):
        self.max_texts_in_flight, self.timeout_s, self.shed_at = max_texts_in_flight, timeout_s, shed_at
        self.clock = clock
        self.texts_in_flight = 0
        self._open: list[Ticket] = []
        self._busy_total, self._busy_since = 0.0, None
        self._finished = 0
        self._samples: deque[tuple[float, int]] = deque([(0.0, 0)], maxlen=window + 1)
        self._shortfalls: deque[float] = deque(maxlen=window)  # time taken / time its peak queue predicts

    def _busy(self) -> float:
        return self._busy_total + (self.clock() - self._busy_since if self._busy_since is not None else 0.0)

    def texts_per_s(self) -> float | None:
        """Measured throughput; None before there is any."""
        busy, finished = self._busy(), self._finished
        then_busy, then_finished = self._samples[0]
        if finished == then_finished or busy - then_busy <= 0:
            return None
        return (finished - then_finished) / (busy - then_busy)

    def scale(self) -> float:
        """How many times longer than its queue predicts a request has taken lately: the ratio's 90th percentile
        (nearest rank) over the window, at least 1."""
        if not self._shortfalls:
            return 1.0
        ordered = sorted(self._shortfalls)
        return max(1.0, ordered[math.ceil(SCALE_QUANTILE * len(ordered)) - 1])

    def predicted_s(self, texts: int) -> float | None:
        """Seconds until ``texts`` more would be decoded, behind those in flight (None: no estimate yet)."""
        rate = self.texts_per_s()
        return None if rate is None else (self.texts_in_flight + texts) / rate * self.scale()

    def refusal(self, texts: int) -> Refusal | None:
        """Why a request of ``texts`` texts cannot start now (None: it can)."""
        rate = self.texts_per_s()
        if self.texts_in_flight and self.texts_in_flight + texts > self.max_texts_in_flight:
            wait = self.texts_in_flight / rate * self.scale() if rate else 1.0
            return Refusal(f"{self.texts_in_flight} texts are being decoded and this request brings {texts}; retry "
                           f"shortly", self.max_texts_in_flight, self._retry_after(wait))
        predicted = self.predicted_s(texts)
        if self.texts_in_flight and predicted is not None and predicted > self.shed_at * self.timeout_s:
            return Refusal(f"the server would not finish this request before its time-out: {self.texts_in_flight} "
                           f"texts are ahead of it at about {rate:.1f} texts/s; retry later",
                           self.timeout_s, self._retry_after(self.texts_in_flight / rate * self.scale()))
        return None

    def _retry_after(self, seconds: float) -> int:
        return max(1, min(math.ceil(seconds), math.ceil(self.timeout_s)))

    def start(self, texts: int) -> Ticket:
        if self.texts_in_flight == 0:
            self._busy_since = self.clock()
        self.texts_in_flight += texts
        ticket = Ticket(texts, self.clock(), self.texts_in_flight)
        for other in self._open:
            other.peak_in_flight = max(other.peak_in_flight, self.texts_in_flight)
        self._open.append(ticket)
        return ticket

    def finish(self, ticket: Ticket, outcome: str = "decoded") -> None:
        """The ticket's texts leave the queue. ``outcome``: "decoded" (they count towards the throughput and the
        scale), "timeout" (towards the scale: the request took at least that long), or "aborted" (the client
        left, the server stopped: neither)."""
        self._open.remove(ticket)
        self.texts_in_flight -= ticket.texts
        if outcome == "decoded":
            self._finished += ticket.texts
            self._samples.append((self._busy(), self._finished))
        rate = self.texts_per_s()
        if outcome in ("decoded", "timeout") and rate:
            self._shortfalls.append((self.clock() - ticket.started) / (ticket.peak_in_flight / rate))
        if self.texts_in_flight == 0 and self._busy_since is not None:
            self._busy_total += self.clock() - self._busy_since
            self._busy_since = None
