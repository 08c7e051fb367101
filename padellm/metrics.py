"""Entity-level precision, recall and F1.

Two ways of deciding that a predicted entity is correct, selectable by name:

* ``span`` (the default): exact ``(start, end, label)`` match, per sentence. Works for flat and nested data;
  on flat data it equals seqeval's strict IOB2 scores.
* ``string``: the PaDeLLM-NER paper's variant, per-sentence **sets** of ``(label, mention string)``: a string
  found twice counts once, and any occurrence of the right string with the right label is correct.

And how well PaDeLLM's count stage counts (``count_accuracy`` against ``gold_counts``), and where the recall
goes by a mention's rank among its label's mentions in the sentence (``recall_by_rank``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

from padellm.errors import ConfigError, one_of_problem
from padellm.types import Entity, Example


def _span_key(_: str, entity: Entity) -> Hashable:
    return (entity.start, entity.end, entity.label)


def _string_key(text: str, entity: Entity) -> Hashable:
    return (entity.label, entity.mention(text))


MATCHERS: dict[str, Callable[[str, Entity], Hashable]] = {"span": _span_key, "string": _string_key}


@dataclass(frozen=True)
class PRF:
    """Counts and scores for one label (or all of them)."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        """Gold entities."""
        return self.tp + self.fn

    def to_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
                "tp": self.tp, "fp": self.fp, "fn": self.fn, "support": self.support}


@dataclass(frozen=True)
class Scores:
    """Micro-averaged and per-label scores, and macro F1 over labels with gold or predicted entities."""

    matcher: str
    micro: PRF
    per_label: dict[str, PRF]

    @property
    def macro_f1(self) -> float:
        return sum(s.f1 for s in self.per_label.values()) / len(self.per_label) if self.per_label else 0.0

    def to_dict(self) -> dict:
        return {"matcher": self.matcher, "micro": self.micro.to_dict(), "macro_f1": self.macro_f1,
                "per_label": {label: s.to_dict() for label, s in self.per_label.items()}}

    def table(self) -> str:
        """A markdown table of per-label and micro scores."""
        lines = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        rows = [*self.per_label.items(), ("micro", self.micro)]
        for label, s in rows:
            lines.append(f"| {label} | {100 * s.precision:.2f} | {100 * s.recall:.2f} | {100 * s.f1:.2f} | {s.support} |")
        return "\n".join(lines)


def score(
    texts: Sequence[str],
    gold: Sequence[Iterable[Entity]],
    predicted: Sequence[Iterable[Entity]],
    matcher: str = "span",
) -> Scores:
    """Score ``predicted`` against ``gold``: one entity collection per text, aligned by position."""
    if matcher not in MATCHERS:
        raise ConfigError(one_of_problem("matcher", MATCHERS, matcher))
    if not len(texts) == len(gold) == len(predicted):
        raise ConfigError(
            f"texts, gold and predicted must have one entry per sentence; got {len(texts)}, {len(gold)}, {len(predicted)}"
        )
    key = MATCHERS[matcher]
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for text, gold_entities, predicted_entities in zip(texts, gold, predicted):
        gold_keys = {key(text, e): e.label for e in gold_entities}
        predicted_keys = {key(text, e): e.label for e in predicted_entities}
        for k, label in gold_keys.items():
            (tp if k in predicted_keys else fn)[label] += 1
        for k, label in predicted_keys.items():
            if k not in gold_keys:
                fp[label] += 1
    labels = sorted(set(tp) | set(fp) | set(fn))
    per_label = {label: PRF(tp[label], fp[label], fn[label]) for label in labels}
    micro = PRF(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return Scores(matcher, micro, per_label)


# ------------------------------------------------------------------ the count stage of parallel decoding
def gold_counts(examples: list[Example], labels: tuple[str, ...]) -> list[dict[str, int]]:
    """The number of gold mentions of each label in each example (what a perfect count stage states)."""
    out = []
    for example in examples:
        found = Counter(entity.label for entity in example.entities)
        out.append({label: found[label] for label in labels})
    return out


def _accuracy(errors: Counter, gold_total: int, stated_total: int) -> dict:
    pairs = sum(errors.values())
    under = sum(n for error, n in errors.items() if error < 0)
    over = sum(n for error, n in errors.items() if error > 0)
    return {"pairs": pairs, "exact": errors[0] / max(1, pairs), "under": under / max(1, pairs),
            "over": over / max(1, pairs), "gold_mentions": gold_total, "stated_mentions": stated_total,
            "errors": {str(error): n for error, n in sorted(errors.items())}}


def count_accuracy(stated: list[dict[str, int]], gold: list[dict[str, int]]) -> dict:
    """``{"all": ..., "per_label": {label: ...}}``: over the (sentence, label) pairs, the shares stated exactly,
    under and over, the mentions stated against the gold ones, and ``errors`` (stated - gold -> pairs)."""
    per_label: dict[str, Counter] = {}
    totals: dict[str, list[int]] = {}
    for stated_counts, gold_counts_ in zip(stated, gold):
        for label, count in stated_counts.items():
            truth = gold_counts_.get(label, 0)
            per_label.setdefault(label, Counter())[count - truth] += 1
            sums = totals.setdefault(label, [0, 0])
            sums[0] += truth
            sums[1] += count
    everything = sum(per_label.values(), Counter())
    return {"all": _accuracy(everything, sum(t[0] for t in totals.values()), sum(t[1] for t in totals.values())),
            "per_label": {label: _accuracy(per_label[label], *totals[label]) for label in sorted(per_label)}}


RANKS = ("only", "first of several", "second", "third or later")
"""A gold mention's place among the gold mentions of its label in its sentence, in text order."""


def mention_rank(position: int, of: int) -> str:
    """The ``RANKS`` bucket of the ``position``-th (1-based) of ``of`` mentions of a label in a sentence."""
    if of == 1:
        return RANKS[0]
    return RANKS[min(position, 3)]


def recall_by_rank(gold: Sequence[Iterable[Entity]], predicted: Sequence[Iterable[Entity]]) -> dict[str, dict]:
    """Exact-span recall of the gold mentions in each ``RANKS`` bucket: ``{rank: {"gold": n, "found": n,
    "recall": r}}``. A parallel decoder decodes the k-th mention of a label in its own branch, without seeing the
    others, so its misses can gather at the later ranks where an autoregressive decoder's do not."""
    if len(gold) != len(predicted):
        raise ConfigError(f"gold and predicted must have one entry per sentence; got {len(gold)} and {len(predicted)}")
    found: Counter = Counter()
    total: Counter = Counter()
    for gold_entities, predicted_entities in zip(gold, predicted):
        keys = {_span_key("", e) for e in predicted_entities}
        by_label: dict[str, list[Entity]] = {}
        for entity in sorted(gold_entities, key=lambda e: (e.start, e.end)):
            by_label.setdefault(entity.label, []).append(entity)
        for mentions in by_label.values():
            for position, entity in enumerate(mentions, 1):
                rank = mention_rank(position, len(mentions))
                total[rank] += 1
                found[rank] += _span_key("", entity) in keys
    return {rank: {"gold": total[rank], "found": found[rank], "recall": found[rank] / total[rank]}
            for rank in RANKS if total[rank]}
