"""A linear-chain CRF over BIO tags: the output layer of the distillation baseline's teacher and student (Zhou et
al., NAACL 2021, "Multi-grained knowledge distillation for named entity recognition").

Everything works in log space on padded batches: ``emissions`` ``[batch, length, tags]`` and ``mask``
``[batch, length]`` (True for real tokens, a prefix of each row). The pieces the distillation needs:

- ``log_partition`` (forward algorithm) and ``path_score``: the log-probability of any tag path;
- ``marginals`` (forward-backward): each token's tag distribution under the CRF (token-level "fuzzy" targets);
- ``k_best``: the k highest-scoring paths in order, with their log-probabilities (sequence-level targets); k = 1
  is Viterbi decoding.

Transitions that BIO forbids (``O -> I-X``, ``B-X -> I-Y``, a sentence that starts with ``I-``) get -inf, so no
decoded path is ill-formed.
"""

from __future__ import annotations

import heapq

import torch
from torch import nn

NEG_INF = -1e4  # large enough to rule a transition out, small enough to stay finite in sums


def bio_tags(labels: tuple[str, ...]) -> tuple[str, ...]:
    """``O``, then ``B-X``, ``I-X`` for each label in order."""
    return ("O", *[f"{prefix}-{label}" for label in labels for prefix in ("B", "I")])


def bio_constraints(tags: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(allowed transitions [from, to], allowed first tags)`` under IOB2."""
    size = len(tags)
    allowed = torch.ones(size, size, dtype=torch.bool)
    start = torch.ones(size, dtype=torch.bool)
    for to, tag in enumerate(tags):
        if tag.startswith("I-"):
            start[to] = False
            for source, previous in enumerate(tags):
                allowed[source, to] = previous in (f"B-{tag[2:]}", tag)
    return allowed, start


class CRF(nn.Module):
    def __init__(self, tags: tuple[str, ...]):
        super().__init__()
        self.tags = tuple(tags)
        size = len(self.tags)
        self.transitions = nn.Parameter(torch.zeros(size, size))
        self.start = nn.Parameter(torch.zeros(size))
        self.end = nn.Parameter(torch.zeros(size))
        allowed, first = bio_constraints(self.tags)
        self.register_buffer("forbidden", ~allowed, persistent=False)
        self.register_buffer("forbidden_start", ~first, persistent=False)

    def _transitions(self) -> torch.Tensor:
        return self.transitions.masked_fill(self.forbidden, NEG_INF)

    def _start(self) -> torch.Tensor:
        return self.start.masked_fill(self.forbidden_start, NEG_INF)

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-score of ``tags`` ``[batch, length]`` (padding positions ignored): ``[batch]``."""
        mask = mask.bool()
        transitions = self._transitions()
        score = self._start()[tags[:, 0]] + emissions[:, 0].gather(1, tags[:, :1]).squeeze(1)
        for t in range(1, emissions.shape[1]):
            step = transitions[tags[:, t - 1], tags[:, t]] + emissions[:, t].gather(1, tags[:, t : t + 1]).squeeze(1)
            score = score + step * mask[:, t]
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).clamp(min=0)).squeeze(1)
        return score + self.end[last]

    def _forward(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Forward log-messages ``alpha_t`` ``[batch, tags]`` for every position (carried over padding)."""
        mask = mask.bool()
        transitions = self._transitions()
        alpha = self._start() + emissions[:, 0]
        alphas = [alpha]
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], step, alpha)
            alphas.append(alpha)
        return alphas

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z of each sentence: ``[batch]``."""
        return torch.logsumexp(self._forward(emissions, mask)[-1] + self.end, dim=1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """-log p(tags) per sentence: ``[batch]``."""
        return self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """p(tag at token t) under the CRF, by forward-backward: ``[batch, length, tags]`` (padding rows: 0)."""
        mask = mask.bool()
        transitions = self._transitions()
        alphas = self._forward(emissions, mask)
        length = emissions.shape[1]
        beta = self.end.expand_as(alphas[0])
        betas = [beta] * length
        for t in range(length - 2, -1, -1):
            step = torch.logsumexp(transitions.unsqueeze(0) + (emissions[:, t + 1] + beta).unsqueeze(1), dim=2)
            # Past a sentence's last token nothing follows: its beta stays the end score until its own tokens.
            beta = torch.where(mask[:, t + 1 : t + 2], step, beta)
            betas[t] = beta
        log_z = torch.logsumexp(alphas[-1] + self.end, dim=1)
        scores = torch.stack([a + b for a, b in zip(alphas, betas)], dim=1) - log_z[:, None, None]
        return scores.exp() * mask.unsqueeze(2)

    def k_best(self, emissions: torch.Tensor, mask: torch.Tensor, k: int = 1) -> list[list[tuple[list[int], float]]]:
        """The ``k`` most probable tag paths of each sentence, best first, with their log-probabilities (fewer
        where a sentence has fewer paths). k-best Viterbi: each (token, tag) keeps its k best partial paths."""
        log_z = self.log_partition(emissions, mask).tolist()
        transitions = self._transitions().tolist()
        start, end = self._start().tolist(), self.end.tolist()
        results = []
        for row, (scores, length) in enumerate(zip(emissions.tolist(), mask.sum(1).tolist())):
            size = len(start)
            # beams[tag]: up to k (score, path) ending in tag, best first
            beams = [[(start[tag] + scores[0][tag], (tag,))] for tag in range(size)]
            for t in range(1, int(length)):
                beams = [heapq.nlargest(k, ((score + transitions[path[-1]][tag] + scores[t][tag], path + (tag,))
                                            for beam in beams for score, path in beam)) for tag in range(size)]
            best = heapq.nlargest(k, ((score + end[path[-1]], path) for beam in beams for score, path in beam))
            results.append([(list(path), score - log_z[row]) for score, path in best if score > NEG_INF / 2])
        return results

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Viterbi: the best tag path of each sentence (its real tokens only)."""
        return [paths[0][0] for paths in self.k_best(emissions, mask, 1)]
