"""Examples -> supervised training sequences with loss masks, for both PaDeLLM and the autoregressive baseline.

Both formats go through the same training pipeline; they differ only here, in how an example becomes
sequences. Positions whose label is ``IGNORE`` carry no loss: the text, the label and the markers are given at
inference, so the model is never trained to produce them.
"""

from __future__ import annotations

from dataclasses import dataclass

from padellm.encoding import PromptEncoder, mentions_by_label
from padellm.types import Example

IGNORE = -100
"""Label of positions without loss (PyTorch's cross-entropy ``ignore_index``)."""


@dataclass(frozen=True)
class TrainingSequence:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    """Token to predict **at** each position (the input token itself; the model shifts), or ``IGNORE``."""
    kind: str
    """``count``, ``mention``, ``count+mention`` or ``autoregressive``."""

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.labels):
            raise ValueError(f"{len(self.input_ids)} input ids but {len(self.labels)} labels")

    @property
    def loss_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def _sequence(pieces: list[tuple[list[int], bool]], kind: str) -> TrainingSequence:
    """Concatenate ``(ids, has_loss)`` pieces."""
    ids: list[int] = []
    labels: list[int] = []
    for piece, has_loss in pieces:
        ids += piece
        labels += piece if has_loss else [IGNORE] * len(piece)
    return TrainingSequence(tuple(ids), tuple(labels), kind)


def parallel_sequences(example: Example, encoder: PromptEncoder, merge_first_mention: bool = True) -> list[TrainingSequence]:
    """PaDeLLM's sequences for one example: per label, one count sequence (target: the number of mentions,
    0 included), and per mention k one mention sequence (prompt + count + mention-k marker; target: the
    mention string and EOS).

    ``merge_first_mention``: the count sequence of a label with mentions is a prefix of its first mention
    sequence, and causal attention makes the loss at each position independent of what follows, so the two are
    trained as one sequence with the same per-token losses, one prompt cheaper.
    """
    sequences = []
    for label, mentions in mentions_by_label(example, encoder.label_set.labels).items():
        prompt = encoder.count_prompt(example.text, label)
        count = encoder.count_target(len(mentions))
        first = 0
        if mentions and merge_first_mention:
            marker = encoder.mention_prompt([], len(mentions), 1)[len(count) :]
            pieces = [(prompt, False), (count, True), (marker, False), (encoder.mention_target(mentions[0]), True)]
            sequences.append(_sequence(pieces, "count+mention"))
            first = 1
        else:
            sequences.append(_sequence([(prompt, False), (count, True)], "count"))
        for k in range(first + 1, len(mentions) + 1):
            mention_prompt = encoder.mention_prompt(prompt, len(mentions), k)
            sequences.append(
                _sequence([(mention_prompt, False), (encoder.mention_target(mentions[k - 1]), True)], "mention")
            )
    return sequences


def autoregressive_sequence(example: Example, encoder: PromptEncoder) -> TrainingSequence:
    """The baseline's one sequence: prompt, then every ``label: mention`` in text order, then EOS."""
    labels = set(encoder.label_set.labels)
    mentions = [(e.label, e.mention(example.text)) for e in sorted(example.entities, key=lambda e: (e.start, e.end))
                if e.label in labels]
    return _sequence(
        [(encoder.autoregressive_prompt(example.text), False), (encoder.autoregressive_target(mentions), True)],
        "autoregressive",
    )


def build_sequences(examples: list[Example], encoder: PromptEncoder) -> list[TrainingSequence]:
    """Every training sequence of ``examples`` in the encoder's template mode."""
    if encoder.template.mode == "parallel":
        return [s for example in examples for s in parallel_sequences(example, encoder)]
    return [autoregressive_sequence(example, encoder) for example in examples]
