import math

import pytest
import torch

from padellm.baselines.exit_criteria import (ExitConfig, Patience, leave_now, normalised_entropy, sentence_confidence,
                                          sentence_entropy)
from padellm.errors import ConfigError


def batch():
    """Two sentences of 2 words, 3 classes. Sentence 0: every span certain. Sentence 1: one span uniform."""
    probabilities = torch.zeros(2, 2, 2, 3)
    probabilities[..., 0] = 1.0
    probabilities[1, 0, 1] = torch.tensor([1 / 3, 1 / 3, 1 / 3])
    mask = torch.tensor([[True, True], [False, True]]).expand(2, 2, 2)
    return probabilities, mask


def test_entropy_and_confidence_pooling():
    probabilities, mask = batch()
    assert normalised_entropy(torch.tensor([1 / 3, 1 / 3, 1 / 3])).item() == pytest.approx(1.0)
    assert sentence_entropy(probabilities, mask, "max").tolist() == pytest.approx([0.0, 1.0])
    assert sentence_entropy(probabilities, mask, "mean").tolist() == pytest.approx([0.0, 1 / 3])
    assert sentence_confidence(probabilities, mask, "max").tolist() == pytest.approx([1.0, 1 / 3])
    assert sentence_confidence(probabilities, mask, "mean").tolist() == pytest.approx([1.0, (2 + 1 / 3) / 3])


@pytest.mark.parametrize("config,expected", [
    (ExitConfig("entropy", 0.5, "max"), [True, False]),
    (ExitConfig("entropy", 0.5, "mean"), [True, True]),      # mean entropy 1/3
    (ExitConfig("entropy", 0.3, "mean"), [True, False]),
    (ExitConfig("confidence", 0.9, "max"), [True, False]),
    (ExitConfig("confidence", 0.75, "mean"), [True, True]),  # mean confidence 7/9
    (ExitConfig("none"), [False, False]),
])
def test_each_criterion_exits_where_it_should(config, expected):
    probabilities, mask = batch()
    assert leave_now(config, probabilities, mask).tolist() == expected


def test_padding_spans_never_decide():
    probabilities, mask = batch()
    probabilities[0, 1, 0] = torch.tensor([1 / 3, 1 / 3, 1 / 3])  # below the diagonal: not a span
    assert sentence_entropy(probabilities, mask, "max")[0].item() == pytest.approx(0.0)


def test_patience_counts_unchanged_exits():
    patience = Patience(2, patience=2)
    assert [patience.update(0, s) for s in ([(0, 0, 1)], [(0, 0, 1)], [(0, 0, 1)])] == [False, False, True]
    assert [patience.update(1, s) for s in ([], [(1, 1, 2)], [(1, 1, 2)], [])] == [False, False, False, False]


def test_exit_config_is_validated():
    with pytest.raises(ConfigError) as caught:
        ExitConfig("entropic", 2.0, "median", patience=0)
    assert len(caught.value.problems) == 3
    with pytest.raises(ConfigError, match="threshold must be in"):
        ExitConfig("confidence", 1.5)
    assert ExitConfig("entropy", 0.1, "mean").name == "entropy (mean) 0.1"
    assert ExitConfig("patience", patience=1, min_layer=2).name == "patience 1 from exit 2"
    assert math.isfinite(ExitConfig().threshold)
