import json

import pytest

from padellm.data.corpus import ReadOptions, detect_format, read_conll, read_corpus, read_jsonl, read_spanjson, write_jsonl
from padellm.errors import ConfigError, CorpusError
from padellm.types import Entity

CONLL = """-DOCSTART- O

EU B-ORG
rejects O
German B-MISC
call O

Peter B-PER
Blackburn I-PER
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("separator", [" ", "\t"])
def test_conll_space_tab_lf_crlf_docstart(write, newline, separator):
    path = write("train.txt", CONLL.replace(" ", separator), newline)
    examples, report = read_conll(path)
    assert [ex.text for ex in examples] == ["EU rejects German call", "Peter Blackburn"]
    assert examples[0].entities == (Entity(0, 2, "ORG"), Entity(11, 17, "MISC"))
    assert examples[1].entities == (Entity(0, 15, "PER"),)
    assert examples[0].tokens == ("EU", "rejects", "German", "call")
    assert examples[0].id == "train:3" and report.scheme == "iob2" and not report.repairs


def test_conll_four_columns_take_first_and_last(write):
    path = write("d.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n")
    (example,), _ = read_conll(path)
    assert example.entities == (Entity(0, 2, "ORG"),)


def test_conll_iob1_is_detected_and_normalised(write):
    path = write("d.txt", "EU I-ORG\nand O\nUN I-ORG\nFrance I-LOC\nGermany B-LOC\n\n")
    (example,), report = read_conll(path)
    assert report.scheme == "iob1"
    assert example.entities == (Entity(0, 2, "ORG"), Entity(7, 9, "ORG"), Entity(10, 16, "LOC"), Entity(17, 24, "LOC"))


def test_conll_strict_iob2_names_file_and_line(write):
    path = write("d.txt", "EU B-ORG\nrejects O\n\nGerman B-MISC\ncall O\nLondon I-LOC\n")
    with pytest.raises(CorpusError) as info:
        read_conll(path, ReadOptions(scheme="iob2"))
    assert info.value.line == 6 and str(path) in str(info.value) and "I-LOC after O" in str(info.value)


def test_conll_lenient_repairs_are_counted(write):
    path = write("d.txt", "EU B-ORG\nrejects O\n\nGerman B-MISC\ncall O\nLondon I-LOC\nB-PER\n")
    examples, report = read_conll(path, ReadOptions(scheme="iob2", lenient=True))
    assert examples[1].entities == (Entity(0, 6, "MISC"), Entity(12, 18, "LOC"))
    assert report.repairs == {"opening I- read as B-": 1, "line without token dropped": 1}
    assert any(":6:" in line for line in report.examples) and any(":7:" in line for line in report.examples)


def test_conll_tag_without_token(write):
    path = write("d.txt", "EU B-ORG\nB-PER\n")
    with pytest.raises(CorpusError, match=r"d.txt:2: a tag without a token.*; --lenient .* drops such lines"):
        read_conll(path)


def test_conll_unknown_tag(write):
    path = write("d.txt", "EU B-ORG\n\nrejects X-VERB\n")
    with pytest.raises(CorpusError, match=r"d.txt:3: not a BIO tag: 'X-VERB'"):
        read_conll(path)


def test_conll_chinese_joined_without_spaces(write):
    path = write("d.txt", "高 B-NAME\n勇 I-NAME\n： O\n男 O\n")
    (example,), _ = read_conll(path)
    assert example.text == "高勇：男" and example.entities == (Entity(0, 2, "NAME"),)
    (example,), _ = read_conll(path, ReadOptions(joiner="space"))
    assert example.text == "高 勇 ： 男" and example.entities == (Entity(0, 3, "NAME"),)


SPANJSON = [
    {"sentence": ["IL-2", "gene", "expression", "in", "T", "cells"],
     "ner": [{"index": [0, 1], "type": "DNA"}, {"index": [0], "type": "protein"}, {"index": [4, 5], "type": "cell_type"}]},
    {"sentence": ["No", "entities"], "ner": []},
]


def test_spanjson_nested(write):
    path = write("dev.json", json.dumps(SPANJSON, indent=1))
    examples, report = read_spanjson(path)
    assert report.format == "spanjson"
    assert examples[0].text == "IL-2 gene expression in T cells"
    assert examples[0].entities == (Entity(0, 4, "protein"), Entity(0, 9, "DNA"), Entity(24, 31, "cell_type"))
    assert examples[1].entities == ()


def _with_mention(mention):
    return [SPANJSON[1], {"sentence": ["a", "b", "c"], "ner": [mention]}]


@pytest.mark.parametrize(
    "data,message",
    [
        (_with_mention({"index": [1, 3], "type": "X"}), r"dev.json:\d+: sentence 1: index 3 out of range for a sentence of 3 tokens"),
        (_with_mention({"index": [], "type": "X"}), "'index' must be a non-empty list"),
        (_with_mention({"index": [0]}), "needs 'index' and 'type'"),
        (_with_mention({"index": [0], "type": ""}), "'type' must be a non-empty string"),
        (_with_mention({"index": [0, 2], "type": "X"}), "discontinuous mention"),
        ([{"sentence": "a b"}], "expected an object with a 'sentence' token list"),
        ([{"sentence": ["a", " "]}], "non-blank string"),
        ({"sentence": ["a"]}, "one JSON array"),
    ],
)
def test_spanjson_errors(write, data, message):
    path = write("dev.json", json.dumps(data, indent=1))
    with pytest.raises(CorpusError, match=message):
        read_spanjson(path)


def test_spanjson_error_names_the_line_of_the_sentence(write):
    text = '[\n {"sentence": ["a"], "ner": []},\n {"sentence": ["b"],\n  "ner": [{"index": [5], "type": "X"}]}\n]\n'
    with pytest.raises(CorpusError) as info:
        read_spanjson(write("dev.json", text))
    assert info.value.line == 3


def test_spanjson_invalid_json_names_the_line(write):
    text = '[\n {"sentence": ["a"], "ner": []},\n {"sentence": ["b"] "ner": []}\n]\n'
    with pytest.raises(CorpusError, match=r"dev.json:3: invalid JSON"):
        read_spanjson(write("dev.json", text))
    with pytest.raises(CorpusError, match=r"dev.json:2: invalid JSON: extra data"):
        read_spanjson(write("dev.json", "[]\n[]\n"))


def test_spanjson_lenient_repairs(write):
    data = [{"sentence": ["a", "b", "c"], "ner": [{"index": [0, 2], "type": "X"}, {"index": [1], "type": "Y"},
                                                 {"index": [1], "type": "Y"}]}]
    path = write("dev.json", json.dumps(data))
    with pytest.raises(CorpusError, match="discontinuous mention .*--lenient .* reads it as the span from its first"):
        read_spanjson(path, ReadOptions())
    duplicate = [{"sentence": ["a", "b"], "ner": [{"index": [1], "type": "Y"}, {"index": [1], "type": "Y"}]}]
    with pytest.raises(CorpusError, match=r"sentence 0: duplicate mention \(1, 2, 'Y'\); --lenient .* drops repeats"):
        read_spanjson(write("dup.json", json.dumps(duplicate)))
    (example,), report = read_spanjson(path, ReadOptions(lenient=True))
    assert example.entities == (Entity(0, 5, "X"), Entity(2, 3, "Y"))
    assert report.repairs == {"discontinuous mention spanned": 1, "duplicate mention dropped": 1}


def test_spanjson_chinese(write):
    data = [{"sentence": ["高", "勇", "：", "男"], "ner": [{"index": [0, 1], "type": "NAME"}]}]
    (example,), _ = read_spanjson(write("train.json", json.dumps(data, ensure_ascii=False)))
    assert example.text == "高勇：男" and example.mentions() == [("NAME", "高勇")]


def test_jsonl_reads_hand_written_records(write):
    lines = [
        {"text": "EU rejects German call", "entities": [{"start": 0, "end": 2, "label": "ORG"}], "id": "s1"},
        {"text": "高勇：男", "entities": [{"start": 0, "end": 2, "label": "NAME", "text": "高勇"}]},
    ]
    path = write("mine.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n")
    examples, report = read_jsonl(path)
    assert report.format == "jsonl" and [ex.id for ex in examples] == ["s1", "mine:2"]
    assert examples[0].tokens == ("EU", "rejects", "German", "call")
    assert examples[1].tokens == ("高", "勇", "：", "男") and examples[1].entities == (Entity(0, 2, "NAME"),)


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"text": "EU", "entities": [{"start": 0, "end": 3, "label": "ORG"}]}', "out of range for a text of 2"),
        ('{"text": "EU", "entities": [{"start": 0, "end": 2}]}', "needs 'start', 'end' and 'label'"),
        ('{"text": "EU", "entities": [{"start": 0, "end": 2, "label": "ORG", "text": "UN"}]}', "does not match"),
        ('{"text": "EU", "entities": [{"start": "0", "end": 2, "label": "ORG"}]}', "must be integers"),
        ('{"text": "EU", "entities": {}}', "'entities' must be a list"),
        ('{"text": 3}', "string 'text'"),
        ('{"text": "EU",}', "invalid JSON"),
        ('{"text": "EU rejects", "tokens": ["EU", "accepts"]}', "token 'accepts' not found"),
    ],
)
def test_jsonl_errors_name_file_and_line(write, line, message):
    path = write("mine.jsonl", '{"text": "ok"}\n' + line + "\n")
    with pytest.raises(CorpusError, match=message) as info:
        read_jsonl(path)
    assert info.value.line == 2 and "mine.jsonl:2" in str(info.value)


def test_format_is_detected_and_can_be_forced(write):
    assert detect_format(write("a.txt", "\n\nEU B-ORG\n")) == "conll"
    assert detect_format(write("b.data", ' [{"sentence": ["a"]}]')) == "spanjson"
    assert detect_format(write("c.txt", '{"text": "a"}\n')) == "jsonl"
    with pytest.raises(CorpusError, match="empty"):
        read_corpus(write("d.txt", "\n \n"))
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus(write("e.txt", "") .with_name("missing.txt"))
    path = write("f.json", "EU B-ORG\n")
    examples, report = read_corpus(path, ReadOptions(format="conll"))
    assert report.format == "conll" and examples[0].entities == (Entity(0, 2, "ORG"),)


def test_read_options_collect_every_problem():
    with pytest.raises(ConfigError) as info:
        ReadOptions(format="xml", scheme="bioes", joiner="tab")
    assert len(info.value.problems) == 3
    assert "format must be one of auto, conll, spanjson, jsonl; got 'xml'" in str(info.value)


def test_write_jsonl_round_trips(write, tmp_path):
    examples, _ = read_spanjson(write("dev.json", json.dumps(SPANJSON)))
    out = tmp_path / "out.jsonl"
    write_jsonl(out, examples)
    again, _ = read_jsonl(out)
    assert again == examples
    predictions = [[Entity(0, 4, "protein", score=-0.25)], []]
    write_jsonl(out, examples, predictions)
    record = json.loads(out.read_text().splitlines()[0])
    assert record["entities"] == [{"start": 0, "end": 4, "label": "protein", "text": "IL-2", "score": -0.25}]


def test_jsonl_duplicates_are_errors_or_counted_repairs(write):
    line = '{"text": "EU", "entities": [{"start": 0, "end": 2, "label": "ORG"}, {"start": 0, "end": 2, "label": "ORG"}]}\n'
    path = write("dup.jsonl", line)
    with pytest.raises(CorpusError, match=r"dup.jsonl:1: duplicate mention Entity\(start=0, end=2, label='ORG'"):
        read_jsonl(path)
    (example,), report = read_jsonl(path, ReadOptions(lenient=True))
    assert example.entities == (Entity(0, 2, "ORG"),) and report.repairs == {"duplicate mention dropped": 1}
