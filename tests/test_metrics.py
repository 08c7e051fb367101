import random

import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from padellm.data.bio import entities_to_token_spans, spans_to_tags
from padellm.data.datasets import load_dataset
from padellm.errors import ConfigError
from padellm.metrics import PRF, mention_rank, recall_by_rank, score
from padellm.types import Entity

E = Entity


@pytest.mark.parametrize(
    "gold,pred,tp,fp,fn",
    [
        ([E(0, 2, "ORG")], [E(0, 2, "ORG")], 1, 0, 0),
        ([E(0, 2, "ORG")], [E(0, 2, "LOC")], 0, 1, 1),  # wrong label
        ([E(0, 2, "ORG")], [E(0, 3, "ORG")], 0, 1, 1),  # wrong boundary
        ([E(0, 2, "ORG")], [], 0, 0, 1),
        ([], [E(0, 2, "ORG")], 0, 1, 0),
        ([E(0, 9, "DNA"), E(0, 4, "protein")], [E(0, 4, "protein")], 1, 0, 1),  # nested
        ([E(0, 2, "ORG")], [E(0, 2, "ORG"), E(0, 2, "ORG", score=-1.0)], 1, 0, 0),  # duplicates count once
    ],
)
def test_span_matching(gold, pred, tp, fp, fn):
    micro = score(["EU rejects"], [gold], [pred]).micro
    assert (micro.tp, micro.fp, micro.fn) == (tp, fp, fn)


def test_scores_per_label_and_micro():
    gold = [[E(0, 2, "ORG"), E(3, 5, "PER")], [E(0, 4, "LOC")]]
    pred = [[E(0, 2, "ORG"), E(3, 5, "LOC")], [E(0, 4, "LOC")]]
    result = score(["EU Al x", "Rome"], gold, pred)
    assert result.per_label == {"LOC": PRF(1, 1, 0), "ORG": PRF(1, 0, 0), "PER": PRF(0, 0, 1)}
    assert result.micro == PRF(2, 1, 1)
    assert result.micro.precision == pytest.approx(2 / 3) and result.micro.recall == pytest.approx(2 / 3)
    assert result.micro.f1 == pytest.approx(2 / 3)
    assert result.macro_f1 == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert result.to_dict()["micro"]["support"] == 3
    assert "| micro | 66.67 | 66.67 | 66.67 | 3 |" in result.table()


def test_mention_ranks():
    assert [mention_rank(1, 1), mention_rank(1, 3), mention_rank(2, 3), mention_rank(3, 3), mention_rank(7, 9)] == [
        "only", "first of several", "second", "third or later", "third or later"]


def test_recall_by_rank_buckets_each_labels_mentions_in_text_order():
    # "Rome and Paris and Oslo , Bob": LOC x3 (listed out of order), PER x1
    gold = [[E(19, 23, "LOC"), E(0, 4, "LOC"), E(9, 14, "LOC"), E(26, 29, "PER")], [E(0, 2, "ORG"), E(3, 5, "ORG")]]
    pred = [[E(0, 4, "LOC"), E(26, 29, "PER"), E(19, 23, "LOC"), E(9, 13, "LOC")],  # the second LOC's span is wrong
            [E(3, 5, "ORG"), E(0, 2, "LOC")]]  # the first ORG under another label
    ranks = recall_by_rank(gold, pred)
    assert list(ranks) == ["only", "first of several", "second", "third or later"]
    assert ranks["only"] == {"gold": 1, "found": 1, "recall": 1.0}
    assert ranks["first of several"] == {"gold": 2, "found": 1, "recall": 0.5}
    assert ranks["second"] == {"gold": 2, "found": 1, "recall": 0.5}
    assert ranks["third or later"] == {"gold": 1, "found": 1, "recall": 1.0}
    assert recall_by_rank([[E(0, 2, "ORG")]], [[]]) == {"only": {"gold": 1, "found": 0, "recall": 0.0}}
    with pytest.raises(ConfigError, match="one entry per sentence; got 1 and 0"):
        recall_by_rank([[]], [])


def test_empty_scores_are_zero_not_nan():
    assert score([], [], []).micro.f1 == 0.0 and score(["a"], [[]], [[]]).macro_f1 == 0.0


def test_string_matcher_is_the_papers_set_of_label_and_mention():
    text = "Paris and Paris"
    gold = [[E(0, 5, "LOC"), E(10, 15, "LOC")]]
    # The paper's variant: one (LOC, "Paris") in a set; any occurrence counts.
    assert score([text], gold, [[E(10, 15, "LOC")]], matcher="string").micro == PRF(1, 0, 0)
    assert score([text], gold, [[E(10, 15, "LOC")]], matcher="span").micro == PRF(1, 0, 1)
    assert score([text], gold, [[E(0, 5, "ORG")]], matcher="string").micro == PRF(0, 1, 1)


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="matcher must be one of span, string; got 'tokens'"):
        score([], [], [], matcher="tokens")
    with pytest.raises(ConfigError, match="got 1, 1, 0"):
        score(["a"], [[]], [])


def _perturb(entities, rng):
    """Realistic prediction errors: drop, relabel, shift a boundary, or keep."""
    out = []
    for e in entities:
        roll = rng.random()
        if roll < 0.1:
            continue
        if roll < 0.2:
            out.append(E(e.start, e.end, rng.choice(["PER", "ORG", "LOC", "MISC"])))
        elif roll < 0.3:
            out.append(E(e.start, e.end + 1, e.label))  # not on a token boundary: dropped below
        else:
            out.append(e)
    return out


def test_flat_scores_equal_seqeval_strict_iob2(shared_data):
    rng = random.Random(13)
    examples = load_dataset("conll2003", ["dev"]).split("dev")[:800]
    gold_tags, pred_tags, predictions = [], [], []
    for ex in examples:
        starts = {s for s, _ in ex.token_spans}
        ends = {e for _, e in ex.token_spans}
        pred = [e for e in _perturb(ex.entities, rng) if e.start in starts and e.end in ends]
        # Also add spurious single-token entities where nothing is predicted.
        taken = {i for s, e, _ in entities_to_token_spans(ex.token_spans, pred) for i in range(s, e)}
        free = [i for i in range(len(ex.tokens)) if i not in taken]
        if free and rng.random() < 0.2:
            i = rng.choice(free)
            pred.append(E(*ex.token_spans[i], "MISC"))
        predictions.append(pred)
        gold_tags.append(spans_to_tags(len(ex.tokens), entities_to_token_spans(ex.token_spans, ex.entities)))
        pred_tags.append(spans_to_tags(len(ex.tokens), entities_to_token_spans(ex.token_spans, pred)))
    ours = score([ex.text for ex in examples], [ex.entities for ex in examples], predictions)
    theirs = classification_report(gold_tags, pred_tags, mode="strict", scheme=IOB2, output_dict=True)
    assert 0.5 < ours.micro.f1 < 0.95  # the perturbation really produces errors of every kind
    assert ours.micro.precision == pytest.approx(theirs["micro avg"]["precision"], abs=1e-12)
    assert ours.micro.recall == pytest.approx(theirs["micro avg"]["recall"], abs=1e-12)
    assert ours.micro.f1 == pytest.approx(theirs["micro avg"]["f1-score"], abs=1e-12)
    for label, prf in ours.per_label.items():
        assert prf.f1 == pytest.approx(theirs[label]["f1-score"], abs=1e-12), label
        assert prf.support == theirs[label]["support"], label
