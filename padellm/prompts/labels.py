"""Label sets: the labels a model predicts, in a fixed order, with the natural-language name each prompt uses, and
the label names shipped per dataset under ``prompts/labels/``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from padellm.errors import ConfigError

PROMPTS_ENV = "PADELLM_PROMPTS_DIR"


def prompts_dir() -> Path:
    """``$PADELLM_PROMPTS_DIR``, else the project's ``prompts/`` folder (templates, and label names under labels/)."""
    return Path(os.environ.get(PROMPTS_ENV) or Path(__file__).resolve().parents[2] / "prompts")


@dataclass(frozen=True)
class LabelSet:
    """The labels a model predicts, in a fixed order, and the natural-language name each prompt uses."""

    labels: tuple[str, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        problems = []
        if not self.labels:
            problems.append("a label set needs at least one label")
        if len(self.labels) != len(self.names):
            problems.append(f"{len(self.labels)} labels but {len(self.names)} names")
        for kind, values in (("label", self.labels), ("label name", self.names)):
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                problems.append(f"duplicate {kind}s: {duplicates}")
            blank = [v for v in values if not isinstance(v, str) or not v.strip()]
            if blank:
                problems.append(f"every {kind} must be a non-blank string; got {blank}")
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_mapping(cls, mapping: dict[str, str]) -> LabelSet:
        return cls(tuple(mapping), tuple(str(v) for v in mapping.values()))

    @classmethod
    def for_labels(cls, labels: list[str], names: dict[str, str] | None = None) -> LabelSet:
        """``labels`` (sorted) named by ``names`` where given, else by themselves."""
        names = names or {}
        return cls(tuple(sorted(labels)), tuple(names.get(label, label) for label in sorted(labels)))

    def name(self, label: str) -> str:
        return self.names[self.labels.index(label)]

    def label(self, name: str) -> str:
        return self.labels[self.names.index(name)]

    def as_mapping(self) -> dict[str, str]:
        return dict(zip(self.labels, self.names))


def shipped_label_names(dataset: str | Path) -> str:
    """The spec of the label names shipped for ``dataset`` (a name or a folder: its last part) under
    ``prompts/labels/``, or '' when none ships (each label is then its own name)."""
    name = Path(dataset).name
    return name if (prompts_dir() / "labels" / f"{name}.yaml").is_file() else ""


def load_label_names(spec: str | Path) -> dict[str, str]:
    """Label names from a YAML mapping file, or by dataset name from ``prompts/labels/`` (``conll2003``)."""
    path = Path(spec)
    if not path.is_file():
        path = prompts_dir() / "labels" / f"{spec}.yaml"
    if not path.is_file():
        raise ConfigError(f"label_names must be a YAML file or a dataset under {prompts_dir() / 'labels'}; got {str(spec)!r}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError(f"{path}: expected a mapping from label to name")
    return {k: str(v) for k, v in data.items()}
