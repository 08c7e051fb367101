import pytest

from padellm.evaluation.plots import plot_latencies


@pytest.mark.parametrize("decoders", [1, 2])
def test_latency_plot_is_a_png(tmp_path, decoders):
    latencies = {"parallel": [100.0, 150.0, 220.0], "autoregressive": [180.0, 400.0, 260.0]}
    latencies = dict(list(latencies.items())[:decoders])
    path = plot_latencies(latencies, tmp_path / "sub" / "latency.png", title="test")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000
