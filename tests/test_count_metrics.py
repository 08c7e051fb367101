import pytest

from padellm.metrics import count_accuracy, gold_counts
from padellm.types import Entity, Example


def example(text, *entities):
    return Example(text=text, tokens=(), token_spans=(), entities=tuple(Entity(s, e, label) for s, e, label in entities))


def test_gold_counts_count_every_mention_of_each_label():
    examples = [example("Anna and Anna in Paris", (0, 4, "PER"), (9, 13, "PER"), (17, 22, "LOC")), example("none")]
    assert gold_counts(examples, ("LOC", "ORG", "PER")) == [{"LOC": 1, "ORG": 0, "PER": 2},
                                                           {"LOC": 0, "ORG": 0, "PER": 0}]


def test_count_accuracy_splits_exact_under_and_over_per_label():
    gold = [{"LOC": 1, "PER": 2}, {"LOC": 0, "PER": 1}, {"LOC": 2, "PER": 0}]
    stated = [{"LOC": 1, "PER": 1}, {"LOC": 1, "PER": 1}, {"LOC": 0, "PER": 0}]
    result = count_accuracy(stated, gold)
    loc, per = result["per_label"]["LOC"], result["per_label"]["PER"]
    assert (loc["exact"], loc["under"], loc["over"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert loc["errors"] == {"-2": 1, "0": 1, "1": 1} and (loc["stated_mentions"], loc["gold_mentions"]) == (2, 3)
    assert (per["exact"], per["under"], per["over"]) == pytest.approx((2 / 3, 1 / 3, 0))
    everything = result["all"]
    assert everything["pairs"] == 6 and everything["exact"] == pytest.approx(0.5)
    assert everything["errors"] == {"-2": 1, "-1": 1, "0": 3, "1": 1}
    assert (everything["stated_mentions"], everything["gold_mentions"]) == (4, 6)
