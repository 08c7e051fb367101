"""How well a parallel system's count stage counts: per label, how often the stated count equals the gold number
of mentions, falls short of it or exceeds it, and the distribution of the errors (stated - gold)."""

from __future__ import annotations

from collections import Counter

from padellm.types import Example


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
