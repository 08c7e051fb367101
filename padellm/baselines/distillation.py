"""Multi-grained knowledge distillation for NER (Zhou et al., NAACL 2021): the losses, on CRF taggers.

The teacher's knowledge comes at two grains:

- **sequence**: its k best tag paths (k-best Viterbi), each weighted by its probability renormalised over the k;
  the student's CRF is trained on each path, weighted (``sequence_loss``);
- **token**: its marginal tag distribution at every token (forward-backward); the student's own marginals are
  pulled towards them by cross-entropy ("fuzzy" labels, ``token_loss``).

``multi_grained_loss`` mixes both with the gold loss. All losses are means over the sentences of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from padellm.baselines.crf import CRF
from padellm.errors import ConfigError

EPSILON = 1e-9


@dataclass(frozen=True)
class TeacherTargets:
    paths: torch.Tensor
    """``[batch, k, length]`` the teacher's k best tag paths (padding: 0; missing paths: weight 0)."""
    weights: torch.Tensor
    """``[batch, k]`` each path's probability renormalised over the paths kept (rows sum to 1)."""
    marginals: torch.Tensor
    """``[batch, length, tags]`` the teacher's tag distribution at each token."""


@torch.no_grad()
def teacher_targets(teacher: CRF, emissions: torch.Tensor, mask: torch.Tensor, k: int) -> TeacherTargets:
    if k < 1:
        raise ConfigError(f"k must be >= 1; got {k}")
    best = teacher.k_best(emissions, mask, k)
    paths = torch.zeros(emissions.shape[0], k, emissions.shape[1], dtype=torch.long)
    log_probs = torch.full((emissions.shape[0], k), float("-inf"))
    for row, sentence in enumerate(best):
        for rank, (path, log_prob) in enumerate(sentence):
            paths[row, rank, : len(path)] = torch.tensor(path)
            log_probs[row, rank] = log_prob
    return TeacherTargets(paths, torch.softmax(log_probs, dim=1), teacher.marginals(emissions, mask))


def sequence_loss(student: CRF, emissions: torch.Tensor, mask: torch.Tensor, targets: TeacherTargets) -> torch.Tensor:
    """Sum over the teacher's k paths of weight x the student's -log p(path), averaged over sentences."""
    batch, k, _ = targets.paths.shape
    total = torch.zeros(batch)
    for rank in range(k):
        nll = student.nll(emissions, targets.paths[:, rank], mask)
        total = total + torch.where(targets.weights[:, rank] > 0, targets.weights[:, rank] * nll, 0.0)
    return total.mean()


def token_loss(student: CRF, emissions: torch.Tensor, mask: torch.Tensor, targets: TeacherTargets) -> torch.Tensor:
    """Cross-entropy of the student's CRF marginals against the teacher's, per token, averaged over each
    sentence's tokens and then over sentences."""
    log_marginals = torch.log(student.marginals(emissions, mask) + EPSILON)
    per_token = -(targets.marginals * log_marginals).sum(-1)
    return ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def multi_grained_loss(student: CRF, emissions: torch.Tensor, mask: torch.Tensor, targets: TeacherTargets | None,
                       gold: torch.Tensor | None, gold_weight: float = 1.0, sequence_weight: float = 1.0,
                       token_weight: float = 1.0) -> torch.Tensor:
    """``gold_weight`` x gold NLL + ``sequence_weight`` x ``sequence_loss`` + ``token_weight`` x ``token_loss``
    (a term with weight 0, or without its targets, is skipped)."""
    loss = emissions.new_zeros(())
    if gold_weight and gold is not None:
        loss = loss + gold_weight * student.nll(emissions, gold, mask).mean()
    if targets is not None and sequence_weight:
        loss = loss + sequence_weight * sequence_loss(student, emissions, mask, targets)
    if targets is not None and token_weight:
        loss = loss + token_weight * token_loss(student, emissions, mask, targets)
    return loss
