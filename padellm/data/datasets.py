"""Name a dataset by a folder under ``../shared/data`` (``conll2003``, ``genia``, ``resume_zh``), by any folder
holding ``train``/``dev``/``test`` files, by a Hugging Face dataset saved with ``save_to_disk``, or by a single
file; get its splits as ``Example`` lists."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from padellm.data.corpus import ReadOptions, ReadReport, read_corpus
from padellm.data.hf import TABLE_SUFFIXES, is_saved_dataset, read_saved, read_table_file, saved_splits
from padellm.errors import CorpusError
from padellm.types import Example

SPLITS = ("train", "dev", "test")
SUFFIXES = (".txt", ".conll", ".json", ".jsonl", ".parquet", ".arrow")
DATA_DIR_ENV = "PADELLM_DATA_DIR"


def shared_data_dir() -> Path | None:
    """The shared data folder: ``$PADELLM_DATA_DIR``, else ``../shared/data`` beside the project root or the
    working directory. ``None`` when none exists."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    project_root = Path(__file__).resolve().parents[2]
    for base in (project_root, Path.cwd()):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class Dataset:
    """A named set of splits, each a list of examples, with the report of the read that produced it."""

    name: str
    splits: dict[str, list[Example]]
    reports: dict[str, ReadReport]

    def split(self, name: str) -> list[Example]:
        if name not in self.splits:
            raise CorpusError(self.name, None, f"no {name!r} split (this dataset has: {', '.join(self.splits)})")
        return self.splits[name]

    def labels(self) -> list[str]:
        """Every label that occurs in any split, sorted."""
        return sorted({e.label for examples in self.splits.values() for ex in examples for e in ex.entities})


def split_files(folder: Path) -> dict[str, Path]:
    """``{split: file}`` for the split files in ``folder`` (``train.txt``, ``dev.json``, ...)."""
    found: dict[str, Path] = {}
    for split in SPLITS:
        matches = [folder / f"{split}{suffix}" for suffix in SUFFIXES if (folder / f"{split}{suffix}").is_file()]
        if len(matches) > 1:
            raise CorpusError(folder, None, f"several {split} files: {', '.join(m.name for m in matches)}")
        if matches:
            found[split] = matches[0]
    return found


def resolve(spec: str | Path) -> Path:
    """A dataset name or path -> the file or folder it names, or a clear error listing what exists."""
    path = Path(spec)
    if path.exists():
        return path
    data_dir = shared_data_dir()
    if data_dir is not None and "/" not in str(spec) and (data_dir / str(spec)).is_dir():
        return data_dir / str(spec)
    known = sorted(p.name for p in data_dir.iterdir() if p.is_dir()) if data_dir else []
    hint = f"shared datasets in {data_dir}: {', '.join(known)}" if known else f"no shared data folder (set ${DATA_DIR_ENV})"
    raise CorpusError(spec, None, f"no such dataset file or folder ({hint})")


def _files(path: Path) -> dict[str, Path]:
    if path.is_dir():
        files = split_files(path)
        if not files:
            raise CorpusError(path, None, f"no split files ({'/'.join(SPLITS)} with suffix {'/'.join(SUFFIXES)})")
        return files
    return {path.stem if path.stem in SPLITS else "data": path}


def available_splits(spec: str | Path) -> list[str]:
    """The splits ``load_dataset(spec)`` would read, without reading them."""
    path = resolve(spec)
    return saved_splits(path) if is_saved_dataset(path) else list(_files(path))


def read_file(path: Path, options: ReadOptions = ReadOptions()) -> tuple[list[Example], ReadReport]:
    """One split file: a corpus file (CoNLL, span-JSON, JSONL) or a Hugging Face table (parquet, arrow)."""
    if path.suffix in TABLE_SUFFIXES:
        return read_table_file(path, options)
    return read_corpus(path, options)


def load_dataset(spec: str | Path, splits: list[str] | None = None, options: ReadOptions = ReadOptions()) -> Dataset:
    """Read a dataset; ``splits`` limits which splits are read (all available ones by default).

    A single file is one split named after the file's stem when that is a split name, else ``"data"``. A folder
    written by Hugging Face's ``save_to_disk`` is read with ``datasets`` (its ``validation`` split is ``dev``).
    """
    path = resolve(spec)
    if is_saved_dataset(path):
        read = read_saved(path, options, splits)
    else:
        files = _files(path)
        if splits is not None:
            missing = [s for s in splits if s not in files]
            if missing:
                raise CorpusError(path, None, f"no {', '.join(missing)} split (found: {', '.join(files)})")
            files = {s: files[s] for s in splits}
        read = {split: read_file(file, options) for split, file in files.items()}
    return Dataset(
        name=path.name if path.is_dir() else str(path),
        splits={s: examples for s, (examples, _) in read.items()},
        reports={s: report for s, (_, report) in read.items()},
    )
