import pytest

from padellm.types import Entity, Example


def test_entity_is_half_open_and_ignores_score_in_equality():
    a = Entity(0, 2, "LOC", score=-0.5)
    assert a == Entity(0, 2, "LOC")
    assert hash(a) == hash(Entity(0, 2, "LOC", score=-3.0))
    assert a.mention("EU rejects") == "EU"


@pytest.mark.parametrize(
    "start,end,label,message",
    [(2, 2, "X", "start < end"), (-1, 2, "X", "start < end"), (0, 1, "", "non-empty"), (0.0, 1, "X", "int")],
)
def test_entity_rejects_bad_values_naming_them(start, end, label, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Entity(start, end, label)


def test_example_checks_tokens_against_text_and_sorts_entities():
    ex = Example("EU rejects", ("EU", "rejects"), ((0, 2), (3, 10)), (Entity(3, 10, "X"), Entity(0, 2, "ORG")))
    assert ex.entities == (Entity(0, 2, "ORG"), Entity(3, 10, "X"))
    assert ex.mentions() == [("ORG", "EU"), ("X", "rejects")]
    with pytest.raises(ValueError, match="does not match"):
        Example("EU rejects", ("EU", "reject"), ((0, 2), (3, 10)))
    with pytest.raises(ValueError, match="ends past the text"):
        Example("EU", ("EU",), ((0, 2),), (Entity(0, 3, "ORG"),))
