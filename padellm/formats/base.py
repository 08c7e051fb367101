"""What a decoding format is: everything that differs between formats, behind one interface.

A format owns how an example becomes training sequences, how a text is decoded (the engine calls it needs and how
their answers are read back), what a decode costs from the gold answer, how many tokens a text needs, and what it
asks of the training config and of the engine. Training, the engine's callers, evaluation, ``padellm tune`` and
the CLI ask the format (``padellm.formats.format_of``); they do not branch on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from padellm.engine.decoding import DecodeConfig, DecodeSteps
from padellm.formats.training_sequence import TrainingSequence
from padellm.prompts.encoding import PromptEncoder, mentions_by_label
from padellm.types import Example

Call = tuple[list[list[int]], list[list[int]]]
"""One batched backend call: its prompts and, for each, the gold generation (EOS included)."""


class DecodingFormat(ABC):
    """One decoding format. Formats are stateless: the registry holds one instance of each."""

    name: ClassVar[str]
    """The registry key, saved as ``format`` in an adapter's ``prompt.yaml``."""
    system: ClassVar[str]
    """What the format makes of an adapter as a system: ``parallel``, ``autoregressive`` or ``structured``."""
    count_stage: ClassVar[bool] = False
    """Decoding starts with a count stage (its rule is tuned; gold counts can replace it)."""
    biases: ClassVar[tuple[str, ...]] = ()
    """The ``DecodeConfig`` logit biases the decoder applies (``padellm tune`` chooses them)."""
    generation_limit: ClassVar[str] = "max_autoregressive_tokens"
    """The ``DecodeConfig`` field that bounds the format's longest generation."""
    caps_mentions: ClassVar[bool] = False
    """One generation writes several mentions of a label, so ``max_count`` cuts what training taught."""

    # ------------------------------------------------------------------------------------------ training
    @abstractmethod
    def training_sequences(self, example: Example, encoder: PromptEncoder, data) -> list[TrainingSequence]:
        """``example``'s training sequences under ``data`` (a ``DataConfig``: pack, supervision, loss weights)."""

    def training_problems(self, data, prompt: str) -> list[str]:
        """Why ``data``'s settings do not apply to this format's ``prompt`` (none by default)."""
        return []

    @abstractmethod
    def longest_target(self, examples: list[Example], encoder: PromptEncoder) -> int:
        """The longest generation ``examples`` teach, in tokens (EOS included): what ``generation_limit`` must
        allow."""

    # ------------------------------------------------------------------------------------------ decoding
    @abstractmethod
    def steps(self, texts: list[str], encoder: PromptEncoder, config: DecodeConfig,
              labels: tuple[str, ...] | None = None, counts: list[dict[str, int]] | None = None) -> DecodeSteps:
        """The decoder (``counts``: gold counts instead of the count stage's, for formats with one)."""

    @abstractmethod
    def tokens_needed(self, text: str, encoder: PromptEncoder, config: DecodeConfig) -> int:
        """Prompt plus longest allowed generation of the longest sequence ``text`` leads to."""

    @abstractmethod
    def gold_calls(self, example: Example, encoder: PromptEncoder) -> list[Call]:
        """The backend calls decoding ``example`` makes when the model writes the gold answer (decode costs)."""


def most_mentions(examples: list[Example], encoder: PromptEncoder) -> int:
    """The most mentions one label has in one text of ``examples`` (the encoder's labels only)."""
    labels = encoder.label_set.labels
    return max((len(mentions) for ex in examples for mentions in mentions_by_label(ex, labels).values()), default=0)
