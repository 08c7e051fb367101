"""Mention strings -> character spans in the text: the one place where generated strings meet offsets."""

from __future__ import annotations

from dataclasses import dataclass

from padellm.types import Entity


@dataclass(frozen=True)
class Mention:
    """A generated mention: ``k`` is its 1-based rank among its label's mentions of one text."""

    label: str
    text: str
    k: int
    logprob: float | None
    """Sum of the branch's token log-probabilities (None when the decoder has none per mention)."""


def occurrences(text: str, mention: str) -> list[int]:
    """Every start of ``mention`` in ``text``, overlapping ones too ("aa" is twice in "aaa")."""
    starts, position = [], text.find(mention)
    while position >= 0:
        starts.append(position)
        position = text.find(mention, position + 1)
    return starts


def align(text: str, mentions: list[Mention]) -> tuple[list[Entity], int]:
    """Spans for ``mentions`` and how many were dropped because the string is not in the text.

    A label's mentions come in text order (``k``: by start, then end, as training orders them), so the k-th takes
    the first occurrence of its string that comes after the span the (k-1)-th took: "Paris ... Paris" predicted
    twice as LOC gives both spans, and in nested text ("IL-2 receptor ... IL-2") a later "IL-2" is not placed
    inside the earlier mention. Where the order is broken (no occurrence after the previous span), the first
    occurrence not yet taken by the label. Once every occurrence is taken, a further prediction of the same
    string is a duplicate and is dropped with the absent ones.
    """
    entities: list[Entity] = []
    taken: set[tuple[int, int, str]] = set()
    previous: dict[str, tuple[int, int]] = {}
    dropped = 0
    for mention in sorted(mentions, key=lambda m: (m.label, m.k)):
        if not mention.text:
            dropped += 1
            continue
        spans = [(start, start + len(mention.text)) for start in occurrences(text, mention.text)]
        free = [span for span in spans if (*span, mention.label) not in taken]
        after = [span for span in free if span > previous.get(mention.label, (-1, -1))]
        if not free:
            dropped += 1
            continue
        start, end = (after or free)[0]
        taken.add((start, end, mention.label))
        previous[mention.label] = (start, end)
        entities.append(Entity(start, end, mention.label, score=mention.logprob))
    return sorted(entities), dropped
