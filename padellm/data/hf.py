"""Hugging Face datasets as a source and a target.

Read: a folder written by ``DatasetDict.save_to_disk`` (or ``Dataset.save_to_disk``), or ``.parquet`` /
``.arrow`` files, with a ``tokens`` column and a ``ner_tags`` column of BIO tags: ``ClassLabel`` ids whose names
are the tags (the schema of the Hub's ``conll2003`` and ``wnut_17``), or the tag strings. The Hub's
``validation`` split is padellm's ``dev``.

Write: ``write_saved`` turns examples into that schema (``padellm data convert ... --to hf DIR``).
"""

from __future__ import annotations

import json
from pathlib import Path

from padellm.data.bio import entities_to_token_spans, spans_to_tags
from padellm.data.corpus import ReadOptions, ReadReport, tagged_examples
from padellm.errors import CorpusError, MissingPackageError
from padellm.types import Example

TABLE_SUFFIXES = (".parquet", ".arrow")
HUB_SPLITS = {"validation": "dev", "valid": "dev"}  # the Hub's split names -> padellm's


def _datasets():
    try:
        import datasets
    except ImportError as err:
        raise MissingPackageError("datasets", "pip install datasets", "reading Hugging Face datasets") from err
    return datasets


def is_saved_dataset(path: Path) -> bool:
    """A folder written by ``save_to_disk``."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def saved_splits(path: Path) -> list[str]:
    """padellm's names for the splits of a saved dataset, without loading it."""
    if (path / "dataset_dict.json").is_file():
        names = json.loads((path / "dataset_dict.json").read_text())["splits"]
        return [HUB_SPLITS.get(name, name) for name in names]
    return ["data"]


def read_saved(path: Path, options: ReadOptions = ReadOptions(), splits: list[str] | None = None
               ) -> dict[str, tuple[list[Example], ReadReport]]:
    """``{split: (examples, report)}`` of a saved dataset (``splits``: only these, by padellm's names)."""
    datasets = _datasets()
    loaded = datasets.load_from_disk(str(path))
    tables = {"data": loaded} if isinstance(loaded, datasets.Dataset) else {
        HUB_SPLITS.get(name, name): table for name, table in loaded.items()}
    if splits is not None:
        missing = [s for s in splits if s not in tables]
        if missing:
            raise CorpusError(path, None, f"no {', '.join(missing)} split (found: {', '.join(tables)})")
        tables = {s: tables[s] for s in splits}
    return {split: read_table(table, path, split, options) for split, table in tables.items()}


def read_table_file(path: Path, options: ReadOptions = ReadOptions()) -> tuple[list[Example], ReadReport]:
    """One ``.parquet`` or ``.arrow`` file (an ``.arrow`` file as ``save_to_disk`` writes it)."""
    datasets = _datasets()
    try:
        table = (datasets.Dataset.from_parquet(str(path)) if path.suffix == ".parquet"
                 else datasets.Dataset.from_file(str(path)))
    except Exception as err:  # pyarrow's own errors say what is wrong with the file
        raise CorpusError(path, None, f"not a readable {path.suffix[1:]} table: {err}") from None
    return read_table(table, path, path.stem, options)


def _tag_names(table) -> list[str] | None:
    inner = getattr(table.features["ner_tags"], "feature", None)
    return list(inner.names) if hasattr(inner, "names") else None


def read_table(table, path: Path, split: str, options: ReadOptions) -> tuple[list[Example], ReadReport]:
    missing = [c for c in ("tokens", "ner_tags") if c not in table.column_names]
    if missing:
        raise CorpusError(path, None, f"{split}: no {' or '.join(missing)} column (it has {', '.join(table.column_names)}"
                                      f"); a NER table needs tokens and ner_tags (BIO tags: ClassLabel ids or strings)")
    names = _tag_names(table)
    sentences = []
    for row, (tokens, tags) in enumerate(zip(table["tokens"], table["ner_tags"])):
        if len(tokens) != len(tags):
            raise CorpusError(path, None, f"{split} row {row}: {len(tokens)} tokens but {len(tags)} tags")
        if names is not None:
            bad = [t for t in tags if not isinstance(t, int) or not 0 <= t < len(names)]
            if bad:
                raise CorpusError(path, None, f"{split} row {row}: tag id {bad[0]} is not one of the "
                                              f"{len(names)} ClassLabel names")
            tags = [names[t] for t in tags]
        if tokens:
            sentences.append([(row, token, tag) for token, tag in zip(tokens, tags)])
    report = ReadReport(f"{path}[{split}]", "hf")
    return tagged_examples(sentences, path, options, report, unit=f"{split} row"), report


def bio_tags(example: Example) -> list[str]:
    """IOB2 tags of an example's tokens; nested or overlapping entities cannot be written so (an error)."""
    try:
        return spans_to_tags(len(example.tokens), entities_to_token_spans(example.token_spans, example.entities))
    except ValueError as err:
        raise CorpusError(example.id or "example", None, f"{err} (GENIA's nesting: keep it in JSONL)") from None


def write_saved(splits: dict[str, list[Example]], out: str | Path) -> list[str]:
    """Save ``splits`` with ``DatasetDict.save_to_disk`` (dev as ``validation``): columns id, tokens and ner_tags
    (``ClassLabel``: O, then B-/I- of each label, sorted). Returns the tag names."""
    datasets = _datasets()
    labels = sorted({e.label for examples in splits.values() for ex in examples for e in ex.entities})
    names = ["O"] + [f"{prefix}-{label}" for label in labels for prefix in ("B", "I")]
    index = {name: i for i, name in enumerate(names)}
    features = datasets.Features({"id": datasets.Value("string"), "tokens": datasets.Sequence(datasets.Value("string")),
                                 "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    tables = {}
    for split, examples in splits.items():
        columns = {"id": [ex.id for ex in examples], "tokens": [list(ex.tokens) for ex in examples],
                   "ner_tags": [[index[tag] for tag in bio_tags(ex)] for ex in examples]}
        tables["validation" if split == "dev" else split] = datasets.Dataset.from_dict(columns, features=features)
    datasets.DatasetDict(tables).save_to_disk(str(out))
    return names
