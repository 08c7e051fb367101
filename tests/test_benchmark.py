from collections import Counter

import pytest

from padellm.benchmark import DecoderRun, format_summary, generated_tokens, run_benchmark, summarize
from padellm.engine.decoding import DecodeResult
from padellm.types import Entity, Example

EXAMPLES = [Example("Anna in Paris", ("Anna", "in", "Paris"), ((0, 4), (5, 7), (8, 13)),
                    (Entity(0, 4, "PER"), Entity(8, 13, "LOC"))),
            Example("Bob", ("Bob",), ((0, 3),), (Entity(0, 3, "PER"),))]


class FakeDecoder:
    """Finds every capitalised word as PER; records the texts of each call in a shared log."""

    def __init__(self, name, log, stats):
        self.name, self.log, self.stats = name, log, stats

    def run(self, texts):
        self.log.append((self.name, tuple(texts)))
        entities = []
        for text in texts:
            found, start = [], 0
            for word in text.split():
                start = text.index(word, start)
                if word[0].isupper():
                    found.append(Entity(start, start + len(word), "PER"))
                start += len(word)
            entities.append(found)
        return DecodeResult(entities, {"stage_s": 0.001, "total_s": 0.001}, Counter(self.stats))


def test_single_requests_alternate_order_after_warmup_then_one_batch_call():
    log = []
    decoders = {"parallel": FakeDecoder("parallel", log, {"count_prompts": 2, "count_tokens": 2, "branches": 1,
                                                         "branch_tokens": 4}),
                "autoregressive": FakeDecoder("autoregressive", log, {"sequences": 1, "generated_tokens": 9})}
    runs = run_benchmark(decoders, EXAMPLES, [EXAMPLES[1]], progress=False)
    assert log[:2] == [("parallel", ("Bob",)), ("autoregressive", ("Bob",))]  # warm-up
    assert [name for name, _ in log[2:6]] == ["parallel", "autoregressive", "autoregressive", "parallel"]
    assert log[6:] == [("parallel", ("Anna in Paris", "Bob")), ("autoregressive", ("Anna in Paris", "Bob"))]
    assert len(runs["parallel"].latencies_s) == 2 and runs["parallel"].batch_predictions == runs["parallel"].predictions
    summary = summarize(runs, EXAMPLES)
    parallel = summary["decoders"]["parallel"]
    assert parallel["precision"] == pytest.approx(100 * 2 / 3) and parallel["recall"] == pytest.approx(100 * 2 / 3)
    assert parallel["tokens_per_sequence"] == pytest.approx(6 * 2 / (3 * 2))
    assert summary["decoders"]["autoregressive"]["sequences_per_sentence"] == 1
    assert parallel["batch_agrees_with_single"] == 1.0


def test_summary_latencies_and_speedups():
    runs = {"parallel": DecoderRun(latencies_s=[0.1, 0.3], predictions=[[], []], batch_s=0.5,
                                   batch_predictions=[[], []]),
            "autoregressive": DecoderRun(latencies_s=[0.4, 0.8], predictions=[[], []], batch_s=2.0,
                                         batch_predictions=[[], []])}
    runs["autoregressive"].stats.update(sequences=2, generated_tokens=20)
    summary = summarize(runs, EXAMPLES)
    assert summary["decoders"]["parallel"]["mean_ms"] == pytest.approx(200)
    assert summary["decoders"]["parallel"]["p50_ms"] == pytest.approx(200)
    assert summary["decoders"]["parallel"]["batch_sentences_per_s"] == pytest.approx(4)
    assert summary["speedup"]["autoregressive"] == pytest.approx(
        {"mean_latency": 3.0, "p50_latency": 3.0, "batch_throughput": 4.0})
    table = format_summary(summary)
    assert "speed-up over autoregressive: mean latency 3.00x" in table
    assert generated_tokens(runs["autoregressive"].stats) == (20, 2)
