import pytest

from padellm.engine.align import Mention, align
from padellm.engine.dedup import dedup
from padellm.errors import ConfigError
from padellm.types import Entity


def test_repeated_strings_take_distinct_occurrences_and_absent_ones_are_dropped():
    text = "Paris and Lyon and Paris"
    mentions = [Mention("LOC", "Paris", 1, -0.1), Mention("LOC", "Paris", 2, -0.2), Mention("LOC", "Paris", 3, -0.3),
                Mention("LOC", "Lyon", 4, -0.1), Mention("LOC", "Berlin", 5, -0.1), Mention("PER", "", 1, 0.0)]
    entities, dropped = align(text, mentions)
    assert entities == [Entity(0, 5, "LOC"), Entity(10, 14, "LOC"), Entity(19, 24, "LOC")]
    assert [e.score for e in entities] == [-0.1, -0.1, -0.2]
    assert dropped == 3  # a third Paris, Berlin, and an empty mention


def test_same_string_under_two_labels_aligns_to_the_same_span():
    entities, dropped = align("Washington said", [Mention("PER", "Washington", 1, -1.0), Mention("LOC", "Washington", 1, -2.0)])
    assert entities == [Entity(0, 10, "LOC"), Entity(0, 10, "PER")] and dropped == 0


def test_chinese_alignment():
    entities, _ = align("高勇：男，中国国籍", [Mention("NAME", "高勇", 1, 0.0), Mention("CONT", "中国国籍", 1, 0.0)])
    assert entities == [Entity(0, 2, "NAME"), Entity(5, 9, "CONT")]


def test_paper_dedup_keeps_the_most_probable_label_per_string():
    mentions = [Mention("PER", "Washington", 1, -1.0), Mention("LOC", "Washington", 1, -0.5),
                Mention("ORG", "UN", 1, -0.3), Mention("LOC", "Washington", 2, -3.0)]
    kept = dedup(mentions, "paper")
    assert kept == [mentions[1], mentions[2], mentions[3]]  # every LOC Washington stays, PER goes
    assert dedup(mentions, "none") == mentions
    with pytest.raises(ConfigError, match="dedup must be one of none, paper; got 'vote'"):
        dedup(mentions, "vote")
