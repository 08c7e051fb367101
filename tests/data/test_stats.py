from padellm.data.stats import format_table, nested_pairs, split_stats
from padellm.types import Entity, Example


def test_nested_pairs_count_containment_between_distinct_spans():
    entities = [Entity(0, 9, "DNA"), Entity(0, 4, "protein"), Entity(5, 9, "X"), Entity(20, 25, "Y")]
    assert nested_pairs(entities) == 2
    assert nested_pairs([Entity(0, 4, "A"), Entity(0, 4, "B")]) == 0  # same span, two labels: not nesting
    assert nested_pairs([Entity(0, 4, "A"), Entity(2, 6, "B")]) == 0  # crossing is not nesting


def test_split_stats_and_table():
    examples = [
        Example("EU rejects", ("EU", "rejects"), ((0, 2), (3, 10)), (Entity(0, 2, "ORG"),)),
        Example("UN in Paris", ("UN", "in", "Paris"), ((0, 2), (3, 5), (6, 11)), (Entity(0, 2, "ORG"), Entity(6, 11, "LOC"))),
    ]
    stats = split_stats(examples)
    assert (stats.sentences, stats.tokens, stats.entities, stats.max_sentence_tokens) == (2, 5, 3, 3)
    assert stats.entities_per_label == {"LOC": 1, "ORG": 2}
    table = format_table({"dev": stats, "test": split_stats([])})
    lines = table.splitlines()
    assert lines[0].split() == ["dev", "test"]
    assert lines[1].split() == ["sentences", "2", "0"] and "  ORG" in table
