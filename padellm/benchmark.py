"""Latency and throughput of decoders on the same sentences, measured in one run.

Single-request mode sends one sentence at a time, as an interactive user does, alternating which decoder goes
first from sentence to sentence so that neither gains from the order; batch mode sends the whole sample in one
call and reports sentences per second. Every decoder is warmed up on sentences outside the sample first.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from padellm.metrics import score
from padellm.ner import NER
from padellm.types import Entity, Example


@dataclass
class DecoderRun:
    """What one decoder did on the sample."""

    latencies_s: list[float] = field(default_factory=list)
    predictions: list[list[Entity]] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
    stage_s: Counter = field(default_factory=Counter)
    batch_s: float | None = None
    batch_predictions: list[list[Entity]] | None = None


def generated_tokens(stats: Counter) -> tuple[int, int]:
    """(tokens generated, sequences generated) from a decoder's statistics: count prompts and branches for
    parallel decoding, one sequence per sentence for autoregressive decoding."""
    if "count_prompts" in stats:
        return stats["count_tokens"] + stats["branch_tokens"], stats["count_prompts"] + stats["branches"]
    return stats["generated_tokens"], stats["sequences"]


def run_benchmark(decoders: dict[str, NER], examples: list[Example], warmup: list[Example], batch_mode: bool = True,
                  progress: bool = True) -> dict[str, DecoderRun]:
    from tqdm.auto import tqdm

    names = list(decoders)
    for example in warmup:
        for name in names:
            decoders[name].run([example.text])
    runs = {name: DecoderRun() for name in names}
    for index, example in enumerate(tqdm(examples, desc="single-request mode", unit="sentence", disable=not progress)):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            started = time.perf_counter()
            result = decoders[name].run([example.text])
            elapsed = time.perf_counter() - started
            run = runs[name]
            run.latencies_s.append(elapsed)
            run.predictions.append(result.entities[0])
            run.stats.update(result.stats)
            run.stage_s.update({k: v for k, v in result.timings.items() if k != "total_s"})
    if batch_mode:
        texts = [example.text for example in examples]
        for name in names:
            started = time.perf_counter()
            result = decoders[name].run(texts)
            runs[name].batch_s = time.perf_counter() - started
            runs[name].batch_predictions = result.entities
    return runs


def summarize(runs: dict[str, DecoderRun], examples: list[Example]) -> dict:
    """Scores, latency percentiles (ms), throughput and token counts per decoder, plus the speed-ups of the
    first decoder over each other one."""
    texts = [example.text for example in examples]
    gold = [example.entities for example in examples]
    summary: dict = {"sentences": len(examples), "decoders": {}}
    for name, run in runs.items():
        latencies = np.array(run.latencies_s) * 1000
        tokens, sequences = generated_tokens(run.stats)
        span = score(texts, gold, run.predictions, "span").micro
        string = score(texts, gold, run.predictions, "string").micro
        entry = {
            "f1": 100 * span.f1, "precision": 100 * span.precision, "recall": 100 * span.recall,
            "string_f1": 100 * string.f1,
            "mean_ms": float(latencies.mean()), "p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95)),
            "stage_mean_ms": {k: 1000 * v / len(examples) for k, v in run.stage_s.items()},
            "tokens_per_sequence": tokens / max(1, sequences), "tokens_per_sentence": tokens / len(examples),
            "sequences_per_sentence": sequences / len(examples), "stats": dict(run.stats),
        }
        if run.batch_s is not None:
            entry["batch_sentences_per_s"] = len(examples) / run.batch_s
            entry["batch_agrees_with_single"] = sum(
                a == b for a, b in zip(run.batch_predictions, run.predictions)) / len(examples)
        summary["decoders"][name] = entry
    first, *others = list(runs)
    decoders = summary["decoders"]
    summary["speedup"] = {
        other: {"mean_latency": decoders[other]["mean_ms"] / decoders[first]["mean_ms"],
                "p50_latency": decoders[other]["p50_ms"] / decoders[first]["p50_ms"],
                **({"batch_throughput": decoders[first]["batch_sentences_per_s"] / decoders[other]["batch_sentences_per_s"]}
                   if "batch_sentences_per_s" in decoders[first] else {})}
        for other in others
    }
    return summary


def format_summary(summary: dict) -> str:
    """A plain-text table of ``summarize``'s output."""
    header = (f"{'decoder':<16}{'F1':>7}{'P':>7}{'R':>7}{'mean ms':>9}{'p50 ms':>8}{'p95 ms':>8}{'sent/s':>8}"
              f"{'tok/seq':>9}{'seq/sent':>9}")
    lines = [f"{summary['sentences']} sentences, single-request latency and batch throughput", header]
    for name, d in summary["decoders"].items():
        throughput = f"{d['batch_sentences_per_s']:>8.2f}" if "batch_sentences_per_s" in d else f"{'-':>8}"
        lines.append(f"{name:<16}{d['f1']:>7.2f}{d['precision']:>7.2f}{d['recall']:>7.2f}{d['mean_ms']:>9.1f}"
                     f"{d['p50_ms']:>8.1f}{d['p95_ms']:>8.1f}{throughput}{d['tokens_per_sequence']:>9.2f}"
                     f"{d['sequences_per_sentence']:>9.2f}")
    for other, ratios in summary["speedup"].items():
        parts = ", ".join(f"{k.replace('_', ' ')} {v:.2f}x" for k, v in ratios.items())
        lines.append(f"speed-up over {other}: {parts}")
    return "\n".join(lines)
