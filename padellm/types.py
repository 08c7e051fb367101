"""The small value types that cross every boundary in padellm.

One span convention everywhere: ``Entity(start, end, label)`` with **half-open character offsets** into the
original text (``text[start:end]`` is the mention). BIO tags exist only at the edges (corpus readers and the
seqeval cross-check); token offsets are carried by :class:`Example` for the code that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Entity:
    """One mention: ``text[start:end]`` carries entity type ``label``."""

    start: int
    end: int
    label: str
    # A model's confidence in this mention (e.g. a sequence probability). Not part of equality or hashing:
    # two systems that find the same span with the same label found the same entity.
    score: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.start, int) or not isinstance(self.end, int):
            raise TypeError(f"Entity offsets must be int, got start={self.start!r}, end={self.end!r}")
        if not 0 <= self.start < self.end:
            raise ValueError(f"Entity needs 0 <= start < end, got start={self.start}, end={self.end}")
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"Entity label must be a non-empty string, got {self.label!r}")

    def mention(self, text: str) -> str:
        """The surface string of this entity in ``text``."""
        return text[self.start : self.end]


@dataclass(frozen=True)
class Example:
    """A sentence with its tokens and gold entities.

    ``token_spans[i]`` is the half-open character span of ``tokens[i]`` in ``text``. Entities are sorted by
    ``(start, end, label)``; nested and overlapping entities are allowed.
    """

    text: str
    tokens: tuple[str, ...]
    token_spans: tuple[tuple[int, int], ...]
    entities: tuple[Entity, ...] = ()
    id: str = ""

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.token_spans):
            raise ValueError(
                f"Example {self.id!r}: {len(self.tokens)} tokens but {len(self.token_spans)} token spans"
            )
        for token, (start, end) in zip(self.tokens, self.token_spans):
            if self.text[start:end] != token:
                raise ValueError(
                    f"Example {self.id!r}: token {token!r} does not match text[{start}:{end}]="
                    f"{self.text[start:end]!r}"
                )
        for entity in self.entities:
            if entity.end > len(self.text):
                raise ValueError(
                    f"Example {self.id!r}: entity {entity} ends past the text (length {len(self.text)})"
                )
        object.__setattr__(self, "entities", tuple(sorted(self.entities)))

    def mentions(self) -> list[tuple[str, str]]:
        """``(label, mention string)`` for every entity, in text order."""
        return [(e.label, e.mention(self.text)) for e in self.entities]


def surrogate_problem(text: str) -> str | None:
    """What makes ``text`` not text, if anything: an unpaired UTF-16 surrogate (what undecodable bytes become in
    command-line arguments, or a JSON string can carry), named with its position. Every input path checks it."""
    at = next((i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff"), None)
    if at is None:
        return None
    return f"an unpaired UTF-16 surrogate (\\u{ord(text[at]):04x}) at character {at} is not text"
