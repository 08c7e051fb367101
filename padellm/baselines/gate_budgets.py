"""Per-exit thresholds for FastNER's learned exit gates, tuned on held-out sentences for an F1 budget.

One threshold for every gate (``gate:T``) treats the exits alike, but they are not: the first exit's mistakes
cost more F1 than the fourth's, and a long sentence that leaves early saves more time at batch 32 than a short
one. Given, for held-out sentences, each gate's probability (from cross-validation, so as an unseen sentence
would get it), the true/false positive and false negative counts of every exit's entities, and each sentence's
subword count, ``tune_thresholds`` lowers one gate's threshold at a time, always the move that saves the most
cost per F1 point it loses, while the sentences' micro F1 stays within ``max_drop`` points of the full model's.

Cost counts encoder layers per subword (what batched time follows): a sentence leaving at exit ``e`` pays ``e``
layers, the gates it passed and one exit head, against the full model's every layer and its last head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

HEAD_COST = 0.5
"""An exit head (bypass and biaffine scorer) in encoder layers: about half a MiniLM layer (``exit_costs``)."""
GATE_COST = 0.05
"""A gate in encoder layers (``exit_costs``: 5 % of a layer at batch 1, 2 % at batch 32)."""
NEVER = 1.01
"""A threshold above every probability: that gate never opens."""
GRID = tuple(round(0.05 + 0.01 * step, 2) for step in range(95))
"""The thresholds tried for each gate: 0.05 to 0.99. Below 0.5 a gate lets a sentence leave when leaving is more
likely unsafe than safe, which pays where the exit is nearly as good as the full model (the last exits)."""


@dataclass(frozen=True)
class Outcome:
    f1: float
    """Micro F1 of the held-out sentences' entities, %."""
    cost: float
    """Encoder cost relative to the full model's (1: no saving)."""
    mean_exit: float
    """Average exit (1-based) per sentence."""


def exits_at(probabilities: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """``[..., n]``: each sentence's exit (0-based; the number of gates means the last exit) for each row of
    ``thresholds`` ``[..., gates]``: the first gate whose probability ``[n, gates]`` reaches its threshold."""
    opens = probabilities >= thresholds[..., None, :]
    last = torch.ones(opens.shape[:-1] + (1,), dtype=torch.bool)
    return torch.cat([opens, last], -1).int().argmax(-1)  # argmax returns the first of equal maxima


def outcomes(probabilities: torch.Tensor, counts: torch.Tensor, weights: torch.Tensor, thresholds: torch.Tensor,
             head_cost: float = HEAD_COST, gate_cost: float = GATE_COST) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
    """F1 (%), relative cost and mean exit (1-based), each ``[v]``, for each row of ``thresholds`` ``[v, gates]``;
    ``counts`` ``[n, exits, 3]`` are every exit's true positives, false positives and false negatives per sentence,
    ``weights`` ``[n]`` each sentence's subwords."""
    exits = counts.shape[1]
    exit = exits_at(probabilities, thresholds)  # [v, n]
    index = exit[..., None, None].expand(-1, -1, 1, 3)
    totals = counts.expand(len(thresholds), -1, -1, -1).gather(2, index).squeeze(2).sum(1).double()  # [v, 3]
    tp, fp, fn = totals.unbind(-1)
    f1 = torch.where(tp > 0, 200 * tp / (2 * tp + fp + fn).clamp(min=1), torch.zeros_like(tp))
    gates_passed = (exit + 1).clamp(max=exits - 1)
    paid = (exit + 1 + head_cost + gate_cost * gates_passed).double()
    full = weights.sum().double() * (exits + head_cost)
    cost = (paid * weights.double()).sum(-1) / full.clamp(min=1e-9)
    return f1, cost, (exit + 1).double().mean(-1)


def _outcome(probabilities: torch.Tensor, counts: torch.Tensor, weights: torch.Tensor, thresholds,
             head_cost: float, gate_cost: float) -> tuple[float, float, float]:
    """F1, cost and mean exit of one threshold per gate, unrounded."""
    row = torch.tensor([list(thresholds)], dtype=probabilities.dtype)
    f1, cost, mean_exit = outcomes(probabilities, counts, weights, row, head_cost, gate_cost)
    return f1.item(), cost.item(), mean_exit.item()


def outcome(probabilities: torch.Tensor, counts: torch.Tensor, weights: torch.Tensor, thresholds,
            head_cost: float = HEAD_COST, gate_cost: float = GATE_COST) -> Outcome:
    """``outcomes`` of one threshold per gate."""
    return Outcome(*(round(value, 4) for value in _outcome(probabilities, counts, weights, thresholds, head_cost,
                                                            gate_cost)))


def tune_thresholds(probabilities: torch.Tensor, counts: torch.Tensor, weights: torch.Tensor, max_drop: float,
                    grid: tuple[float, ...] = GRID, head_cost: float = HEAD_COST, gate_cost: float = GATE_COST
                    ) -> tuple[tuple[float, ...], Outcome]:
    """One threshold per gate (``NEVER``: it stays shut) and their outcome, with F1 at least the full model's
    minus ``max_drop`` points on these sentences. Greedy from every gate shut: each step sets one gate to a
    lower value of ``grid``, the move that saves the most cost per F1 point lost (a move that loses none: the one
    that saves most), until no move saves cost within the budget."""
    gates = probabilities.shape[1]
    current = [NEVER] * gates
    now_f1, now_cost, _ = _outcome(probabilities, counts, weights, current, head_cost, gate_cost)
    floor = now_f1 - max_drop
    while True:
        best: tuple[float, int, float, float, float] | None = None
        for gate in range(gates):
            values = [value for value in grid if value < current[gate]]
            if not values:
                continue
            trials = torch.tensor([current] * len(values), dtype=probabilities.dtype)
            trials[:, gate] = torch.tensor(values, dtype=probabilities.dtype)
            f1, cost, _ = outcomes(probabilities, counts, weights, trials, head_cost, gate_cost)
            for value, trial_f1, trial_cost in zip(values, f1.tolist(), cost.tolist()):
                saved = now_cost - trial_cost
                if trial_f1 < floor - 1e-9 or saved <= 1e-12:
                    continue
                merit = saved / max(now_f1 - trial_f1, 1e-6)
                if best is None or merit > best[0]:
                    best = (merit, gate, value, trial_f1, trial_cost)
        if best is None:
            return tuple(current), outcome(probabilities, counts, weights, current, head_cost, gate_cost)
        _, gate, value, now_f1, now_cost = best
        current[gate] = value
