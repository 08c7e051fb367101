from collections import Counter

import pytest

from padellm.evaluation.runner import SystemRun
from padellm.evaluation.summary import generated_tokens, latency_summary, summarize
from padellm.types import Entity, Example

EXAMPLES = [Example("Anna in Paris", ("Anna", "in", "Paris"), ((0, 4), (5, 7), (8, 13)),
                    (Entity(0, 4, "PER"), Entity(8, 13, "LOC"))),
            Example("Bob", ("Bob",), ((0, 3),), (Entity(0, 3, "PER"),))]
PREDICTED = [[Entity(0, 4, "PER"), Entity(8, 13, "PER")], [Entity(0, 3, "PER")]]


def test_latency_percentiles_in_ms():
    summary = latency_summary([0.001 * v for v in range(1, 101)])
    assert summary["mean"] == pytest.approx(50.5) and summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05) and summary["p99"] == pytest.approx(99.01)
    assert summary["min"] == pytest.approx(1) and summary["max"] == pytest.approx(100)


def test_tokens_per_sequence_of_both_llm_modes():
    assert generated_tokens(Counter(count_prompts=4, count_tokens=4, branches=2, branch_tokens=8)) == (12, 6)
    assert generated_tokens(Counter(sequences=2, generated_tokens=20)) == (20, 2)
    assert generated_tokens(Counter(branches=8, branch_tokens=16, rounds=1)) == (16, 8)  # count-free


def runs():
    parallel = SystemRun(latencies_s=[0.1, 0.3], predictions=PREDICTED, batch_s=0.5, batch_predictions=PREDICTED,
                         stage_s=[{"count_s": 0.05, "branches_s": 0.05}, {"count_s": 0.15, "branches_s": 0.15}],
                         stats=Counter(count_prompts=4, count_tokens=4, branches=2, branch_tokens=8))
    autoregressive = SystemRun(latencies_s=[0.4, 0.8], predictions=[[], []], batch_s=2.0,
                               batch_predictions=[[], [Entity(0, 3, "PER")]], stats=Counter(sequences=2, generated_tokens=20),
                               stage_s=[{"generate_s": 0.4}, {"generate_s": 0.8}])
    fastner = SystemRun(latencies_s=[0.01, 0.01], predictions=PREDICTED, batch_s=0.01, batch_predictions=PREDICTED,
                        exits=[1, 2])
    return {"parallel": parallel, "autoregressive": autoregressive, "fastner (full model)": fastner}


def test_summary_scores_latencies_tokens_exits_and_speedups():
    kinds = {"parallel": "llm", "autoregressive": "llm", "fastner (full model)": "fastner"}
    summary = summarize(runs(), kinds, EXAMPLES)
    parallel = summary["systems"]["parallel"]
    # Written out by hand: Anna/PER and Bob/PER found, Paris predicted PER where gold says LOC.
    third = pytest.approx(2 / 3)
    for matcher in ("span", "string"):
        assert parallel[matcher]["matcher"] == matcher
        assert parallel[matcher]["micro"] == {"precision": third, "recall": third, "f1": third, "tp": 2, "fp": 1,
                                             "fn": 1, "support": 3}
        assert parallel[matcher]["macro_f1"] == pytest.approx(0.4)  # (PER 0.8 + LOC 0) / 2
        assert parallel[matcher]["per_label"]["PER"] == {"precision": third, "recall": 1.0, "f1": pytest.approx(0.8),
                                                         "tp": 2, "fp": 1, "fn": 0, "support": 2}
        assert parallel[matcher]["per_label"]["LOC"]["support"] == 1 == parallel[matcher]["per_label"]["LOC"]["fn"]
    assert parallel["recall_by_rank"] == {"only": {"gold": 3, "found": 2, "recall": third}}
    assert parallel["latency_ms"]["mean"] == pytest.approx(200)
    assert parallel["batch"] == pytest.approx({"seconds": 0.5, "sentences_per_s": 4.0, "agrees_with_single": 1.0})
    assert parallel["stage_mean_ms"] == pytest.approx({"count": 100, "branches": 100})
    assert list(parallel["stage_mean_ms"]) == ["count", "branches"]
    assert parallel["tokens_per_sequence"] == 2 and parallel["sequences_per_sentence"] == 3
    assert summary["systems"]["autoregressive"]["batch"]["agrees_with_single"] == 0.5
    fastner = summary["systems"]["fastner (full model)"]
    assert fastner["mean_exit_layer"] == 1.5 and fastner["exit_layers"] == {"1": 1, "2": 1}
    assert "tokens_per_sequence" not in fastner and "stage_mean_ms" not in fastner
    assert summary["reference"] == "autoregressive"
    assert summary["speedup"]["parallel"] == pytest.approx(
        {"mean_latency": 3.0, "p50_latency": 3.0, "p95_latency": 0.78 / 0.29, "p99_latency": 0.796 / 0.298,
         "batch_throughput": 4.0})
    assert summary["speedup"]["fastner (full model)"]["mean_latency"] == pytest.approx(60)


def test_no_speedups_without_the_reference():
    all_runs = runs()
    del all_runs["autoregressive"]
    summary = summarize(all_runs, {"parallel": "llm", "fastner (full model)": "fastner"}, EXAMPLES)
    assert summary["reference"] is None and summary["speedup"] == {}


def test_speedups_against_the_papers_structured_baseline_too():
    all_runs = runs()
    all_runs["structured"] = SystemRun(latencies_s=[1.2, 1.2], predictions=[[], []], batch_s=4.0,
                                       batch_predictions=[[], []], stats=Counter(sequences=2, generated_tokens=56))
    kinds = {"parallel": "llm", "autoregressive": "llm", "structured": "llm", "fastner (full model)": "fastner"}
    summary = summarize(all_runs, kinds, EXAMPLES)
    assert summary["reference"] == "autoregressive"  # the compact baseline stays the headline
    assert summary["speedup_vs_structured"]["parallel"]["mean_latency"] == pytest.approx(6.0)
    assert summary["speedup_vs_structured"]["autoregressive"]["batch_throughput"] == pytest.approx(2.0)
    from padellm.evaluation.report import structured_speedups

    lines = structured_speedups({"summary": summary})
    assert "| parallel | 6.00x | 6.00x | 8.00x |" in lines
    assert structured_speedups({"summary": summarize(runs(), kinds, EXAMPLES)}) == []


def test_prefix_cache_hit_rate_per_stage():
    from padellm.evaluation.summary import prefix_cache

    stats = Counter(count_prompt_tokens=400, count_cached_tokens=100, branch_prompt_tokens=300,
                    branch_cached_tokens=300, prompt_prompt_tokens=0)
    assert prefix_cache(stats, 10) == {"branch": {"prompt_tokens_per_sentence": 30.0, "hit_rate": 1.0},
                                       "count": {"prompt_tokens_per_sentence": 40.0, "hit_rate": 0.25}}
