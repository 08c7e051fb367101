import pytest
import torch

from padellm.baselines.spans import (crossing, decode_spans, enumerate_spans, gold_spans, span_mask, to_entities)
from padellm.types import Entity, Example


def example(words, entities):
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return Example(" ".join(words), tuple(words), tuple(spans), tuple(entities))


def test_enumerate_spans_respects_the_width():
    assert enumerate_spans(3, 2) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]
    assert len(enumerate_spans(5, 10)) == 15 and enumerate_spans(0, 3) == []
    mask = span_mask(torch.tensor([3, 1]), 3, 2)
    assert mask[0].nonzero().tolist() == [[0, 0], [0, 1], [1, 1], [1, 2], [2, 2]]
    assert mask[1].nonzero().tolist() == [[0, 0]]


def test_gold_spans_from_character_offsets():
    ex = example(["New", "York", "Times", "x"], [Entity(0, 8, "LOC"), Entity(0, 14, "ORG"), Entity(1, 8, "PER"),
                                                 Entity(15, 16, "MISC")])
    gold = gold_spans(ex, {"LOC": 1, "MISC": 2, "ORG": 3, "PER": 4}, max_width=2)
    assert gold.spans == {(0, 1): 1, (3, 3): 2}
    assert gold.unaligned == 1 and gold.too_wide == 1  # "ew York" starts inside a word; 3 words > 2
    assert gold_spans(ex, {"LOC": 1, "MISC": 2, "ORG": 3, "PER": 4}, 3, num_words=3).spans == {(0, 1): 1, (0, 2): 3}


def table(width, scores):
    """[width, width, 3] distributions: (i, j) -> (label, probability); everything else "no entity"."""
    probabilities = torch.zeros(width, width, 3)
    probabilities[..., 0] = 1
    for (i, j), (label, p) in scores.items():
        probabilities[i, j] = torch.tensor([1 - p, 0, 0])
        probabilities[i, j, label] = p
    return probabilities


SCORES = {(0, 2): (1, 0.9), (1, 1): (2, 0.8), (2, 3): (1, 0.7), (3, 3): (2, 0.6), (0, 0): (2, 0.3)}


def test_flat_decoding_keeps_the_best_non_overlapping_spans():
    # (0,2) wins; (1,1), (2,3) and (0,0) overlap it; (3,3) is free. p=0.3 < 0.7 "no entity": not a candidate.
    assert decode_spans(table(4, SCORES), 4, 4, nested=False) == [(0, 2, 1, pytest.approx(0.9)),
                                                                  (3, 3, 2, pytest.approx(0.6))]


def test_nested_decoding_allows_nesting_but_not_crossing():
    # (1,1) nests inside (0,2); (2,3) crosses (0,2); (3,3) is free.
    assert [s[:3] for s in decode_spans(table(4, SCORES), 4, 4, nested=True)] == [(0, 2, 1), (1, 1, 2), (3, 3, 2)]
    assert crossing((0, 2), (2, 3)) and not crossing((0, 2), (1, 1)) and not crossing((0, 1), (2, 3))


def test_decoding_ignores_padding_and_too_wide_spans():
    # Only words 0-1 are real: (0,2), (2,3) and (3,3) reach into padding.
    assert [s[:3] for s in decode_spans(table(4, SCORES), 2, 4, nested=True)] == [(1, 1, 2)]
    assert [s[:3] for s in decode_spans(table(4, SCORES), 4, 2, nested=False)] == [(1, 1, 2), (2, 3, 1)]


def test_to_entities_uses_the_word_offsets():
    ex = example(["New", "York", "is", "big"], [])
    assert to_entities([(0, 1, 2, 0.9)], ex.token_spans, ("LOC", "ORG")) == [Entity(0, 8, "ORG")]
