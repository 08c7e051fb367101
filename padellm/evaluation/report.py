"""``results.json`` -> a Markdown report and a console table."""

from __future__ import annotations

from pathlib import Path

REPORT_FILE = "report.md"
PLOTS = {"f1_latency.png": "F1 against mean single-request latency",
         "stages.png": "Where the time of an LLM request goes, per decoding stage",
         "latency.png": "Single-request latency distributions"}


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _cell(entry: dict, *keys: str, fmt: str = "{:.1f}") -> str:
    value = entry
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return "–"
        value = value[key]
    return fmt.format(value)


def main_table(results: dict) -> list[str]:
    summary = results["summary"]
    speedup = summary["speedup"]
    lines = ["| system | F1 | P | R | string F1 | mean ms | p50 | p95 | p99 | batch sent/s | tokens/seq | mean exit"
             " | speed-up mean | speed-up p50 | speed-up batch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, entry in summary["systems"].items():
        span, string = entry["span"]["micro"], entry["string"]["micro"]
        ratio = speedup.get(name, {})
        if name == summary["reference"]:
            ratio = {"mean_latency": 1.0, "p50_latency": 1.0, **({"batch_throughput": 1.0} if "batch" in entry else {})}
        ratios = [_cell(ratio, key, fmt="{:.2f}x") for key in ("mean_latency", "p50_latency", "batch_throughput")]
        lines.append(
            f"| {name} | {_pct(span['f1'])} | {_pct(span['precision'])} | {_pct(span['recall'])} | "
            f"{_pct(string['f1'])} | {_cell(entry, 'latency_ms', 'mean')} | {_cell(entry, 'latency_ms', 'p50')} | "
            f"{_cell(entry, 'latency_ms', 'p95')} | {_cell(entry, 'latency_ms', 'p99')} | "
            f"{_cell(entry, 'batch', 'sentences_per_s')} | {_cell(entry, 'tokens_per_sequence', fmt='{:.2f}')} | "
            f"{_cell(entry, 'mean_exit_layer', fmt='{:.2f}')} | {' | '.join(ratios)} |")
    return lines


def compute_table(results: dict) -> list[str]:
    """Encoder compute of the BIO taggers, as the early-exit papers count it (token-layers, i.e. FLOPs up to the
    heads and attention's quadratic part), next to the wall-clock speed-up over the same model run in full."""
    systems, measured = results["summary"]["systems"], results["systems"]
    rows = [(name, entry) for name, entry in systems.items() if "compute" in entry]
    if not rows:
        return []
    # The full-model system of each artifact: the same folder run with exit mode none.
    full_of = {measured[name]["artifact"]: systems[name] for name, _ in rows
               if measured[name]["settings"]["exit"]["mode"] == "none"}
    lines = ["## Encoder compute (BIO taggers)", "",
             "FLOPs speed-up: the token-layers the full model computes over those computed (the papers' measure); "
             "wall-clock: the same model's full-model system's mean latency (and batch throughput) against this "
             "one's, when both ran.", "",
             "| system | F1 | share of full-model token-layers | FLOPs speed-up | wall-clock speed-up mean | batch |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, entry in rows:
        full = full_of.get(measured[name]["artifact"])
        wall = batch = "–"
        if full is not None and full is not entry:
            wall = f"{full['latency_ms']['mean'] / entry['latency_ms']['mean']:.2f}x"
            if "batch" in full and "batch" in entry:
                batch = f"{entry['batch']['sentences_per_s'] / full['batch']['sentences_per_s']:.2f}x"
        lines.append(f"| {name} | {_pct(entry['span']['micro']['f1'])} | {100 * entry['compute']['share']:.1f} % | "
                     f"{entry['compute']['flops_speedup']:.2f}x | {wall} | {batch} |")
    return lines + [""]


def structured_speedups(results: dict) -> list[str]:
    """Speed-ups over the paper's structured baseline, when it was measured (the paper's comparison)."""
    ratios = results["summary"].get("speedup_vs_structured")
    if not ratios:
        return []
    lines = ["Against the paper's structured autoregressive baseline (AutoReg_Struct: every label listed):", "",
             "| system | speed-up mean | speed-up p50 | speed-up batch |", "|---|---:|---:|---:|"]
    for name, ratio in ratios.items():
        cells = [_cell(ratio, key, fmt="{:.2f}x") for key in ("mean_latency", "p50_latency", "batch_throughput")]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines + [""]


def label_table(results: dict, matcher: str) -> list[str]:
    """Labels as rows, one ``P / R / F1`` column per system, and the gold support."""
    systems = results["summary"]["systems"]
    labels = sorted({label for entry in systems.values() for label in entry[matcher]["per_label"]})
    lines = ["| label | support | " + " | ".join(f"{name} P / R / F1" for name in systems) + " |",
             "|---|---:|" + "---:|" * len(systems)]
    for label in labels:
        cells, support = [], 0
        for entry in systems.values():
            prf = entry[matcher]["per_label"].get(label)
            if prf is None:
                cells.append("–")
                continue
            support = max(support, prf["support"])
            cells.append(f"{_pct(prf['precision'])} / {_pct(prf['recall'])} / {_pct(prf['f1'])}")
        lines.append(f"| {label} | {support} | " + " | ".join(cells) + " |")
    return lines


def rank_table(results: dict) -> list[str]:
    """Exact-span recall of each system by a gold mention's rank among its label's mentions in the sentence."""
    systems = results["summary"]["systems"]
    ranks = list(dict.fromkeys(rank for entry in systems.values() for rank in entry.get("recall_by_rank", {})))
    if not ranks:
        return []
    lines = ["| system | " + " | ".join(f"{rank}: recall % (found / gold)" for rank in ranks) + " |",
             "|---|" + "---:|" * len(ranks)]
    for name, entry in systems.items():
        cells = [entry.get("recall_by_rank", {}).get(rank) for rank in ranks]
        lines.append(f"| {name} | " + " | ".join(f"{_pct(c['recall'])} ({c['found']} / {c['gold']})" if c else "–"
                                                   for c in cells) + " |")
    return lines


CACHE_STAGES = {"count": "count", "branches": "branch", "generate": "prompt"}
"""Timed stage -> the stage name of its prompt-token statistics."""


def stage_table(results: dict) -> list[str]:
    rows = [(name, stage, ms, entry.get("prefix_cache", {}).get(CACHE_STAGES.get(stage, ""), {}))
            for name, entry in results["summary"]["systems"].items()
            for stage, ms in entry.get("stage_mean_ms", {}).items()]
    if not rows:
        return []
    lines = ["| system | stage | mean ms per sentence | prompt tokens per sentence | prefix-cache hit rate |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {name} | {stage} | {ms:.1f} | {_cell(cache, 'prompt_tokens_per_sentence')} | "
              f"{_cell(cache, 'hit_rate', fmt='{:.1%}')} |" for name, stage, ms, cache in rows]
    return lines


def count_table(results: dict) -> list[str]:
    """The count stage of each parallel system: per label, the share of (sentence, label) pairs stated exactly,
    under and over, mentions stated against gold, and the most frequent errors."""
    rows = [(name, entry["counts"]) for name, entry in results["summary"]["systems"].items()
            if "counts" in entry and "oracle" not in name]
    if not rows:
        return []
    lines = ["| system | label | pairs | exact % | under % | over % | mentions stated / gold | errors (stated - gold: pairs) |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for name, counts in rows:
        for label, acc in [*counts["per_label"].items(), ("all", counts["all"])]:
            errors = ", ".join(f"{e}: {n}" for e, n in sorted(acc["errors"].items(), key=lambda kv: -kv[1])
                               if e != "0")
            lines.append(f"| {name} | {label} | {acc['pairs']} | {_pct(acc['exact'])} | {_pct(acc['under'])} | "
                         f"{_pct(acc['over'])} | {acc['stated_mentions']} / {acc['gold_mentions']} | {errors or '–'} |")
    return lines


def _setting(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def settings_lines(results: dict) -> list[str]:
    lines = []
    for name, system in results["systems"].items():
        lines.append(f"- **{name}**: `{system['artifact']}`; labels {', '.join(system['labels'])}; "
                     + "; ".join(f"{k}: {_setting(v)}" for k, v in system["settings"].items()))
    return lines


def environment_line(environment: dict) -> str:
    gpu = environment.get("gpu") or "no GPU"
    libraries = ", ".join(f"{k} {v}" for k, v in environment["libraries"].items())
    return (f"{environment['cpu']} ({environment['cpus_available']} cores available), {gpu}, "
            f"{environment['platform']}; {libraries}")


def caveats(results: dict) -> list[str]:
    kinds = {system["kind"] for system in results["systems"].values()}
    config = results["config"]
    if {"llm", "fastner"} <= kinds and config["backend"] == "vllm" and not config.get("settle_ms"):
        return ["**Caveat.** vLLM's processes busy-poll for about a second after each request, and FastNER ran "
                "between the LLM requests without a pause (`--settle-ms 0`): on a machine with few cores its "
                "single-request latencies here include that contention (see the README's CoNLL-2003 figures). "
                "`--systems fastner` alone measures it undisturbed; `--settle-ms 1100` removes the worst spikes.", ""]
    return []


def render_report(results: dict, plots: list[str]) -> str:
    data = results["data"]
    summary = results["summary"]
    sample = (f"a seeded sample (seed {results['seed']}) of {summary['sentences']} of its {data['split_sentences']} "
              f"sentences" if summary["sentences"] < data["split_sentences"] else f"all {summary['sentences']} sentences")
    lines = [
        f"# padellm eval: {data['dataset']} {data['split']}", "",
        f"Measured on {sample}; {results['warmup']['sentences']} warm-up sentences ({results['warmup']['source']}) "
        f"first, never measured. Single-request mode: one sentence per call, systems interleaved sentence by "
        f"sentence in rotating order. Batch mode: the whole sample in one call per system.", "",
        f"- Machine: {environment_line(results['environment'])}",
        f"- Command: `{results['command']}`",
        f"- Started {results['started']}, took {results['wall_time_s']:.0f} s", "",
        "## Results", "",
        "F1, P, R: exact spans (micro, %); string F1: the PaDeLLM-NER paper's per-sentence set of (label, string). "
        "Latency: per sentence in single-request mode. Tokens/seq: tokens generated per sequence (LLM systems). "
        "Mean exit: average exit layer (FastNER: per sentence; BIO taggers: per word). "
        + (f"Speed-ups: {summary['reference']}'s latency over the system's, and the system's batch throughput "
           f"over {summary['reference']}'s." if summary["reference"] else
           "No autoregressive system was measured, so there are no speed-ups."), "",
        *main_table(results), "", *structured_speedups(results), *compute_table(results), *caveats(results),
        "## Per label: exact spans", "", *label_table(results, "span"), "",
        "## Per label: string sets (paper)", "", *label_table(results, "string"), "",
    ]
    ranks = rank_table(results)
    if ranks:
        lines += ["## Recall by mention rank", "",
                  "A gold mention's place among its label's mentions in the sentence (text order): the only one, the "
                  "first of several, the second, or a later one. Parallel decoding decodes the k-th mention of a "
                  "label in its own branch without seeing the others; misses that gather at the later ranks point "
                  "there.", "", *ranks, ""]
    counts = count_table(results)
    if counts:
        lines += ["## Count stage", "",
                  "Per (sentence, label) pair: does the count stage state the gold number of mentions? A pair it "
                  "under-counts loses mentions the branches never decode; the `(oracle counts)` row of the main "
                  "table, when measured, gives the F1 with every count right.", "", *counts, ""]
    stages = stage_table(results)
    if stages:
        lines += ["## LLM decoding stages", "", *stages, ""]
    if plots:
        lines += ["## Figures", ""]
        lines += [f"![{PLOTS[name]}]({name})\n" for name in plots]
    lines += ["## Systems", "", *settings_lines(results), ""]
    return "\n".join(lines)


def write_report(results: dict, out_dir: str | Path, plots: list[str]) -> Path:
    path = Path(out_dir) / REPORT_FILE
    path.write_text(render_report(results, plots), encoding="utf-8")
    return path


def format_table(summary: dict) -> str:
    """A plain-text table for the console."""
    header = (f"{'system':<32}{'F1':>7}{'str F1':>8}{'mean ms':>9}{'p50':>8}{'p95':>8}{'p99':>8}{'sent/s':>8}"
              f"{'tok/seq':>8}{'exit':>6}{'x mean':>8}{'x batch':>8}")
    lines = [f"{summary['sentences']} sentences", header]
    for name, entry in summary["systems"].items():
        ratio = summary["speedup"].get(name, {})
        lines.append(
            f"{name:<32}{_pct(entry['span']['micro']['f1']):>7}{_pct(entry['string']['micro']['f1']):>8}"
            f"{_cell(entry, 'latency_ms', 'mean'):>9}{_cell(entry, 'latency_ms', 'p50'):>8}"
            f"{_cell(entry, 'latency_ms', 'p95'):>8}{_cell(entry, 'latency_ms', 'p99'):>8}"
            f"{_cell(entry, 'batch', 'sentences_per_s'):>8}{_cell(entry, 'tokens_per_sequence', fmt='{:.2f}'):>8}"
            f"{_cell(entry, 'mean_exit_layer', fmt='{:.2f}'):>6}"
            f"{_cell(ratio, 'mean_latency', fmt='{:.2f}x'):>8}{_cell(ratio, 'batch_throughput', fmt='{:.2f}x'):>8}")
    if summary["reference"]:
        lines.append(f"speed-ups (x) over {summary['reference']}: its latency / the system's; the system's batch "
                     "throughput / its")
    return "\n".join(lines)
