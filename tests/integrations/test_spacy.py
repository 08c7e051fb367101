import pytest

from conftest import require

spacy = require("spacy")

from padellm.integrations.spacy import SPANS_KEY, annotate  # noqa: E402
from padellm.types import Entity  # noqa: E402


def test_annotate_sets_flat_ents_and_keeps_every_span_nested_ones_too():
    doc = spacy.blank("en")("IL-2 receptor expression in T cells")
    entities = [Entity(0, 13, "protein"), Entity(0, 4, "protein"), Entity(28, 35, "cell_type")]
    annotate(doc, entities)
    assert [(e.text, e.label_) for e in doc.ents] == [("IL-2 receptor", "protein"), ("T cells", "cell_type")]
    assert [(s.text, s.label_) for s in doc.spans[SPANS_KEY]] == [("IL-2 receptor", "protein"), ("IL-2", "protein"),
                                                                 ("T cells", "cell_type")]
    assert doc.user_data["padellm_widened"] == 0


def test_a_span_off_spacys_token_boundaries_is_widened_and_counted_not_dropped():
    doc = spacy.blank("en")("Parisians love Paris")
    annotate(doc, [Entity(0, 5, "LOC"), Entity(15, 20, "LOC")])
    assert [(e.text, e.label_) for e in doc.ents] == [("Parisians", "LOC"), ("Paris", "LOC")]
    assert doc.user_data["padellm_widened"] == 1


def test_add_pipe_finds_the_factory_by_its_entry_point_and_pipe_batches(tiny_adapter):
    """No import of padellm.integrations.spacy: spaCy loads it through the spacy_factories entry point."""
    nlp = spacy.blank("en")
    component = nlp.add_pipe("padellm", config={"adapter": str(tiny_adapter[0]), "backend": "transformers",
                                                "batch_size": 2, "decode": {"max_count": 2}})
    calls = []
    batch = component.ner.batch
    component.ner.batch = lambda texts: calls.append(len(texts)) or batch(texts)
    texts = ["Peter said", "EU", "Peter Blackburn", "nothing"]
    docs = list(nlp.pipe(texts))
    assert calls == [2, 2] and [d.text for d in docs] == texts
    expected = [component.ner.run([t]).entities[0] for t in texts]
    for doc, found in zip(docs, expected):
        assert [(s.start_char, s.end_char, s.label_) for s in doc.spans[SPANS_KEY]] == \
            [(e.start, e.end, e.label) for e in found]
    assert nlp("Peter said").text == "Peter said" and component.ner.decode_config.max_count == 2
    with pytest.raises(Exception, match="batch_size must be >= 1"):
        spacy.blank("en").add_pipe("padellm", config={"adapter": str(tiny_adapter[0]), "backend": "transformers",
                                                      "batch_size": 0})
