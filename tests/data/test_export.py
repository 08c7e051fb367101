import pytest

from padellm.data.corpus import read_conll
from padellm.data.export import conll_lines, entity_tokens, flat, labelstudio_config, labelstudio_task
from padellm.types import Entity

TEXT = "Peter Blackburn met EU-officials in Paris, France."
ENTITIES = [Entity(0, 15, "PER"), Entity(20, 22, "ORG"), Entity(36, 41, "LOC"), Entity(43, 49, "LOC")]


def test_conll_lines_tag_whole_tokens_split_where_an_entity_ends_inside_one():
    rows, dropped = conll_lines(TEXT, ENTITIES)
    assert rows == ["Peter B-PER", "Blackburn I-PER", "met O", "EU B-ORG", "- O", "officials O", "in O",
                    "Paris B-LOC", ", O", "France B-LOC", ". O"] and dropped == 0
    # a mention that ends inside a word splits the word there
    tokens, _ = entity_tokens("Parisians", [Entity(0, 5, "LOC")])
    assert tokens == ["Paris", "ians"]
    assert conll_lines("Parisians", [Entity(0, 5, "LOC")])[0] == ["Paris B-LOC", "ians O"]


def test_the_tokens_give_the_text_back_and_the_conll_reads_back_to_the_same_mentions(tmp_path):
    rows, _ = conll_lines(TEXT, ENTITIES)
    _, spans = entity_tokens(TEXT, ENTITIES)
    assert "".join(TEXT[a:b] for a, b in spans) == TEXT.replace(" ", "")
    path = tmp_path / "out.conll"
    path.write_text("\n".join(rows) + "\n\n" + "\n".join(conll_lines("No one", [])[0]) + "\n")
    (first, second), _ = read_conll(path)
    assert [(e.mention(first.text), e.label) for e in first.entities] == [(e.mention(TEXT), e.label) for e in ENTITIES]
    assert second.text == "No one" and second.entities == ()


def test_nested_mentions_keep_the_longest_and_say_how_many_went():
    nested = [Entity(0, 13, "protein"), Entity(0, 4, "DNA"), Entity(5, 13, "cell_type"), Entity(14, 18, "RNA")]
    kept, dropped = flat(nested)
    assert kept == [Entity(0, 13, "protein"), Entity(14, 18, "RNA")] and dropped == 2
    rows, dropped = conll_lines("IL-2 receptor mRNA", nested)
    assert dropped == 2 and [r.split()[1] for r in rows] == ["B-protein", "I-protein", "I-protein", "I-protein",
                                                              "B-RNA"]


def test_chinese_text_is_one_token_per_character():
    rows, _ = conll_lines("张三在北京", [Entity(0, 2, "NAME"), Entity(3, 5, "LOC")])
    assert rows == ["张 B-NAME", "三 I-NAME", "在 O", "北 B-LOC", "京 I-LOC"]


def test_labelstudio_tasks_carry_each_entity_as_a_labels_region():
    records = [{"start": 0, "end": 5, "label": "PER", "text": "Peter", "score": -0.1, "probability": 0.9},
               {"start": 10, "end": 15, "label": "LOC", "text": "Paris"}]
    task = labelstudio_task("Peter met Paris", records, "conll2003-parallel")
    assert task["data"] == {"text": "Peter met Paris"}
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == "conll2003-parallel" and prediction["score"] == pytest.approx(0.9)
    assert prediction["result"][0] == {"id": "e0", "from_name": "label", "to_name": "text", "type": "labels",
                                       "value": {"start": 0, "end": 5, "text": "Peter", "labels": ["PER"]},
                                       "score": 0.9}
    assert "score" not in prediction["result"][1]
    assert '<Label value="PER"/>' in labelstudio_config(["LOC", "PER"])
    assert labelstudio_task("nothing", [], "m")["predictions"][0] == {"model_version": "m", "result": []}
