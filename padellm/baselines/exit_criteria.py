"""Early-exit criteria for a multi-exit span model: after each exit, which sentences may stop here.

Each criterion reads the span label distributions an exit produced for a batch, ``[batch, width, width,
1 + labels]``, with the mask of candidate spans, and says per sentence whether to leave:

- ``entropy``: the normalised entropy of each span's distribution (0: certain, 1: uniform), pooled over the
  sentence's candidate spans by ``max`` (the least certain span decides) or ``mean``; leave when it is
  at most ``threshold``.
- ``confidence``: each span's highest probability, pooled by ``max`` (here: the least confident span, i.e.
  the minimum) or ``mean``; leave when it is at least ``threshold``.
- ``patience``: leave once the decoded entity set has stayed the same for ``patience`` consecutive exits.
- ``stable``: leave once every candidate span's most probable label has stayed the same for ``patience``
  consecutive exits: patience on the span labels, one tensor comparison per exit instead of decoding every
  sentence's entities at every exit (the decoding runs only where a sentence leaves).
- ``gate``: leave when the exit's learned gate (``exit_gates``), which reads the layer's hidden states and not
  the exit's spans, puts the probability that leaving is safe at ``threshold`` or above; the exit's head then
  runs for the sentences that leave only. Needs a model with fitted gates.
- ``budget``: the gates again, each with its own threshold, tuned on the held-out sentences the gates were
  fitted on for the lowest cost at which their F1 stays within ``threshold`` points of the full model's
  (``gate_budgets``).
- ``none``: never leave early (the full model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from padellm.errors import ConfigError, one_of_problem

CRITERIA = ("none", "entropy", "confidence", "patience", "stable", "gate", "budget")
STREAKS = ("patience", "stable")
"""The criteria that count consecutive exits that agree (their ``patience`` is that count)."""
POOLED = ("entropy", "confidence")
"""The criteria that pool the spans' scores into one per sentence."""
POOLINGS = ("max", "mean")
GATED = ("gate", "budget")
"""The criteria that read the model's learned exit gates."""


@dataclass(frozen=True)
class ExitConfig:
    criterion: str = "none"
    """none (the full model), entropy, confidence, patience, stable, gate or budget."""
    threshold: float = 0.0
    """entropy: leave at or below this normalised entropy; confidence: at or above this probability; gate: when
    the gate's probability that leaving is safe is at or above it; budget: the F1 points (on the gates' held-out
    sentences) that the per-exit gate thresholds were tuned to give up at most."""
    pooling: str = "max"
    """How span scores pool into one per sentence: max (the least certain span decides) or mean."""
    patience: int = 2
    """patience, stable: leave when the entities (stable: the span labels) stayed unchanged for this many
    consecutive exits."""
    min_layer: int = 1
    """No sentence leaves before this exit (1-based)."""

    def __post_init__(self) -> None:
        problems = []
        if self.criterion not in CRITERIA:
            problems.append(one_of_problem("criterion", CRITERIA, self.criterion))
        if self.pooling not in POOLINGS:
            problems.append(one_of_problem("pooling", POOLINGS, self.pooling))
        if self.criterion in POOLED + ("gate",) and not 0 <= self.threshold <= 1:
            problems.append(f"threshold must be in [0, 1] for {self.criterion}; got {self.threshold}")
        if self.criterion == "budget" and not 0 <= self.threshold <= 100:
            problems.append(f"threshold (F1 points) must be in [0, 100] for budget; got {self.threshold}")
        if self.patience < 1:
            problems.append(f"patience must be >= 1; got {self.patience}")
        if self.min_layer < 1:
            problems.append(f"min_layer must be >= 1; got {self.min_layer}")
        if problems:
            raise ConfigError(problems)

    @property
    def name(self) -> str:
        if self.criterion == "none":
            return "full model"
        if self.criterion in STREAKS:
            name = f"{self.criterion} {self.patience}"
        elif self.criterion == "gate":
            name = f"gate {self.threshold:g}"
        elif self.criterion == "budget":
            name = f"budget {self.threshold:g} (tuned gates)"
        else:
            name = f"{self.criterion} ({self.pooling}) {self.threshold:g}"
        return name + (f" from exit {self.min_layer}" if self.min_layer > 1 else "")


def _pool(values: torch.Tensor, mask: torch.Tensor, pooling: str, worst: str) -> torch.Tensor:
    """Per-sentence pooling of ``[batch, width, width]`` span values over ``mask``; ``worst`` ("max" or "min")
    is what max pooling means for this value. A sentence without candidate spans pools to the best value."""
    mask = mask.to(values.dtype)
    if pooling == "mean":
        return (values * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1)
    if worst == "max":
        return torch.where(mask.bool(), values, torch.zeros_like(values)).amax((1, 2))
    return torch.where(mask.bool(), values, torch.ones_like(values)).amin((1, 2))


def normalised_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Entropy of each distribution over the last axis, divided by its maximum (log of the class count)."""
    entropy = -(probabilities * probabilities.clamp(min=1e-12).log()).sum(-1)
    return entropy / math.log(probabilities.shape[-1])


def sentence_entropy(probabilities: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    return _pool(normalised_entropy(probabilities), mask, pooling, worst="max")


def sentence_confidence(probabilities: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    return _pool(probabilities.amax(-1), mask, pooling, worst="min")


def leave_now(config: ExitConfig, probabilities: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Booleans ``[batch]``: which sentences the entropy or confidence criterion lets leave at this exit."""
    if config.criterion == "entropy":
        return sentence_entropy(probabilities, mask, config.pooling) <= config.threshold
    if config.criterion == "confidence":
        return sentence_confidence(probabilities, mask, config.pooling) >= config.threshold
    return torch.zeros(probabilities.shape[0], dtype=torch.bool)


class StableLabels:
    """Per-sentence streaks of unchanged span labels (the most probable label of every candidate span) across
    consecutive exits, kept as tensors: ``update`` says who may leave, ``keep`` follows the batch as it shrinks."""

    def __init__(self, patience: int):
        self.patience = patience
        self.last: torch.Tensor | None = None
        self.streak: torch.Tensor | None = None

    def update(self, probabilities: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Booleans ``[batch]``: whose labels at this exit (``[batch, width, width, 1 + labels]``, candidate spans
        ``mask``) equal the last exit's for the ``patience``-th time in a row."""
        labels = torch.where(mask, probabilities.argmax(-1), 0)
        if self.last is None:
            self.streak = torch.zeros(labels.shape[0], dtype=torch.long)
        else:
            width = labels.shape[1]  # the batch may have shrunk to shorter sentences: compare the common part
            same = (self.last[:, :width, :width] == labels).flatten(1).all(1)
            self.streak = torch.where(same, self.streak + 1, 0)
        self.last = labels
        return self.streak >= self.patience

    def keep(self, rows: torch.Tensor) -> None:
        """The sentences ``rows`` (booleans) stay in the batch."""
        if self.last is not None:
            self.last, self.streak = self.last[rows], self.streak[rows]


class Patience:
    """Per-sentence streaks of unchanged decoded entity sets across consecutive exits."""

    def __init__(self, batch_size: int, patience: int):
        self.patience = patience
        self.last: list[object] = [None] * batch_size
        self.streak = [0] * batch_size

    def update(self, sentence: int, decoded) -> bool:
        """Record ``sentence``'s entities at this exit; True once they stayed the same ``patience`` times."""
        self.streak[sentence] = self.streak[sentence] + 1 if decoded == self.last[sentence] else 0
        self.last[sentence] = decoded
        return self.streak[sentence] >= self.patience
