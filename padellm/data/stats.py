"""Corpus statistics, per split: what ``padellm data stats`` prints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from padellm.types import Entity, Example


@dataclass(frozen=True)
class SplitStats:
    sentences: int
    tokens: int
    entities: int
    entities_per_label: dict[str, int]
    nested_pairs: int
    """Pairs of distinct entity spans in one sentence where one span contains the other."""
    max_sentence_tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


def nested_pairs(entities: Sequence[Entity]) -> int:
    spans = sorted({(e.start, e.end) for e in entities})
    return sum(
        1
        for i, (s1, e1) in enumerate(spans)
        for s2, e2 in spans[i + 1 :]
        if (s1 <= s2 and e2 <= e1) or (s2 <= s1 and e1 <= e2)
    )


def split_stats(examples: Sequence[Example]) -> SplitStats:
    labels = Counter(e.label for ex in examples for e in ex.entities)
    return SplitStats(
        sentences=len(examples),
        tokens=sum(len(ex.tokens) for ex in examples),
        entities=sum(len(ex.entities) for ex in examples),
        entities_per_label=dict(sorted(labels.items())),
        nested_pairs=sum(nested_pairs(ex.entities) for ex in examples),
        max_sentence_tokens=max((len(ex.tokens) for ex in examples), default=0),
    )


def format_table(stats: dict[str, SplitStats]) -> str:
    """A plain-text table: one column per split, one row per figure (labels included)."""
    labels = sorted({label for s in stats.values() for label in s.entities_per_label})
    rows = [("", *stats)]
    for name in ("sentences", "tokens", "entities"):
        rows.append((name, *(f"{getattr(s, name):,}" for s in stats.values())))
    rows += [(f"  {label}", *(f"{s.entities_per_label.get(label, 0):,}" for s in stats.values())) for label in labels]
    rows.append(("nested pairs", *(f"{s.nested_pairs:,}" for s in stats.values())))
    rows.append(("max sentence tokens", *(f"{s.max_sentence_tokens:,}" for s in stats.values())))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in rows
    )
