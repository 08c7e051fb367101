"""The training sequence every format builds and every trainer batches: token ids, the token to predict at each
position (``IGNORE``: no loss), loss weights, and for tree-packed sequences the segment tree that lets each token
attend only to its own path.

Positions whose label is ``IGNORE`` carry no loss: the text and the label are given at inference, so the model is
never trained to produce them. Which sequences an example becomes is its format's business (``padellm.formats``).
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100
"""Label of positions without loss (PyTorch's cross-entropy ``ignore_index``)."""


@dataclass(frozen=True)
class TrainingSequence:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    """Token to predict **at** each position (the input token itself; the model shifts), or ``IGNORE``."""
    kind: str
    """``count``, ``mention``, ``count+mention``, ``tree`` or ``autoregressive``."""
    segments: tuple[int, ...] | None = None
    """Tree-packed sequences only: the segment of each token. A token attends to the earlier tokens of its
    own segment and of that segment's ancestors, and nothing else."""
    parents: tuple[int, ...] | None = None
    """Tree-packed sequences only: the parent segment of each segment (-1 for the root)."""
    weights: tuple[float, ...] | None = None
    """Loss weight of each token (None: 1 wherever there is a loss)."""

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.labels):
            raise ValueError(f"{len(self.input_ids)} input ids but {len(self.labels)} labels")
        if self.weights is not None and len(self.weights) != len(self.input_ids):
            raise ValueError(f"{len(self.input_ids)} input ids but {len(self.weights)} loss weights")
        if self.segments is not None:
            if self.parents is None or len(self.segments) != len(self.input_ids):
                raise ValueError("a tree-packed sequence needs one segment per token and a parent per segment")
            # The first token of a segment is predicted from the last token of its parent segment (see
            # ``loss_sources``): the root has none, so it may not start with a token that carries a loss.
            if self.labels[0] != IGNORE:
                raise ValueError(f"token 0 starts the root segment {self.segments[0]} and carries a loss")

    def loss_sources(self) -> list[tuple[int, int]]:
        """``(source, target)`` position pairs: the hidden state at ``source`` predicts the token at ``target``.
        Normally ``source = target - 1``; in a tree, the first token of a segment is predicted from the last
        token of its parent segment, which is what precedes it on its own path."""
        last: dict[int, int] = {}
        pairs = []
        for t, label in enumerate(self.labels):
            if label != IGNORE:
                starts_segment = self.segments is not None and (t == 0 or self.segments[t - 1] != self.segments[t])
                pairs.append((last[self.parents[self.segments[t]]] if starts_segment else t - 1, t))
            if self.segments is not None:
                last[self.segments[t]] = t
        return pairs

    def position_ids(self) -> list[int]:
        """Position of each token on its own path (0, 1, ... for plain sequences)."""
        if self.segments is None:
            return list(range(len(self.input_ids)))
        end: dict[int, int] = {}
        positions = []
        for segment in self.segments:
            if segment not in end:
                parent = self.parents[segment]
                end[segment] = end[parent] if parent >= 0 else 0
            positions.append(end[segment])
            end[segment] += 1
        return positions

    def ancestors(self, segment: int) -> set[int]:
        found = {segment}
        while self.parents[segment] >= 0:
            segment = self.parents[segment]
            found.add(segment)
        return found

    @property
    def loss_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)

    @property
    def loss_weight(self) -> float:
        """The sum of the loss weights: what a batch's loss is averaged over."""
        if self.weights is None:
            return float(self.loss_tokens)
        return float(sum(w for w, label in zip(self.weights, self.labels) if label != IGNORE))


def concatenated(pieces: list[tuple[list[int], float]], kind: str) -> TrainingSequence:
    """Concatenate ``(ids, loss weight)`` pieces (weight 0: no loss)."""
    ids: list[int] = []
    labels: list[int] = []
    weights: list[float] = []
    for piece, weight in pieces:
        ids += piece
        labels += piece if weight else [IGNORE] * len(piece)
        weights += [float(weight)] * len(piece)
    return TrainingSequence(tuple(ids), tuple(labels), kind,
                            weights=None if all(w in (0.0, 1.0) for w in weights) else tuple(weights))


class TreeBuilder:
    """Builds one tree-packed sequence: each ``add`` appends a segment under its parent (-1: the root). The shared
    trunk of several sequences (a text's prompt prefix, a label's part) is then computed once, and each token gets
    the hidden state it would get in its own sequence."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.labels: list[int] = []
        self.weights: list[float] = []
        self.segments: list[int] = []
        self.parents: list[int] = []

    def add(self, pieces: list[tuple[list[int], float]], parent: int) -> int:
        """A segment made of ``(ids, loss weight)`` pieces (weight 0: no loss); returns its number."""
        segment = len(self.parents)
        self.parents.append(parent)
        for piece, weight in pieces:
            self.ids.extend(piece)
            self.labels.extend(piece if weight else [IGNORE] * len(piece))
            self.weights.extend([float(weight)] * len(piece))
            self.segments.extend([segment] * len(piece))
        return segment

    def sequence(self) -> TrainingSequence:
        plain = all(w in (0.0, 1.0) for w in self.weights)
        return TrainingSequence(tuple(self.ids), tuple(self.labels), "tree", tuple(self.segments), tuple(self.parents),
                                None if plain else tuple(self.weights))
