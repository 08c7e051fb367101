"""Word-level spans for span-based NER (the biaffine scorer of Yu, Bohnet and Poesio, ACL 2020).

A span ``(i, j)`` covers words ``i..j`` inclusive, ``i <= j < n``, at most ``max_width`` words. Gold entities come
from character offsets (``Example.entities``) through the words' character spans; decoding turns a score table
back into ``Entity`` objects. Pure functions over plain Python values and tensors: no model here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from padellm.types import Entity, Example


def enumerate_spans(num_words: int, max_width: int) -> list[tuple[int, int]]:
    """Every candidate span ``(i, j)``, ``0 <= i <= j < num_words``, ``j - i < max_width``, by start then end."""
    return [(i, j) for i in range(num_words) for j in range(i, min(num_words, i + max_width))]


@dataclass(frozen=True)
class GoldSpans:
    spans: dict[tuple[int, int], int]
    """(first word, last word) -> label index (1-based; 0 is "no entity")."""
    unaligned: int
    """Entities whose boundaries fall inside a word (they cannot be predicted at word level)."""
    too_wide: int
    """Entities longer than max_width words."""


def gold_spans(example: Example, label_index: dict[str, int], max_width: int, num_words: int | None = None) -> GoldSpans:
    """The gold entities of ``example`` as word spans. ``num_words``: words the encoder kept (truncation);
    entities past it are counted as too wide. Two entities on one span keep the first label in label order."""
    starts = {start: i for i, (start, _) in enumerate(example.token_spans)}
    ends = {end: i for i, (_, end) in enumerate(example.token_spans)}
    limit = len(example.tokens) if num_words is None else num_words
    spans: dict[tuple[int, int], int] = {}
    unaligned = too_wide = 0
    for entity in example.entities:
        i, j = starts.get(entity.start), ends.get(entity.end)
        if i is None or j is None or j < i:
            unaligned += 1
        elif j - i >= max_width or j >= limit:
            too_wide += 1
        else:
            index = label_index[entity.label]
            spans[(i, j)] = min(spans.get((i, j), index), index)
    return GoldSpans(spans, unaligned, too_wide)


def span_band(width: int, max_width: int) -> torch.Tensor:
    """``[width, width]`` booleans: True where ``(i, j)`` is a span of at most ``max_width`` words (``i <= j``)."""
    index = torch.arange(width)
    i, j = index[:, None], index[None, :]
    return (j >= i) & (j - i < max_width)


def span_mask(num_words: torch.Tensor, width: int, max_width: int) -> torch.Tensor:
    """``[batch, width, width]`` booleans: True where ``(i, j)`` is a candidate span of that sentence."""
    inside = (torch.arange(width)[None, :] < num_words[:, None])  # [batch, width]
    return span_band(width, max_width)[None] & inside[:, :, None] & inside[:, None, :]


def crossing(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Overlapping without one containing the other."""
    return (a[0] < b[0] <= a[1] < b[1]) or (b[0] < a[0] <= b[1] < a[1])


def overlapping(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def decode_spans(probabilities: torch.Tensor, num_words: int, max_width: int, nested: bool,
                 threshold: float = 0.0) -> list[tuple[int, int, int, float]]:
    """Entities of one sentence from its span label distributions ``[width, width, 1 + labels]``.

    Each candidate span takes its most probable label; spans whose best label is an entity are kept greedily by
    probability (Yu et al.): flat decoding rejects a span that overlaps a kept one, nested decoding only one
    that crosses a kept one (nesting is allowed). Returns ``(i, j, label index, probability)`` sorted by span.
    """
    best, label = probabilities[:num_words, :num_words].max(-1)
    i, j = torch.nonzero(span_band(num_words, max_width) & (label > 0) & (best > threshold), as_tuple=True)
    # One conversion to Python lists: indexing tensors element by element costs microseconds each.
    candidates = list(zip(best[i, j].tolist(), i.tolist(), j.tolist(), label[i, j].tolist()))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    kept: list[tuple[int, int, int, float]] = []
    conflict = crossing if nested else overlapping
    for probability, i, j, index in candidates:
        if not any(conflict((i, j), (k[0], k[1])) for k in kept):
            kept.append((i, j, index, probability))
    return sorted(kept)


def to_entities(spans: list[tuple[int, int, int, float]], example_spans: tuple[tuple[int, int], ...],
                labels: tuple[str, ...]) -> list[Entity]:
    """Word spans as character-offset entities (``labels[index - 1]``), scored by their probability."""
    return sorted(Entity(example_spans[i][0], example_spans[j][1], labels[index - 1], score=probability)
                  for i, j, index, probability in spans)
