"""Figures for benchmark results (matplotlib, drawn off-screen)."""

from __future__ import annotations

from pathlib import Path


def plot_latencies(latencies_ms: dict[str, list[float]], path: str | Path, title: str = "", paired: bool = True) -> Path:
    """Per-sentence latency of each decoder: a cumulative distribution (left) and latency against the
    first decoder's on the same sentence (right, one point per sentence, when there are two decoders and
    ``paired``: both lists follow the same sentences)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(latencies_ms)
    pairs = paired and len(names) == 2
    figure, axes = plt.subplots(1, 2 if pairs else 1, figsize=(11 if pairs else 6, 4.2), squeeze=False)
    cdf = axes[0][0]
    for name in names:
        values = np.sort(np.asarray(latencies_ms[name]))
        cdf.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                 label=f"{name} (mean {values.mean():.0f} ms, p95 {np.percentile(values, 95):.0f} ms)")
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
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
