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


def load_script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "eval" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_coverage_counts_exact_widened_and_spans_only():
    coverage = load_script("spacy_coverage").coverage
    doc = spacy.blank("en")("IL-2 receptor expression in T cells")
    found = [Entity(0, 13, "protein"), Entity(0, 4, "protein"), Entity(28, 29, "cell_type"),
             Entity(1, 13, "protein")]
    annotate(doc, found)  # keeps "IL-2 receptor" and "T"; (1, 13) widens to it; "IL-2" nests inside it
    counts = coverage([doc], [found])
    assert counts == {"spans": 4, "in_ents_exactly": 2, "in_ents_widened": 1, "only_in_doc_spans": 1,
                      "share_in_ents": 75.0}


def test_the_coverage_script_runs_end_to_end(tiny_adapter, capsys):
    import json

    adapter, corpus = tiny_adapter
    assert load_script("spacy_coverage").main(["--adapter", str(adapter), "--dataset", str(corpus), "--sample", "2",
                                               "--backend", "transformers"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sentences"] == 2 and report["spans"] == report["in_ents_exactly"] + report["in_ents_widened"] + \
        report["only_in_doc_spans"]
