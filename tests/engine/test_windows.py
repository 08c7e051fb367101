import re

import pytest

from padellm.engine.decoding import DecodeResult, run_steps
from padellm.engine.windows import Window, merge_windows, plan_windows, sentence_spans, split_long, window_steps
from padellm.errors import InvalidRequestError
from padellm.types import Entity

SENTENCES = ["Peter met Anna in Paris. ", "Then Anna flew to Rome! ", "Did Peter stay in Berlin? ",
             "He did.\n", "Bob and Carla went to Oslo. "]
DOCUMENT = "".join(SENTENCES * 3)


def names(text: str) -> list[Entity]:
    """A scripted model: every capitalised word but the first of a sentence is a PER."""
    return [Entity(m.start(), m.end(), "PER") for m in re.finditer(r"(?<=[a-z] )[A-Z][a-z]+", text)]


def scripted(texts):
    return DecodeResult([names(t) for t in texts], counts=[{"LOC": 0, "PER": len(names(t))} for t in texts])
    yield  # a decoder that needs no engine call


def fits_chars(limit):
    return lambda text: len(text) <= limit


def test_sentences_tile_the_text_and_end_at_boundaries():
    spans = sentence_spans(DOCUMENT)
    assert "".join(DOCUMENT[a:b] for a, b in spans) == DOCUMENT
    assert [DOCUMENT[a:b] for a, b in spans][:5] == SENTENCES
    assert sentence_spans("张三在北京。李四在上海。") == [(0, 6), (6, 12)]
    assert sentence_spans("") == [] and sentence_spans("no end") == [(0, 6)]


@pytest.mark.parametrize("text,sentences", [
    ("Fed Cup , as conducted at the U.S. Open on Saturday :", 1),  # a CoNLL-2003 dev sentence, once cut at U.S.
    ("Mr. Smith met Dr. Jones in St. Louis on Sept. 5 .", 1),
    ("J. Smith won . He said so .", 2),
    ("6. Ludwig 1:25", 1),  # a results table's rank (a CoNLL-2003 dev line)
    ('saying : " Why go ? "', 1),  # a closing quote is no sentence of its own (a CoNLL-2003 dev line)
    ("The score was 3-1 in the end . the crowd left .", 1),  # lower case after the period: the sentence goes on
    ("\"It is over.\" Then it rained.", 2),
    ("He moved to the U.S.\nThen he left .", 2),  # a line break always ends one
])
def test_abbreviations_and_lower_case_continuations_do_not_end_a_sentence(text, sentences):
    assert len(sentence_spans(text)) == sentences, [text[a:b] for a, b in sentence_spans(text)]


def test_windows_fit_cover_the_text_overlap_and_own_it_exactly_once():
    windows = plan_windows(DOCUMENT, fits_chars(80))
    assert len(windows) > 3 and all(w.end - w.start <= 80 for w in windows)
    assert windows[0].start == 0 and windows[-1].end == len(DOCUMENT)
    for before, after in zip(windows, windows[1:]):
        assert after.start < before.end  # they overlap
        assert before.own_end == after.own_start and before.start <= before.own_start < before.own_end <= before.end
    assert windows[0].own_start == 0 and windows[-1].own_end == len(DOCUMENT)
    assert plan_windows("short", fits_chars(80)) == [Window(0, 5, 0, 5)]


def test_within_groups_whole_sentences_up_to_a_softer_bound_and_never_cuts_one():
    text = "Ann met Bo. " + "A much longer sentence that is past the soft bound on its own. " + "Cy left."
    windows = plan_windows(text, fits_chars(1_000), within=fits_chars(20))  # all of it fits the engine
    assert [text[w.start : w.end] for w in windows] == [
        "Ann met Bo. ", "A much longer sentence that is past the soft bound on its own. ", "Cy left."]
    assert plan_windows("Ann met Bo. Cy left.", fits_chars(1_000), within=fits_chars(40)) == [Window(0, 20, 0, 20)]


def test_a_sentence_too_long_is_cut_at_spaces_or_anywhere_when_it_has_none():
    text = "word " * 50
    pieces = split_long(text, 0, len(text), fits_chars(23))
    assert "".join(text[a:b] for a, b in pieces) == text and all(b - a <= 23 for a, b in pieces)
    assert all(text[b - 1] == " " for a, b in pieces)  # cut after a space
    solid = "北" * 100
    pieces = split_long(solid, 0, 100, fits_chars(30))
    assert [b - a for a, b in pieces] == [30, 30, 30, 10]
    with pytest.raises(InvalidRequestError, match="not even one character fits"):
        split_long("abc", 0, 3, fits_chars(0))
    huge = "a" * 100_000
    windows = plan_windows(huge, fits_chars(4_000))
    assert all(w.end - w.start <= 4_000 for w in windows) and windows[-1].end == len(huge)


def test_windowed_decoding_finds_what_decoding_the_whole_text_finds():
    whole = names(DOCUMENT)
    for limit in (60, 80, 200):
        plans = [plan_windows(DOCUMENT, fits_chars(limit)), plan_windows("Ann saw Bo.", fits_chars(limit))]
        result = run_steps(window_steps([DOCUMENT, "Ann saw Bo."], plans, scripted), backend=None)
        assert result.entities[0] == whole, limit
        assert all(e.mention(DOCUMENT)[0].isupper() for e in result.entities[0])
        assert result.counts[0] == {"LOC": 0, "PER": len(whole)} and result.entities[1] == [Entity(8, 10, "PER")]
        assert result.stats["windows"] == len(plans[0]) - 1


def test_a_mention_cut_by_a_window_edge_is_kept_from_the_window_that_owns_it():
    text = "aaaa Peter Blackburn bbbb"
    first, second = Window(0, 15, 0, 10), Window(5, 25, 10, 25)
    cut = [Entity(5, 10, "PER"), Entity(5, 15, "PER")]  # the first window sees "Peter Blac"
    whole = [Entity(0, 15, "PER")]  # the second sees "Peter Blackburn" at its offset 0
    merged = merge_windows([first, second], [cut, whole])
    assert [e.mention(text) for e in merged] == ["Peter", "Peter Blac"]  # the first owns position 5
    # with the cut on the other side of the owned boundary, the whole mention wins
    merged = merge_windows([Window(0, 15, 0, 5), Window(5, 25, 5, 25)], [cut, whole])
    assert [e.mention(text) for e in merged] == ["Peter Blackburn"]


def test_an_extractor_decodes_a_text_longer_than_its_context_in_windows(tiny_adapter):
    """The transformers backend has no context limit of its own; given one, the extractor windows as on vLLM."""
    from padellm import load

    text = "Peter Blackburn said . " * 40
    with load(tiny_adapter[0], backend="transformers") as ner:
        ner.max_model_len = ner.tokens_needed("Peter Blackburn said . " * 4)
        result = ner.run([text, "EU"])
    assert result.stats["windows"] >= 9
    assert all(0 <= e.start < e.end <= len(text) for e in result.entities[0])
    assert result.entities[0] == sorted(set(result.entities[0]))
    assert [set(c) for c in result.counts] == [set(ner.labels)] * 2
