import pytest

from padellm.data.bio import (
    TagError,
    detect_joiner,
    detect_scheme,
    entities_to_token_spans,
    join_tokens,
    spans_to_tags,
    split_tag,
    tags_to_spans,
    tokenize,
    tokens_to_entities,
)
from padellm.types import Entity


@pytest.mark.parametrize(
    "tags,spans",
    [
        (["O", "O"], []),
        (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
        (["B-PER", "B-PER", "I-PER"], [(0, 1, "PER"), (1, 3, "PER")]),
        (["B-PER", "I-ORG"], None),  # I- of another type opens nothing in strict IOB2
        (["I-PER"], None),
        (["B-MISC", "I-MISC", "I-MISC"], [(0, 3, "MISC")]),
        (["B-A-B", "I-A-B"], [(0, 2, "A-B")]),  # labels may contain dashes
    ],
)
def test_iob2_strict(tags, spans):
    if spans is None:
        with pytest.raises(TagError):
            tags_to_spans(tags, "iob2")
    else:
        assert tags_to_spans(tags, "iob2").spans == spans


def test_strict_error_says_what_and_where():
    with pytest.raises(TagError) as info:
        tags_to_spans(["O", "O", "I-LOC"], "iob2")
    assert info.value.index == 2 and "I-LOC after O" in info.value.reason


def test_lenient_iob2_reads_opening_i_as_b_and_reports_it():
    decoded = tags_to_spans(["O", "I-LOC", "I-LOC", "I-PER"], "iob2", strict=False)
    assert decoded.spans == [(1, 3, "LOC"), (3, 4, "PER")]
    assert decoded.repaired == [1, 3]


@pytest.mark.parametrize(
    "tags,spans",
    [
        (["I-PER", "I-PER", "O", "I-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
        (["I-PER", "B-PER", "I-PER"], [(0, 1, "PER"), (1, 3, "PER")]),
        (["I-ORG", "I-LOC"], [(0, 1, "ORG"), (1, 2, "LOC")]),
    ],
)
def test_iob1_is_normalised(tags, spans):
    decoded = tags_to_spans(tags, "iob1")
    assert decoded.spans == spans and decoded.repaired == []
    # Normalised output is plain IOB2.
    assert tags_to_spans(spans_to_tags(len(tags), spans), "iob2").spans == spans


@pytest.mark.parametrize(
    "sentences,scheme",
    [
        ([["B-PER", "I-PER", "O"]], "iob2"),
        ([["I-PER", "I-PER", "O"], ["I-LOC", "B-LOC"]], "iob1"),
        ([["O"]], "iob2"),
        ([["I-PER"], ["O", "B-LOC"]], "iob2"),  # a B- opening a chunk proves IOB2 (the I- is then an error)
    ],
)
def test_detect_scheme(sentences, scheme):
    assert detect_scheme(sentences) == scheme


@pytest.mark.parametrize("tag", ["X-PER", "B-", "b-PER", "BPER", ""])
def test_split_tag_rejects_non_bio(tag):
    with pytest.raises(ValueError, match="not a BIO tag"):
        split_tag(tag)


def test_spans_to_tags_rejects_overlap_and_out_of_range():
    assert spans_to_tags(3, [(0, 2, "PER")]) == ["B-PER", "I-PER", "O"]
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags(3, [(0, 2, "PER"), (1, 3, "LOC")])
    with pytest.raises(ValueError, match="out of range"):
        spans_to_tags(3, [(2, 4, "PER")])


def test_join_tokens_and_offsets_round_trip():
    text, spans = join_tokens(["EU", "rejects", "German"], " ")
    assert text == "EU rejects German" and spans == [(0, 2), (3, 10), (11, 17)]
    entities = tokens_to_entities(spans, [(0, 1, "ORG"), (2, 3, "MISC")])
    assert entities == [Entity(0, 2, "ORG"), Entity(11, 17, "MISC")]
    assert entities_to_token_spans(spans, entities) == [(0, 1, "ORG"), (2, 3, "MISC")]
    with pytest.raises(ValueError, match="token boundaries"):
        entities_to_token_spans(spans, [Entity(1, 2, "ORG")])
    text, spans = join_tokens(["高", "勇"], "")
    assert text == "高勇" and spans == [(0, 1), (1, 2)]


def test_detect_joiner_by_script():
    assert detect_joiner(["高", "勇", "：", "男"]) == ""
    assert detect_joiner(["EU", "rejects"]) == " "
    assert detect_joiner(["高", "勇", "MBA", "，"]) == ""  # Latin runs inside Chinese text stay unspaced
    assert detect_joiner([]) == " "


def test_tokenize_raw_text():
    tokens, spans = tokenize("U.N. official Ekeus heads for Baghdad.")
    assert tokens == ["U", ".", "N", ".", "official", "Ekeus", "heads", "for", "Baghdad", "."]
    assert all("U.N. official Ekeus heads for Baghdad."[s:e] == t for t, (s, e) in zip(tokens, spans))
    tokens, spans = tokenize("高勇在MBA班")
    assert tokens == ["高", "勇", "在", "MBA", "班"] and spans[3] == (3, 6)
