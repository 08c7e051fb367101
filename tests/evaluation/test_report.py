from padellm.evaluation.report import caveats, format_table, label_table, main_table, rank_table

PRF = {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "tp": 1, "fp": 1, "fn": 0, "support": 1}


def entry(kind, mean, **extra):
    scores = {"micro": PRF, "per_label": {"PER": PRF}}
    return {"kind": kind, "span": scores, "string": scores,
            "latency_ms": {"mean": mean, "p50": mean, "p95": mean, "p99": mean, "min": mean, "max": mean}, **extra}


SUMMARY = {"sentences": 2, "reference": "autoregressive",
           "systems": {"autoregressive": entry("llm", 300.0, batch={"sentences_per_s": 10.0}, tokens_per_sequence=11.0),
                       "fastner (patience 1)": entry("fastner", 3.0, mean_exit_layer=2.5)},
           "speedup": {"fastner (patience 1)": {"mean_latency": 100.0, "p50_latency": 100.0}}}


def test_tables_mark_what_a_system_does_not_have():
    lines = main_table({"summary": SUMMARY})
    assert lines[2] == ("| autoregressive | 66.67 | 50.00 | 100.00 | 66.67 | 300.0 | 300.0 | 300.0 | 300.0 | 10.0 | "
                        "11.00 | – | 1.00x | 1.00x | 1.00x |")
    assert lines[3] == ("| fastner (patience 1) | 66.67 | 50.00 | 100.00 | 66.67 | 3.0 | 3.0 | 3.0 | 3.0 | – | – | "
                        "2.50 | 100.00x | 100.00x | – |")
    assert label_table({"summary": SUMMARY}, "span")[2] == "| PER | 1 | 50.00 / 100.00 / 66.67 | 50.00 / 100.00 / 66.67 |"


def test_console_table():
    table = format_table(SUMMARY).splitlines()
    assert table[0] == "2 sentences" and table[1].split()[:3] == ["system", "F1", "str"]
    assert table[3].split()[-2:] == ["100.00x", "–"] and table[-1].startswith("speed-ups (x) over autoregressive")


def test_fastner_beside_vllm_engines_without_a_pause_carries_a_caveat():
    systems = {"parallel": {"kind": "llm"}, "fastner (full model)": {"kind": "fastner"}}
    results = {"systems": systems, "config": {"backend": "vllm", "settle_ms": 0}}
    assert caveats(results)[0].startswith("**Caveat.** vLLM's processes busy-poll")
    assert caveats({**results, "config": {"backend": "vllm", "settle_ms": 1100}}) == []
    assert caveats({**results, "config": {"backend": "transformers", "settle_ms": 0}}) == []
    assert caveats({**results, "systems": {"parallel": {"kind": "llm"}}}) == []


def test_rank_table_gives_each_systems_recall_per_rank_and_marks_a_missing_rank():
    ranks = {"only": {"gold": 4, "found": 3, "recall": 0.75}, "second": {"gold": 2, "found": 1, "recall": 0.5}}
    systems = {"parallel": entry("llm", 200.0, recall_by_rank=ranks),
               "autoregressive": entry("llm", 300.0, recall_by_rank={"only": {"gold": 4, "found": 4, "recall": 1.0}})}
    lines = rank_table({"summary": {"systems": systems}})
    assert lines[0] == "| system | only: recall % (found / gold) | second: recall % (found / gold) |"
    assert lines[2:] == ["| parallel | 75.00 (3 / 4) | 50.00 (1 / 2) |", "| autoregressive | 100.00 (4 / 4) | – |"]
    assert rank_table({"summary": SUMMARY}) == []
