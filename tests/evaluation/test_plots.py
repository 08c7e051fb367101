"""The figures are checked for what they draw (axes, labels, series and their data), not only for being PNGs."""

import numpy as np
import pytest

from padellm.evaluation import plots


@pytest.fixture
def drawn(monkeypatch):
    """Every figure a plot function saves, kept open for inspection (the PNG is still written)."""
    figures = []
    save = plots._save

    def keep(figure, path, title):
        import matplotlib.pyplot as plt

        figures.append(figure)

        close, plt.close = plt.close, lambda *_: None
        try:
            return save(figure, path, title)
        finally:
            plt.close = close

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def legend(axis) -> list[str]:
    return [text.get_text() for text in axis.get_legend().get_texts()]


@pytest.mark.parametrize("decoders", [1, 2])
def test_latency_plot_draws_each_decoders_distribution_and_the_paired_points(tmp_path, drawn, decoders):
    latencies = {"parallel": [100.0, 150.0, 220.0], "autoregressive": [180.0, 400.0, 260.0]}
    latencies = dict(list(latencies.items())[:decoders])
    path = plots.plot_latencies(latencies, tmp_path / "sub" / "latency.png", title="test")
    assert path.read_bytes().startswith(b"\x89PNG")
    (figure,) = drawn
    axes = figure.get_axes()
    assert len(axes) == decoders  # the scatter of paired sentences only with two decoders
    cdf = axes[0]
    assert cdf.get_xlabel() == "latency per sentence (ms)" and cdf.get_ylabel() == "fraction of sentences"
    assert len(cdf.get_lines()) == decoders
    parallel = cdf.get_lines()[0]
    assert list(parallel.get_xdata()) == [100.0, 150.0, 220.0]  # sorted latencies
    assert list(parallel.get_ydata()) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert legend(cdf)[0] == "parallel (mean 157 ms, p95 213 ms)"
    assert figure._suptitle.get_text() == "test"
    if decoders == 2:
        scatter = axes[1]
        assert scatter.get_xlabel() == "autoregressive (ms, log scale)"
        assert scatter.get_ylabel() == "parallel (ms, log scale)"
        points = scatter.collections[0].get_offsets()
        assert np.asarray(points).tolist() == [[180.0, 100.0], [400.0, 150.0], [260.0, 220.0]]  # one per sentence
        assert legend(cdf)[1] == "autoregressive (mean 280 ms, p95 386 ms)"


def test_a_latency_range_over_twenty_fold_is_drawn_on_a_log_axis(tmp_path, drawn):
    plots.plot_latencies({"fastner": [1.0, 2.0], "parallel": [100.0, 120.0]}, tmp_path / "l.png")
    assert drawn[0].get_axes()[0].get_xscale() == "log"
    plots.plot_latencies({"a": [10.0, 20.0], "b": [30.0, 40.0]}, tmp_path / "m.png")
    assert drawn[1].get_axes()[0].get_xscale() == "linear"


SUMMARY = {"systems": {
    "parallel": {"kind": "llm", "latency_ms": {"mean": 80.0, "p50": 70.0, "p95": 150.0},
                 "span": {"micro": {"f1": 0.9}}, "stage_mean_ms": {"count": 30.0, "branches": 45.0, "align": 5.0}},
    "autoregressive": {"kind": "llm", "latency_ms": {"mean": 160.0, "p50": 150.0, "p95": 300.0},
                       "span": {"micro": {"f1": 0.92}}, "stage_mean_ms": {"generate": 155.0, "align": 5.0}},
    "tagger": {"kind": "tagger", "latency_ms": {"mean": 10.0, "p50": 9.0, "p95": 14.0},
               "span": {"micro": {"f1": 0.88}}}}}


def test_f1_latency_plot_draws_one_point_and_one_p50_to_p95_bar_per_system(tmp_path, drawn):
    plots.plot_f1_latency(SUMMARY, tmp_path / "f1.png")
    (axis,) = drawn[0].get_axes()
    assert axis.get_ylabel() == "span F1 (%)" and axis.get_xscale() == "log"
    assert legend(axis) == ["parallel", "autoregressive", "tagger"]
    assert [np.asarray(c.get_offsets()).tolist() for c in axis.collections] == [[[80.0, 90.0]], [[160.0, 92.0]],
                                                                             [[10.0, 88.0]]]
    assert [(list(line.get_xdata()), list(line.get_ydata())) for line in axis.get_lines()] == [
        ([70.0, 150.0], [90.0, 90.0]), ([150.0, 300.0], [92.0, 92.0]), ([9.0, 14.0], [88.0, 88.0])]


def test_stage_plot_stacks_each_llm_systems_stages(tmp_path, drawn):
    plots.plot_stages(SUMMARY, tmp_path / "stages.png")
    (axis,) = drawn[0].get_axes()
    assert [label.get_text() for label in axis.get_yticklabels()] == ["parallel", "autoregressive"]  # no tagger
    bars = [(round(p.get_x(), 6), round(p.get_width(), 6), round(p.get_y() + p.get_height() / 2)) for p in axis.patches]
    # (left, width, row): stages in the order they first appear, each system's stacked from 0
    assert bars == [(0, 30, 0), (30, 45, 0), (75, 5, 0), (0, 5, 1), (5, 155, 1)]
    assert legend(axis) == ["count", "branches", "align", "generate"]


def test_exit_tradeoff_plot_draws_f1_per_exit_and_each_criterions_curve(tmp_path, drawn):
    runs = {"full model": {"seconds": 2.0, "f1": 90.0}, "entropy 0.1": {"seconds": 1.0, "f1": 88.0},
            "entropy 0.3": {"seconds": 0.5, "f1": 80.0}, "patience 1": {"seconds": 1.6, "f1": 89.0}}
    results = {"fastner": {"f1_per_exit": [70.0, 85.0, 90.0], "batch_sizes": {"1": runs, "8": runs}}}
    plots.plot_exit_tradeoff(results, tmp_path / "exits.png")
    axes = drawn[0].get_axes()
    assert len(axes) == 3  # per-exit F1, then one panel per batch size
    (per_exit,) = axes[0].get_lines()
    assert list(per_exit.get_xdata()) == [1, 2, 3] and list(per_exit.get_ydata()) == [70.0, 85.0, 90.0]
    assert [axis.get_title() for axis in axes[1:]] == [
        f"batch size {n} (dotted: full model - 1 F1; dashed: 2x)" for n in (1, 8)]
    curves = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes[1].get_lines()
              if not line.get_label().startswith("_")}
    assert curves == {"fastner: entropy": ([2.0, 4.0], [88.0, 80.0]), "fastner: patience": ([1.25], [89.0])}
