"""Load shedding by queued work: the estimate (padellm_serve.admission, on a fake clock), and a server on a slowed
backend driven at twice the rate it can sustain: every request is answered or refused at once, none times out."""

import functools
import http.client
import json
import threading
import time

from padellm_serve.admission import Admission

from live_server import live_server
from test_app import DECODE
from threaded_backend import transformers_loader


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_estimate_divides_the_queue_by_the_measured_throughput():
    clock = Clock()
    admission = Admission(max_texts_in_flight=100, timeout_s=10, shed_at=0.8, clock=clock)
    assert admission.texts_per_s() is None and admission.refusal(50) is None  # idle: always admitted
    first = admission.start(4)
    assert first.unscaled_s is None and admission.refusal(50) is None  # no estimate yet: only the hard bound
    clock.now = 2.0
    admission.finish(first)  # 4 texts in 2 busy seconds
    assert admission.texts_per_s() == 2.0 and admission.scale() == 1.0
    clock.now = 100.0  # idle time does not count as busy
    second = admission.start(10)
    assert second.unscaled_s == 5.0 and admission.texts_per_s() == 2.0
    assert admission.predicted_s(5) == 7.5 and admission.refusal(5) is None  # 15 texts at 2/s: 7.5 s <= 8 s
    refusal = admission.refusal(7)  # 17 texts: 8.5 s > 0.8 x 10 s
    assert refusal.limit == 10 and refusal.retry_after_s == 5 and "10 texts are ahead of it at about 2.0 texts/s" \
        in refusal.message
    clock.now = 101.0
    admission.finish(second, "aborted")  # the client left: no estimate learns from it
    assert admission.texts_in_flight == 0 and admission.texts_per_s() == 4 / 3 and admission.scale() == 1.0


def test_requests_slower_than_predicted_scale_the_prediction():
    clock = Clock()
    admission = Admission(max_texts_in_flight=100, timeout_s=20, clock=clock)
    warm = admission.start(2)
    clock.now = 1.0
    admission.finish(warm)  # 2 texts/s
    slow = admission.start(2)  # predicted 1 s
    clock.now = 4.0
    admission.finish(slow)  # took 3 s: three times the prediction
    assert admission.scale() == 3.0
    assert admission.texts_per_s() == 1.0 and admission.predicted_s(1) == 3.0  # 4 texts in 4 busy s, x 3
    admission.start(2)
    assert admission.refusal(1) is None  # (2 + 1) texts / 1 per s x 3 = 9 s <= 0.8 x 20 s
    assert admission.refusal(4).retry_after_s == 6  # (2 + 4) x 3 = 18 s > 16 s; the 2 ahead take 6 s


def test_the_hard_bound_on_texts_in_flight():
    admission = Admission(max_texts_in_flight=8, timeout_s=10, clock=Clock())
    admission.start(6)
    refusal = admission.refusal(3)
    assert refusal.limit == 8 and refusal.retry_after_s == 1 and "6 texts are being decoded" in refusal.message
    assert admission.refusal(2) is None


def post(url: str, text: str) -> tuple[int, float, dict]:
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/v1/ner", json.dumps({"input": text}), {"Content-Type": "application/json"})
    response = connection.getresponse()
    body = json.loads(response.read())
    return response.status, time.monotonic() - started, {**body, "retry_after": response.getheader("Retry-After")}


def test_at_twice_the_sustainable_rate_nothing_times_out(tiny_adapters):
    # Each engine call takes 0.1 s, one at a time: a one-text request (a count call, then perhaps a branch call)
    # takes 0.1 to 0.2 s alone, so 5 to 10 requests/s is all the server can do. Offer 20/s for 3 s.
    loader = functools.partial(transformers_loader, delay_s=0.1)
    timeout_s = 1.5
    with live_server([tiny_adapters["parallel"]], loader, request_timeout_s=timeout_s) as (url, _, service):
        service.decode_config = DECODE
        outcomes, threads = [], []
        for i in range(60):
            thread = threading.Thread(target=lambda i=i: outcomes.append(post(url, f"Paris {i}")))
            thread.start()
            threads.append(thread)
            time.sleep(0.05)
        for thread in threads:
            thread.join(60)
    statuses = [status for status, _, _ in outcomes]
    assert len(outcomes) == 60 and set(statuses) <= {200, 503}, statuses  # no 504: no accepted request timed out
    assert statuses.count(200) >= 10 and statuses.count(503) >= 10, statuses
    refused = [(seconds, body) for status, seconds, body in outcomes if status == 503]
    assert max(seconds for seconds, _ in refused) < 0.5  # refused at once, not after waiting
    assert all(body["error"]["type"] == "overloaded" and int(body["retry_after"]) >= 1 for _, body in refused)
    assert max(seconds for status, seconds, _ in outcomes if status == 200) < timeout_s
