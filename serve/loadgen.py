"""Load generation against ``padellm serve``, every request accounted for.

Closed loop (``run_load``): N client threads, each sending one sentence per request (the next one of a shared
cycle over the sample) and waiting for the answer before sending the next, so that N is the number of requests in
flight. Open loop (``run_open_loop``): requests sent on a fixed schedule whatever the server does, to offer more
work than it can do. A request ends as a response (HTTP 200, checked to carry one result), an explicit error (its
HTTP status, e.g. 503 when the server sheds load), or lost (no answer: connection refused / reset / timed out); the
summary counts each.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from padellm.client import NERClient, ServerError
from padellm.errors import InvalidRequestError


@dataclass(frozen=True)
class Outcome:
    index: int
    """Which sentence of the sample was sent."""
    seconds: float
    status: int
    """200, the HTTP error status, or 0 when no answer came back."""
    entities: tuple | None = None
    """(start, end, label) of each entity, for 200 answers."""
    error: str = ""
    retry_after_s: float | None = None
    """The Retry-After of a refusal (503): a closed-loop client waits that long before its next request."""


def _entities(response: dict) -> tuple:
    (result,) = response["results"]  # one text sent, one result back: anything else is a server bug
    return tuple((e["start"], e["end"], e["label"]) for e in result["entities"])


def _send(client: NERClient, index: int, text: str, mode: str) -> Outcome:
    """One request of one text, timed; its outcome whatever happens."""
    sent = time.perf_counter()
    try:
        outcome = Outcome(index, 0.0, 200, _entities(client.request(text, mode=mode)))
    except InvalidRequestError as err:
        outcome = Outcome(index, 0.0, 400, error=str(err))
    except ServerError as err:
        outcome = Outcome(index, 0.0, err.status, error=str(err), retry_after_s=err.retry_after_s)
    except Exception as err:  # a malformed answer is a failure to report, not to crash on
        outcome = Outcome(index, 0.0, 0, error=f"{type(err).__name__}: {err}")
    return dataclasses.replace(outcome, seconds=time.perf_counter() - sent)


def run_open_loop(url: str, texts: list[str], rate: float, duration_s: float, mode: str = "parallel",
                  timeout_s: float = 120.0, progress: bool = True, api_key: str | None = None
                  ) -> tuple[list[Outcome], float]:
    """Offer ``rate`` requests per second for ``duration_s`` whatever the server does (open loop: each request in
    its own thread, sent on schedule), so that an overloaded server meets more work than it can do, as it would
    from many independent users; (every request's outcome, wall seconds until the last answer)."""
    from tqdm.auto import tqdm

    lock = threading.Lock()
    outcomes: list[Outcome] = []
    client = NERClient(url, timeout=timeout_s, api_key=api_key)

    def one(index: int) -> None:
        outcome = _send(client, index % len(texts), texts[index % len(texts)], mode)
        with lock:
            outcomes.append(outcome)

    total = max(1, round(rate * duration_s))
    started = time.perf_counter()
    threads = []
    with tqdm(total=total, desc=f"open loop {mode} {rate:g}/s", unit="req", disable=not progress) as bar:
        for index in range(total):
            time.sleep(max(0.0, started + index / rate - time.perf_counter()))
            thread = threading.Thread(target=one, args=(index,), daemon=True)
            thread.start()
            threads.append(thread)
            bar.update(1)
        for thread in threads:
            thread.join()
    return outcomes, time.perf_counter() - started


def run_load(url: str, texts: list[str], clients: int, duration_s: float, mode: str = "parallel",
             timeout_s: float = 120.0, progress: bool = True, api_key: str | None = None
             ) -> tuple[list[Outcome], float]:
    """Drive the server; (every request's outcome, wall seconds from the first send to the last answer)."""
    from tqdm.auto import tqdm

    order = itertools.cycle(range(len(texts)))
    lock = threading.Lock()
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    deadline = started + duration_s

    def client_loop() -> None:
        client = NERClient(url, timeout=timeout_s, api_key=api_key)
        while time.perf_counter() < deadline:
            with lock:
                index = next(order)
            outcome = _send(client, index, texts[index], mode)
            with lock:
                outcomes.append(outcome)
            if outcome.retry_after_s:  # as a well-behaved client would, rather than hammering a full server
                time.sleep(min(outcome.retry_after_s, max(0.0, deadline - time.perf_counter())))

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    with tqdm(total=round(duration_s), desc=f"load {mode} x{clients}", unit="s", disable=not progress) as bar:
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            elapsed = min(round(time.perf_counter() - started), round(duration_s))
            bar.update(elapsed - bar.n)
            with lock:
                bar.set_postfix(requests=len(outcomes), errors=sum(o.status != 200 for o in outcomes))
    for thread in threads:
        thread.join()
    return outcomes, time.perf_counter() - started


def summarize_load(outcomes: list[Outcome], wall_s: float) -> dict:
    ok = [o for o in outcomes if o.status == 200]
    latencies = np.asarray([o.seconds for o in ok]) * 1000 if ok else np.zeros(1)
    statuses = Counter(o.status for o in outcomes if o.status != 200)
    return {
        "requests": len(outcomes), "ok": len(ok),
        "errors": {str(status): count for status, count in sorted(statuses.items()) if status},
        "lost": statuses.get(0, 0),
        "requests_per_s": round(len(ok) / wall_s, 3) if wall_s else 0.0,
        "wall_s": round(wall_s, 2),
        "mean_ms": round(float(latencies.mean()), 1),
        **{f"p{q}_ms": round(float(np.percentile(latencies, q)), 1) for q in (50, 95, 99)},
        "max_ms": round(float(latencies.max()), 1),
        "refused_max_ms": round(max((1000 * o.seconds for o in outcomes if o.status == 503), default=0.0), 1),
        "error_examples": sorted({o.error for o in outcomes if o.status != 200})[:5],
    }


def consistency(outcomes: list[Outcome]) -> dict:
    """Sentences answered more than once under load: how many got the same entities every time."""
    answers: dict[int, set] = {}
    for outcome in outcomes:
        if outcome.status == 200:
            answers.setdefault(outcome.index, set()).add(outcome.entities)
    times = Counter(o.index for o in outcomes if o.status == 200)
    repeated = [index for index, count in times.items() if count > 1]
    stable = [index for index in repeated if len(answers[index]) == 1]
    return {"repeated_sentences": len(repeated), "identical_every_time": len(stable)}


def spot_check(outcomes: list[Outcome], offline: dict[int, tuple]) -> dict:
    """Answers under load against offline extraction of the same sentences (``offline``: index -> entities)."""
    checked = [o for o in outcomes if o.status == 200 and o.index in offline]
    agree = sum(o.entities == offline[o.index] for o in checked)
    disagreements = [{"index": o.index, "served": o.entities, "offline": offline[o.index]}
                     for o in checked if o.entities != offline[o.index]]
    return {"responses_checked": len(checked), "sentences_checked": len({o.index for o in checked}),
            "agree": agree, "agreement": round(agree / len(checked), 4) if checked else None,
            "disagreements": disagreements[:5]}
