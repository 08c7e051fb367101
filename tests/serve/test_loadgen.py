import pytest

from padellm_serve.loadgen import Outcome, consistency, spot_check, summarize_load

OUTCOMES = [Outcome(0, 0.10, 200, ((0, 4, "PER"),)), Outcome(1, 0.20, 200, ()), Outcome(0, 0.30, 200, ((0, 4, "PER"),)),
            Outcome(1, 0.40, 200, ((1, 2, "LOC"),)), Outcome(2, 5.0, 400, error="input: empty"),
            Outcome(2, 1.0, 0, error="URLError: refused")]


def test_summary_counts_every_request():
    summary = summarize_load(OUTCOMES, wall_s=2.0)
    assert summary["requests"] == 6 and summary["ok"] == 4
    assert summary["errors"] == {"400": 1} and summary["lost"] == 1
    assert summary["requests_per_s"] == 2.0
    assert summary["mean_ms"] == pytest.approx(250.0) and summary["max_ms"] == pytest.approx(400.0)
    assert summary["p50_ms"] == pytest.approx(250.0)
    assert summary["error_examples"] == ["URLError: refused", "input: empty"]
    assert summary["refused_max_ms"] == 0.0  # no 503 among them


def test_consistency_and_spot_check():
    assert consistency(OUTCOMES) == {"repeated_sentences": 2, "identical_every_time": 1}
    check = spot_check(OUTCOMES, {0: ((0, 4, "PER"),), 1: ()})
    assert (check["responses_checked"], check["sentences_checked"], check["agree"]) == (4, 2, 3)
    assert check["agreement"] == 0.75
    assert check["disagreements"] == [{"index": 1, "served": ((1, 2, "LOC"),), "offline": ()}]
