import pytest

from padellm.data.corpus import ReadOptions
from padellm.data.datasets import load_dataset, resolve
from padellm.errors import CorpusError
from padellm.data.stats import split_stats

# The counts ../shared/data/README.md gives: (sentences, entities) per split.
EXPECTED = {
    "conll2003": {"train": (14041, 23499), "dev": (3250, 5942), "test": (3453, 5648)},
    "genia": {"train": (15023, 45144), "dev": (1669, 5365), "test": (1854, 5506)},
    "resume_zh": {"train": (3819, 13438), "dev": (463, 1497), "test": (477, 1630)},
}
LABELS = {
    "conll2003": ["LOC", "MISC", "ORG", "PER"],
    "genia": ["DNA", "RNA", "cell_line", "cell_type", "protein"],
    "resume_zh": ["CONT", "EDU", "LOC", "NAME", "ORG", "PRO", "RACE", "TITLE"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_datasets_match_their_readme(shared_data, name):
    dataset = load_dataset(name)
    assert list(dataset.splits) == list(EXPECTED[name])
    for split, (sentences, entities) in EXPECTED[name].items():
        stats = split_stats(dataset.split(split))
        assert (stats.sentences, stats.entities) == (sentences, entities), split
        assert not dataset.reports[split].repairs  # the strict readers accept the shared data as it is
    assert dataset.labels() == LABELS[name]


def test_shared_genia_is_nested_and_resume_is_chinese(shared_data):
    genia = load_dataset("genia")
    # The nested pairs ../shared/data/README.md gives per split.
    assert {split: split_stats(genia.split(split)).nested_pairs for split in genia.splits} == {
        "train": 4303, "dev": 588, "test": 646}
    resume = load_dataset("resume_zh", ["dev"])
    first = resume.split("dev")[0]
    assert " " not in first.text and len(first.text) == len(first.tokens)
    conll = load_dataset("conll2003", ["test"])
    assert conll.reports["test"].scheme == "iob2"
    assert conll.split("test")[0].text.count(" ") == len(conll.split("test")[0].tokens) - 1


def test_folder_and_file_datasets(tmp_path):
    (tmp_path / "train.txt").write_text("EU B-ORG\n\nGerman B-MISC\n")
    (tmp_path / "test.jsonl").write_text('{"text": "UN", "entities": [{"start": 0, "end": 2, "label": "ORG"}]}\n')
    dataset = load_dataset(tmp_path)
    assert list(dataset.splits) == ["train", "test"] and dataset.labels() == ["MISC", "ORG"]
    assert len(load_dataset(tmp_path, ["test"]).split("test")) == 1
    (tmp_path / "mine.conll").write_text("EU B-ORG\n")
    single = load_dataset(tmp_path / "mine.conll")
    assert list(single.splits) == ["data"]
    with pytest.raises(CorpusError, match="no 'dev' split"):
        dataset.split("dev")
    with pytest.raises(CorpusError, match="no dev split"):
        load_dataset(tmp_path, ["dev"])
    (tmp_path / "train.json").write_text("[]")
    with pytest.raises(CorpusError, match="several train files: train.txt, train.json"):
        load_dataset(tmp_path)


def test_format_can_be_forced_for_a_dataset(tmp_path):
    (tmp_path / "dev.json").write_text("EU B-ORG\n")
    with pytest.raises(CorpusError, match="dev.json:1: a span-JSON file must hold one JSON array"):
        load_dataset(tmp_path, options=ReadOptions(format="spanjson"))
    assert load_dataset(tmp_path, options=ReadOptions(format="conll")).split("dev")[0].text == "EU"


def test_unknown_dataset_lists_what_exists(tmp_path, monkeypatch):
    (tmp_path / "conll2003").mkdir()
    monkeypatch.setenv("PADELLM_DATA_DIR", str(tmp_path))
    with pytest.raises(CorpusError, match="no such dataset.*conll2003"):
        resolve("conl2003")
    assert resolve("conll2003") == tmp_path / "conll2003"
    with pytest.raises(CorpusError, match="no split files"):
        load_dataset("conll2003")
