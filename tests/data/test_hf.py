import json

import pytest

datasets = pytest.importorskip("datasets")

from padellm.cli import main  # noqa: E402
from padellm.data.corpus import ReadOptions  # noqa: E402
from padellm.data.datasets import available_splits, load_dataset  # noqa: E402
from padellm.errors import CorpusError  # noqa: E402
from padellm.types import Entity  # noqa: E402

HUB_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # the Hub's conll2003


def hub_like(rows: dict[str, list[tuple[list[str], list[str]]]]):
    """A DatasetDict with the Hub conll2003 schema: id, tokens, pos_tags and ner_tags as ClassLabel ids."""
    features = datasets.Features({
        "id": datasets.Value("string"), "tokens": datasets.Sequence(datasets.Value("string")),
        "pos_tags": datasets.Sequence(datasets.Value("int32")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=HUB_TAGS))})
    return datasets.DatasetDict({split: datasets.Dataset.from_dict({
        "id": [str(i) for i in range(len(examples))], "tokens": [tokens for tokens, _ in examples],
        "pos_tags": [[0] * len(tokens) for tokens, _ in examples],
        "ner_tags": [[HUB_TAGS.index(t) for t in tags] for _, tags in examples]}, features=features)
        for split, examples in rows.items()})


ROWS = {"train": [(["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
                  (["Peter", "Blackburn"], ["B-PER", "I-PER"]), ([], [])],
        "validation": [(["BRUSSELS", "1996-08-22"], ["B-LOC", "O"])]}


def test_a_saved_hub_dataset_is_a_dataset_everywhere(tmp_path):
    hub_like(ROWS).save_to_disk(str(tmp_path / "hub"))
    assert available_splits(tmp_path / "hub") == ["train", "dev"]
    dataset = load_dataset(tmp_path / "hub")
    assert list(dataset.splits) == ["train", "dev"] and len(dataset.split("train")) == 2  # the empty row skipped
    first = dataset.split("train")[0]
    assert first.text == "EU rejects German call"
    assert first.entities == (Entity(0, 2, "ORG"), Entity(11, 17, "MISC"))
    assert dataset.split("dev")[0].entities == (Entity(0, 8, "LOC"),)
    assert list(load_dataset(tmp_path / "hub", ["dev"]).splits) == ["dev"]
    with pytest.raises(CorpusError, match="no test split"):
        load_dataset(tmp_path / "hub", ["test"])


def test_parquet_and_arrow_tables(tmp_path):
    hub_like(ROWS)["validation"].to_parquet(str(tmp_path / "dev.parquet"))
    (example,) = load_dataset(tmp_path / "dev.parquet").split("dev")
    assert example.entities == (Entity(0, 8, "LOC"),)
    table = datasets.Dataset.from_dict({"tokens": [["Paris", "!"]], "ner_tags": [["B-LOC", "O"]]})  # tag strings
    table.to_parquet(str(tmp_path / "tags.parquet"))
    assert load_dataset(tmp_path / "tags.parquet").split("data")[0].entities == (Entity(0, 5, "LOC"),)


def test_convert_to_hf_and_back_keeps_every_entity(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("EU B-ORG\nrejects O\nGerman B-MISC\n\nPeter B-PER\nBlackburn I-PER\n")
    (corpus / "dev.txt").write_text("London B-LOC\n")
    assert main(["data", "convert", str(corpus), "--to", "hf", "--out", str(tmp_path / "hf")]) == 0
    assert "ner_tags names: O, B-LOC, I-LOC, B-MISC, I-MISC, B-ORG, I-ORG, B-PER, I-PER" in capsys.readouterr().err
    saved = datasets.load_from_disk(str(tmp_path / "hf"))
    assert set(saved) == {"train", "validation"}
    assert saved["train"].features["ner_tags"].feature.names[:3] == ["O", "B-LOC", "I-LOC"]
    original, again = load_dataset(corpus), load_dataset(tmp_path / "hf")
    for split in ("train", "dev"):
        assert [(e.text, e.entities) for e in again.split(split)] == [(e.text, e.entities) for e in original.split(split)]
    assert main(["data", "stats", str(tmp_path / "hf"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["entities_per_label"]["PER"] == 1


def test_what_cannot_be_read_or_written_is_named(tmp_path, capsys):
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"words": [["a"]], "labels": [["O"]]})}).save_to_disk(
        str(tmp_path / "wrong"))
    with pytest.raises(CorpusError, match=r"train: no tokens or ner_tags column \(it has words, labels\)"):
        load_dataset(tmp_path / "wrong")
    hub_like({"train": [(["a", "b"], ["O", "I-PER"])]}).save_to_disk(str(tmp_path / "strict"))
    with pytest.raises(CorpusError, match=r"train row 0: I-PER after O .*--lenient"):
        load_dataset(tmp_path / "strict", options=ReadOptions(scheme="iob2"))
    nested = tmp_path / "nested.jsonl"
    nested.write_text(json.dumps({"id": "s1", "text": "IL-2 gene", "tokens": ["IL-2", "gene"], "entities": [
        {"start": 0, "end": 9, "label": "DNA"}, {"start": 0, "end": 4, "label": "protein"}]}) + "\n")
    assert main(["data", "convert", str(nested), "--to", "hf", "--out", str(tmp_path / "out")]) == 2
    assert "s1: token span (0, 2, DNA) overlaps another span: BIO cannot nest" in capsys.readouterr().err
