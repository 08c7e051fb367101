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


def _occurrences(text: str, mention: str) -> list[int]:
    starts, position = [], text.find(mention)
    while position >= 0:
        starts.append(position)
        position = text.find(mention, position + 1)
    return starts


def align(text: str, mentions: list[Mention]) -> tuple[list[Entity], int]:
    """Spans for ``mentions`` and how many were dropped because the string is not in the text.

    The k-th prediction of a string repeated under one label takes that string's k-th unused occurrence, so
    "Paris ... Paris" predicted twice as LOC gives both spans. Once every occurrence is taken, a further
    prediction of the same string is a duplicate and is dropped with the absent ones.
    """
    entities: list[Entity] = []
    used: dict[tuple[str, str], int] = {}
    dropped = 0
    for mention in sorted(mentions, key=lambda m: (m.label, m.k)):
        if not mention.text:
            dropped += 1
            continue
        starts = _occurrences(text, mention.text)
        index = used.get((mention.label, mention.text), 0)
        if index >= len(starts):
            dropped += 1
            continue
        used[(mention.label, mention.text)] = index + 1
        start = starts[index]
        entities.append(Entity(start, start + len(mention.text), mention.label, score=mention.logprob))
    return sorted(entities), dropped
