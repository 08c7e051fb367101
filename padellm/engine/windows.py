"""Documents of any length: split a text that does not fit the engine into windows that do, decode the windows as
one batch, and map what they found back to the document's character offsets.

Windows end on sentence boundaries where there are any (a sentence ends at ``.``, ``!``, ``?``, their CJK forms,
or a line break; not at the period of an abbreviation such as ``U.S.``, ``J.`` or ``Mr.`` or of an ordinal
(``6.``), nor where the next word starts in lower case) and on whitespace inside a sentence that is itself too
long (at a character where a text has none, e.g. Chinese). Consecutive windows overlap by ``overlap`` sentences,
so that a mention near a cut is seen whole in one of them; each window owns the document from the middle of its
overlap with the previous window to the middle of its overlap with the next, and keeps the mentions that start
there, so a mention found twice is kept once. Each function here is pure; ``window_steps`` wraps a decoder.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from padellm.engine.decoding import DecodeResult, DecodeSteps
from padellm.errors import InvalidRequestError
from padellm.types import Entity

_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)|[。！？；]|\n+")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)+")  # U.S., e.g., J.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr gen col lt sgt capt gov sen rep rev mt ft inc corp co ltd bros no nos vs etc approx "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split())
"""Words whose period does not end a sentence (compared without the period, in lower case)."""


@dataclass(frozen=True)
class Window:
    """``text[start:end]`` is decoded; the window keeps the mentions that start in ``[own_start, own_end)``."""

    start: int
    end: int
    own_start: int
    own_end: int


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The sentences of ``text`` as half-open spans that tile it (each takes the whitespace after it)."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.group().startswith(".") and not _ends_sentence(text, match.start(), match.end()):
            continue
        end = match.end()
        while end < len(text) and text[end].isspace():
            end += 1
        if end > start:
            spans.append((start, end))
            start = end
    if start < len(text):
        spans.append((start, len(text)))
    merged: list[tuple[int, int]] = []
    for start, end in spans:  # a piece with no letter or digit (a closing quote) joins the sentence before it
        if merged and not any(c.isalnum() for c in text[start:end]):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _ends_sentence(text: str, period: int, end: int) -> bool:
    """Whether the period at ``text[period]`` (closing quotes or brackets up to ``end``, then whitespace) ends a
    sentence."""
    word = text[: period + 1].rsplit(None, 1)[-1].lstrip("\"'([{")
    if _INITIALS.fullmatch(word) or word[:-1].lower() in ABBREVIATIONS or word[:-1].isdigit():  # "6. Ludwig"
        return False
    following = text[end:].lstrip()
    return not (following and following[0].islower())


def split_long(text: str, start: int, end: int, fits: Callable[[str], bool]) -> list[tuple[int, int]]:
    """``text[start:end]`` in pieces that each ``fit``, cut at whitespace where the piece has any (else anywhere):
    the longest fitting piece first, then the rest."""
    pieces = []
    while start < end:
        if fits(text[start:end]):
            pieces.append((start, end))
            break
        low, high = start + 1, end  # the longest prefix that fits: binary search on its end
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(text[start:middle]) else (low, middle - 1)
        if not fits(text[start:low]):
            raise InvalidRequestError("text", text[start : start + 80], "not even one character fits the engine's "
                                      "context beside the prompt; raise max_model_len")
        cut = text.rfind(" ", start + 1, low + 1)
        cut = cut + 1 if cut > start else low
        pieces.append((start, cut))
        start = cut
    return pieces


def plan_windows(text: str, fits: Callable[[str], bool], overlap: int = 1,
                 within: Callable[[str], bool] | None = None) -> list[Window]:
    """Windows that cover ``text``, each fitting (``fits(window text)``: the engine's hard limit), overlapping by
    ``overlap`` pieces (sentences, or pieces of a sentence too long to fit whole). ``within``: a softer bound on a
    window of several pieces (the size the model was trained on); one piece that fits is a window even past it."""
    def grows(candidate: str) -> bool:
        return fits(candidate) and (within is None or within(candidate))

    if grows(text):
        return [Window(0, len(text), 0, len(text))]
    pieces = [piece for start, end in sentence_spans(text)
              for piece in ([(start, end)] if fits(text[start:end]) else split_long(text, start, end, fits))]
    spans: list[tuple[int, int]] = []  # (first piece, last piece + 1) of each window
    first = 0
    while first < len(pieces):
        last = first + 1
        while last < len(pieces) and grows(text[pieces[first][0] : pieces[last][1]]):
            last += 1
        spans.append((first, last))
        if last == len(pieces):
            break
        first = max(first + 1, last - overlap)  # the next window repeats the last ``overlap`` pieces
    windows = []
    for index, (first, last) in enumerate(spans):
        start, end = pieces[first][0], pieces[last - 1][1]
        own_start = 0 if index == 0 else (start + windows[-1].end) // 2
        own_end = len(text) if index == len(spans) - 1 else (pieces[spans[index + 1][0]][0] + end) // 2
        windows.append(Window(start, end, own_start, own_end))
    return windows


def merge_windows(windows: list[Window], found: list[list[Entity]]) -> list[Entity]:
    """The document's entities: each window's, shifted to document offsets, where they start in the part the window
    owns; the same span and label found twice is kept once."""
    kept: dict[tuple[int, int, str], Entity] = {}
    for window, entities in zip(windows, found):
        for entity in entities:
            start, end = window.start + entity.start, window.start + entity.end
            if window.own_start <= start < window.own_end:
                kept.setdefault((start, end, entity.label), Entity(start, end, entity.label, entity.score))
    return sorted(kept.values())


def window_steps(texts: list[str], windows: list[list[Window]],
                 decode: Callable[[list[str]], DecodeSteps]) -> DecodeSteps:
    """Decode every window of every text in one batch (``decode``: the format's decoder over a list of texts) and
    return a result per text, as the decoder would for texts that fit: entities, counts per label, the decoder's
    timings and statistics, and ``windows`` (the number decoded beyond one per text)."""
    flat = [text[w.start : w.end] for text, plan in zip(texts, windows) for w in plan]
    inner: DecodeResult = yield from decode(flat)
    result = DecodeResult([], dict(inner.timings), Counter(inner.stats))
    result.stats["windows"] += len(flat) - len(texts)
    position = 0
    for plan in windows:
        entities = merge_windows(plan, inner.entities[position : position + len(plan)])
        result.entities.append(entities)
        if inner.counts:
            found = Counter(e.label for e in entities)
            result.counts.append({label: found[label] for label in inner.counts[position]})
        position += len(plan)
    return result
