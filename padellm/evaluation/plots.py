"""Figures for benchmark results (matplotlib, drawn off-screen)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path, title: str) -> Path:
    """Title, tight layout, PNG at 120 dpi (parent folders created); the figure is closed."""
    import matplotlib.pyplot as plt

    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_latencies(latencies_ms: dict[str, list[float]], path: str | Path, title: str = "", paired: bool = True) -> Path:
    """Per-sentence latency of each decoder: a cumulative distribution (left) and latency against the
    first decoder's on the same sentence (right, one point per sentence, when there are two decoders and
    ``paired``: both lists follow the same sentences)."""
    import numpy as np

    plt = _pyplot()
    names = list(latencies_ms)
    pairs = paired and len(names) == 2
    figure, axes = plt.subplots(1, 2 if pairs else 1, figsize=(11 if pairs else 6, 4.2), squeeze=False)
    cdf = axes[0][0]
    for name in names:
        values = np.sort(np.asarray(latencies_ms[name]))
        cdf.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                 label=f"{name} (mean {values.mean():.0f} ms, p95 {np.percentile(values, 95):.0f} ms)")
    if max(max(v) for v in latencies_ms.values()) > 20 * min(min(v) for v in latencies_ms.values()):
        cdf.set_xscale("log")  # systems tens of times apart (FastNER next to an LLM): both stay readable
    cdf.set_xlabel("latency per sentence (ms)")
    cdf.set_ylabel("fraction of sentences")
    cdf.grid(alpha=0.3)
    cdf.legend(loc="lower right", fontsize=8)
    if pairs:
        scatter = axes[0][1]
        first, second = (np.asarray(latencies_ms[n]) for n in names)
        scatter.scatter(second, first, s=8, alpha=0.5)
        low = float(min(first.min(), second.min())) * 0.9
        top = float(max(first.max(), second.max())) * 1.1
        scatter.plot([low, top], [low, top], color="grey", linewidth=1, label="equal latency")
        scatter.set_xscale("log")
        scatter.set_yscale("log")
        scatter.set_xlabel(f"{names[1]} (ms, log scale)")
        scatter.set_ylabel(f"{names[0]} (ms, log scale)")
        scatter.set_xlim(low, top)
        scatter.set_ylim(low, top)
        scatter.grid(alpha=0.3)
        scatter.legend(loc="upper left", fontsize=8)
        scatter.set_title("each point: one sentence", fontsize=9)
    return _save(figure, path, title)


def plot_exit_tradeoff(results: dict, path: str | Path, title: str = "") -> Path:
    """FastNER benchmark results (``eval/benchmark_fastner.py``): F1 of every exit (left), then F1 against
    speed-up for each criterion, one panel per batch size."""
    plt = _pyplot()

    sizes = sorted({int(b) for r in results.values() for b in r["batch_sizes"]})
    figure, axes = plt.subplots(1, len(sizes) + 1, figsize=(5 * (len(sizes) + 1), 4.2), squeeze=False)
    layers_axis = axes[0][0]
    for name, result in results.items():
        f1 = result["f1_per_exit"]
        layers_axis.plot(range(1, len(f1) + 1), f1, marker="o", label=name)
    layers_axis.set_xlabel("exit layer (no early exit)")
    layers_axis.set_ylabel("span F1 (%)")
    layers_axis.grid(alpha=0.3)
    layers_axis.legend(fontsize=8)
    for axis, size in zip(axes[0][1:], sizes):
        for name, result in results.items():
            runs = result["batch_sizes"][str(size)]
            full = runs["full model"]
            for criterion, marker in (("entropy", "o"), ("confidence", "s"), ("patience", "^"), ("stable", "v"),
                                      ("gate", "D"), ("budget", "*")):
                points = sorted((full["seconds"] / p["seconds"], p["f1"]) for setting, p in runs.items()
                                if setting.startswith(criterion))
                if points:
                    axis.plot(*zip(*points), marker=marker, linewidth=1, label=f"{name}: {criterion}")
            axis.scatter([1.0], [full["f1"]], color="black", zorder=3)
            axis.axhline(full["f1"] - 1, color="grey", linestyle=":", linewidth=1)
        axis.axvline(2.0, color="grey", linestyle="--", linewidth=1)
        axis.set_xlabel("speed-up over the full model (wall time)")
        axis.set_ylabel("span F1 (%)")
        axis.set_title(f"batch size {size} (dotted: full model - 1 F1; dashed: 2x)", fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    return _save(figure, path, title)


def plot_f1_latency(summary: dict, path: str | Path, title: str = "") -> Path:
    """``padellm eval`` results: span F1 against mean single-request latency, one point per system; the
    horizontal bar spans its p50 to p95 latency."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    markers = {"llm": "o", "fastner": "^", "tagger": "s"}
    for name, entry in summary["systems"].items():
        latency, f1 = entry["latency_ms"], 100 * entry["span"]["micro"]["f1"]
        axis.plot([latency["p50"], latency["p95"]], [f1, f1], color="grey", linewidth=1, alpha=0.6)
        axis.scatter([latency["mean"]], [f1], marker=markers.get(entry["kind"], "o"), s=60, zorder=3, label=name)
    axis.set_xscale("log")
    axis.set_xlabel("mean latency per sentence, one request at a time (ms, log scale; bar: p50 to p95)")
    axis.set_ylabel("span F1 (%)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8, loc="best")
    return _save(figure, path, title)


def plot_stages(summary: dict, path: str | Path, title: str = "") -> Path:
    """Mean time per decoding stage of each LLM system (stacked bars, ms per sentence)."""
    plt = _pyplot()
    entries = {name: e["stage_mean_ms"] for name, e in summary["systems"].items() if e.get("stage_mean_ms")}
    figure, axis = plt.subplots(figsize=(8, 1.2 + 0.8 * len(entries)))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    stages = list(dict.fromkeys(stage for stage_ms in entries.values() for stage in stage_ms))
    longest = max(sum(stage_ms.values()) for stage_ms in entries.values())
    labelled: set[str] = set()
    for row, (name, stage_ms) in enumerate(entries.items()):
        left = 0.0
        for index, stage in enumerate(stages):
            width = stage_ms.get(stage, 0.0)
            if not width:
                continue
            axis.barh(row, width, left=left, color=colours[index % len(colours)],
                      label=None if stage in labelled else stage)
            labelled.add(stage)
            if width > 0.08 * longest:
                axis.text(left + width / 2, row, f"{width:.0f}", ha="center", va="center", fontsize=8)
            left += width
    axis.set_yticks(range(len(entries)), list(entries))
    axis.invert_yaxis()
    axis.set_xlabel("mean time per sentence, one request at a time (ms)")
    axis.grid(alpha=0.3, axis="x")
    axis.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(stages), frameon=False)
    return _save(figure, path, title)
