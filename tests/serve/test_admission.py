"""Load shedding by queued work: the estimate (padellm_serve.admission, on a fake clock), and a server on a slowed
backend driven at twice the rate it can sustain: every request is answered or refused at once, none times out."""

import functools

from padellm_serve.admission import Admission
from padellm_serve.loadgen import run_open_loop, summarize_load

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
    assert admission.refusal(50) is None  # no estimate yet: only the hard bound
    clock.now = 2.0
    admission.finish(first)  # 4 texts in 2 busy seconds, as long as its queue of 4 predicts
    assert admission.texts_per_s() == 2.0 and admission.scale() == 1.0
    clock.now = 100.0  # idle time does not count as busy
    second = admission.start(10)
    assert admission.texts_per_s() == 2.0
    assert admission.predicted_s(5) == 7.5 and admission.refusal(5) is None  # 15 texts at 2/s: 7.5 s <= 8 s
    refusal = admission.refusal(7)  # 17 texts: 8.5 s > 0.8 x 10 s
    assert refusal.limit == 10 and refusal.retry_after_s == 5 and "10 texts are ahead of it at about 2.0 texts/s" \
        in refusal.message
    clock.now = 101.0
    admission.finish(second, "aborted")  # the client left: no estimate learns from it
    assert admission.texts_in_flight == 0 and admission.texts_per_s() == 4 / 3 and admission.scale() == 1.0


def measured_at_two_texts_per_s() -> tuple[Admission, Clock]:
    """An admission (20 s time-out, fake clock at 1.0 s) that has seen 2 texts decoded in 1 busy second."""
    clock = Clock()
    admission = Admission(max_texts_in_flight=100, timeout_s=20, clock=clock)
    warm = admission.start(2)
    clock.now = 1.0
    admission.finish(warm)
    return admission, clock


def test_requests_that_arrive_behind_a_request_do_not_inflate_the_scale():
    # A batching engine serves everything in flight together: a request that started alone is slowed by those
    # that came after it, as far as the queue it saw at its peak predicts, and no further.
    admission, clock = measured_at_two_texts_per_s()
    alone = admission.start(1)
    late = [admission.start(1) for _ in range(3)]  # 4 in flight while `alone` runs
    clock.now = 3.0
    admission.finish(alone)  # 2 s: as long as 4 texts at 2/s take
    assert admission.scale() == 1.0
    for ticket in late:
        admission.finish(ticket)


def test_requests_slower_than_their_queue_predicts_scale_the_prediction():
    admission, clock = measured_at_two_texts_per_s()
    slow = admission.start(2)  # its queue (2 texts) predicts 1 s
    clock.now = 4.0
    admission.finish(slow)  # took 3 s; throughput now 4 texts in 4 busy s
    assert admission.texts_per_s() == 1.0 and admission.scale() == 1.5  # 3 s against 2 texts at 1/s
    assert admission.predicted_s(1) == 1.5
    admission.start(6)
    assert admission.refusal(4) is None  # (6 + 4) x 1.5 = 15 s <= 0.8 x 20 s
    assert admission.refusal(5).retry_after_s == 9  # (6 + 5) x 1.5 = 16.5 s > 16 s; the 6 ahead take 9 s


def test_one_long_answer_does_not_make_the_server_refuse_everything():
    clock = Clock()
    admission = Admission(max_texts_in_flight=100, timeout_s=20, clock=clock)
    for took in [1.0] * 9 + [10.0]:  # one request of ten writes a long answer: ten times its queue's time
        ticket = admission.start(1)
        clock.now += took
        admission.finish(ticket)
    assert admission.scale() == 1.0  # the 90th percentile, not the outlier
    ticket = admission.start(1)
    clock.now += 10.0
    admission.finish(ticket)  # a second one in eleven: now past the 90th percentile
    assert admission.scale() > 1.0


def test_the_hard_bound_on_texts_in_flight():
    admission = Admission(max_texts_in_flight=8, timeout_s=10, clock=Clock())
    admission.start(6)
    refusal = admission.refusal(3)
    assert refusal.limit == 8 and refusal.retry_after_s == 1 and "6 texts are being decoded" in refusal.message
    assert admission.refusal(2) is None


def test_at_twice_the_sustainable_rate_nothing_times_out(tiny_adapters):
    # Each engine call takes 0.1 s, one at a time: a one-text request (a count call, then perhaps a branch call)
    # takes 0.1 to 0.2 s alone, so 5 to 10 requests/s is all the server can do. Offer 20/s for 3 s (open loop).
    loader = functools.partial(transformers_loader, delay_s=0.1)
    timeout_s = 1.5
    with live_server([tiny_adapters["parallel"]], loader, request_timeout_s=timeout_s) as (url, _, service):
        service.decode_config = DECODE
        outcomes, wall = run_open_loop(url, [f"Paris {i}" for i in range(7)], rate=20, duration_s=3, progress=False)
    summary = summarize_load(outcomes, wall)
    assert summary["requests"] == 60 and set(summary["errors"]) == {"503"}, summary  # no 504, nothing lost
    assert summary["ok"] >= 10 and summary["errors"]["503"] >= 10, summary
    assert summary["refused_max_ms"] < 500  # refused at once, not after waiting
    assert summary["max_ms"] < 1000 * timeout_s
    assert all("would not finish this request before its time-out" in o.error or "texts are being decoded" in o.error
               for o in outcomes if o.status == 503)
