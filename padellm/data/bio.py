"""BIO tags <-> token spans, and token <-> character offsets: the only tag code in padellm.

Token spans here are half-open ``(start_token, end_token, label)`` triples; :func:`tokens_to_entities` turns
them into character-offset :class:`~padellm.types.Entity` objects.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from padellm.types import Entity

_TAG = re.compile(r"^(?:O|([BI])-(.+))$")

SCHEMES = ("auto", "iob2", "iob1")


class TagError(ValueError):
    """A tag sequence problem at token ``index`` (the caller turns it into a file:line error)."""

    def __init__(self, index: int, reason: str):
        self.index = index
        self.reason = reason
        super().__init__(f"token {index}: {reason}")


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", None)``. Anything else raises ``ValueError``."""
    match = _TAG.match(tag)
    if match is None:
        raise ValueError(f"not a BIO tag: {tag!r} (expected O, B-LABEL or I-LABEL)")
    return (match.group(1), match.group(2)) if match.group(1) else ("O", None)


def detect_scheme(sentences: Sequence[Sequence[str]]) -> str:
    """``"iob1"`` when the tags only make sense as IOB1, else ``"iob2"``.

    IOB1 starts a chunk with ``I-`` and uses ``B-`` only between two adjacent chunks of the same type. A corpus
    with an ``I-X`` opening a chunk and every ``B-X`` directly after an ``X`` token is IOB1; a ``B-X`` that
    opens a chunk after ``O`` or another type proves IOB2 (where an opening ``I-`` is then an error).
    """
    opening_i = False
    for tags in sentences:
        previous: str | None = None
        for tag in tags:
            prefix, label = split_tag(tag)
            if prefix == "B" and previous != label:
                return "iob2"
            if prefix == "I" and previous != label:
                opening_i = True
            previous = label
    return "iob1" if opening_i else "iob2"


@dataclass(frozen=True)
class DecodedTags:
    spans: list[tuple[int, int, str]]
    repaired: list[int]
    """Indices of tokens whose ``I-`` tag opened a chunk and was read as ``B-`` (lenient IOB2 only)."""


def tags_to_spans(tags: Sequence[str], scheme: str = "iob2", strict: bool = True) -> DecodedTags:
    """Decode one sentence's tags into half-open token spans.

    ``scheme="iob1"`` reads an opening ``I-`` as a chunk start (its normal meaning in IOB1). In ``iob2`` an
    ``I-X`` that follows ``O`` or another type raises :class:`TagError` when ``strict``; otherwise it is read as
    ``B-X`` and reported in ``repaired``.
    """
    if scheme not in ("iob1", "iob2"):
        raise ValueError(f"scheme must be 'iob1' or 'iob2', got {scheme!r}")
    spans: list[tuple[int, int, str]] = []
    repaired: list[int] = []
    start: int | None = None
    current: str | None = None
    for i, tag in enumerate(tags):
        try:
            prefix, label = split_tag(tag)
        except ValueError as err:
            raise TagError(i, str(err)) from None
        continues = prefix == "I" and label == current
        if prefix == "I" and not continues and scheme == "iob2":
            if strict:
                after = "O" if current is None else f"a {current} chunk"
                raise TagError(i, f"I-{label} after {after} (no B-{label} opens this chunk in IOB2)")
            repaired.append(i)
        if continues:
            continue
        if current is not None:
            spans.append((start, i, current))
        start, current = (i, label) if prefix != "O" else (None, None)
    if current is not None:
        spans.append((start, len(tags), current))
    return DecodedTags(spans, repaired)


def spans_to_tags(length: int, spans: Sequence[tuple[int, int, str]]) -> list[str]:
    """IOB2 tags for non-overlapping half-open token spans (flat data only)."""
    tags = ["O"] * length
    for start, end, label in sorted(spans):
        if not 0 <= start < end <= length:
            raise ValueError(f"token span ({start}, {end}) out of range for {length} tokens")
        if any(t != "O" for t in tags[start:end]):
            raise ValueError(f"token span ({start}, {end}, {label}) overlaps another span: BIO cannot nest")
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
    return tags


def is_cjk(char: str) -> bool:
    """True for ideographs and the other scripts written without spaces between words."""
    name = unicodedata.name(char, "")
    return name.startswith(("CJK ", "HIRAGANA", "KATAKANA", "IDEOGRAPHIC", "FULLWIDTH", "HANGUL"))


def detect_joiner(tokens: Sequence[str]) -> str:
    """``""`` for text written without spaces (most tokens contain CJK characters), ``" "`` otherwise."""
    if not tokens:
        return " "
    cjk = sum(1 for token in tokens if any(is_cjk(c) for c in token))
    return "" if cjk * 2 > len(tokens) else " "


def join_tokens(tokens: Sequence[str], joiner: str) -> tuple[str, list[tuple[int, int]]]:
    """The text of ``tokens`` joined by ``joiner``, and each token's half-open character span in it."""
    spans: list[tuple[int, int]] = []
    position = 0
    for i, token in enumerate(tokens):
        if i:
            position += len(joiner)
        spans.append((position, position + len(token)))
        position += len(token)
    return joiner.join(tokens), spans


def tokens_to_entities(
    token_spans: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int, str]]
) -> list[Entity]:
    """Half-open token spans -> character-offset entities."""
    return [Entity(token_spans[start][0], token_spans[end - 1][1], label) for start, end, label in spans]


def entities_to_token_spans(
    token_spans: Sequence[tuple[int, int]], entities: Sequence[Entity]
) -> list[tuple[int, int, str]]:
    """Character-offset entities -> half-open token spans; an entity not on token boundaries raises."""
    starts = {start: i for i, (start, _) in enumerate(token_spans)}
    ends = {end: i + 1 for i, (_, end) in enumerate(token_spans)}
    result = []
    for entity in entities:
        if entity.start not in starts or entity.end not in ends:
            raise ValueError(f"{entity} does not start and end on token boundaries")
        result.append((starts[entity.start], ends[entity.end], entity.label))
    return result


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """A simple deterministic tokenisation for raw text: CJK characters one by one, other words and single
    punctuation marks as tokens. Used where a corpus gives text without tokens (canonical JSONL)."""
    tokens: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in _WORD.finditer(text):
        piece, offset = match.group(), match.start()
        run_start = 0
        for j, char in enumerate(piece):
            if is_cjk(char):
                if j > run_start:
                    tokens.append(piece[run_start:j])
                    spans.append((offset + run_start, offset + j))
                tokens.append(char)
                spans.append((offset + j, offset + j + 1))
                run_start = j + 1
        if run_start < len(piece):
            tokens.append(piece[run_start:])
            spans.append((offset + run_start, offset + len(piece)))
    return tokens, spans
