"""Figures from measured runs: scores (metrics module), latency percentiles, throughput, tokens, exits and
speed-ups against a reference system (the autoregressive baseline)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from padellm.evaluation.runner import SystemRun
from padellm.metrics import count_accuracy, gold_counts, recall_by_rank, score
from padellm.types import Example

REFERENCE = "autoregressive"
PAPER_BASELINE = "structured"
PERCENTILES = (50, 95, 99)


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    """Mean, percentiles, min and max in milliseconds."""
    values = 1000 * np.asarray(latencies_s, dtype=float)
    summary = {"mean": float(values.mean())}
    summary |= {f"p{q}": float(np.percentile(values, q)) for q in PERCENTILES}
    return summary | {"min": float(values.min()), "max": float(values.max())}


def generated_tokens(stats: Counter) -> tuple[int, int]:
    """(tokens generated, sequences generated) from an LLM system's statistics: count prompts and branches for
    parallel decoding (branches alone without a count stage), one sequence per sentence for autoregressive
    decoding."""
    if "branches" in stats:  # both parallel decoders count their branches, even when there are none
        return (stats.get("count_tokens", 0) + stats["branch_tokens"],
                stats.get("count_prompts", 0) + stats["branches"])
    return stats["generated_tokens"], stats["sequences"]


def prefix_cache(stats: Counter, sentences: int) -> dict[str, dict[str, float]]:
    """Per decoding stage: prompt tokens per sentence, and the share of them served from the engine's prefix cache
    (single-request mode)."""
    out = {}
    for key in sorted(stats):
        if key.endswith("_prompt_tokens") and stats[key]:
            stage = key.removesuffix("_prompt_tokens")
            out[stage] = {"prompt_tokens_per_sentence": stats[key] / sentences,
                          "hit_rate": stats.get(f"{stage}_cached_tokens", 0) / stats[key]}
    return out


def system_summary(kind: str, run: SystemRun, examples: list[Example]) -> dict:
    texts = [example.text for example in examples]
    gold = [list(example.entities) for example in examples]
    sentences = len(examples)
    entry: dict = {
        "kind": kind,
        "span": score(texts, gold, run.predictions, "span").to_dict(),
        "string": score(texts, gold, run.predictions, "string").to_dict(),
        "recall_by_rank": recall_by_rank(gold, run.predictions),
        "latency_ms": latency_summary(run.latencies_s),
    }
    if run.batch_s is not None:
        entry["batch"] = {"seconds": run.batch_s, "sentences_per_s": sentences / run.batch_s,
                          "agrees_with_single": sum(a == b for a, b in zip(run.batch_predictions, run.predictions))
                          / sentences}
    if kind == "llm":
        tokens, sequences = generated_tokens(run.stats)
        stages = list(dict.fromkeys(stage for stage_s in run.stage_s for stage in stage_s))
        entry["stage_mean_ms"] = {stage.removesuffix("_s"): 1000 * sum(s.get(stage, 0.0) for s in run.stage_s)
                                  / sentences for stage in stages}
        entry |= {"tokens_per_sequence": tokens / max(1, sequences), "tokens_per_sentence": tokens / sentences,
                  "sequences_per_sentence": sequences / sentences, "stats": dict(run.stats),
                  "prefix_cache": prefix_cache(run.stats, sentences)}
    if run.counts:
        labels = tuple(run.counts[0])
        entry["counts"] = count_accuracy(run.counts, gold_counts(examples, labels))
    computed, full = run.token_layers
    if full:
        entry["compute"] = {"token_layers": computed, "full_model_token_layers": full, "share": computed / full,
                            "flops_speedup": full / max(1, computed)}
    if run.exits:
        entry["mean_exit_layer"] = sum(run.exits) / len(run.exits)
        # A tagger's exit per sentence is the mean over its words: counted by the layer it rounds to.
        entry["exit_layers"] = {str(k): v for k, v in sorted(Counter(round(e) for e in run.exits).items())}
    return entry


def speedups(systems: dict[str, dict], reference: str) -> dict[str, dict[str, float]]:
    """Per system, the reference's latency over the system's (mean and percentiles) and the system's batch
    throughput over the reference's: above 1 means faster than the reference."""
    base = systems[reference]
    ratios = {}
    for name, entry in systems.items():
        if name == reference:
            continue
        ratio = {f"{stat}_latency": base["latency_ms"][stat] / entry["latency_ms"][stat]
                 for stat in ("mean", *(f"p{q}" for q in PERCENTILES))}
        if "batch" in entry and "batch" in base:
            ratio["batch_throughput"] = entry["batch"]["sentences_per_s"] / base["batch"]["sentences_per_s"]
        ratios[name] = ratio
    return ratios


def summarize(runs: dict[str, SystemRun], kinds: dict[str, str], examples: list[Example],
              reference: str = REFERENCE) -> dict:
    """Every figure per system (``kinds``: llm or fastner per system) and, when ``reference`` was measured,
    the speed-ups over it."""
    systems = {name: system_summary(kinds[name], run, examples) for name, run in runs.items()}
    summary: dict = {"sentences": len(examples), "systems": systems, "reference": None, "speedup": {}}
    if reference in systems:
        summary["reference"] = reference
        summary["speedup"] = speedups(systems, reference)
    if PAPER_BASELINE in systems and reference != PAPER_BASELINE:
        # The paper compares against its structured format; the compact format stays the headline reference.
        summary["speedup_vs_structured"] = speedups(systems, PAPER_BASELINE)
    return summary
