"""Learned exit gates for FastNER: a sentence leaves at the first exit whose gate says that the rest of the encoder
would not improve its entities, and only then does that exit's span scorer run.

FastNER's own criteria (``exit_criteria``) read the span distributions an exit produced, so every exit a sentence
passes pays for its head: on MiniLM-L6 about half a layer. A gate reads the layer's hidden states instead: per
exit, a logistic regression over the sentence's mean- and max-pooled states and its length (one dot product with
``2 x hidden + 1`` features) estimates the probability that leaving here is **safe**, i.e. that this exit's
entities have no fewer true positives and no more false positives than the last exit's (so leaving cannot lower
any count that the micro F1 is made of). The idea of learning when to exit is BERxiT's (Xin et al., EACL 2021); the label and the
features here are this project's.

Gates are fitted after training, with the encoder and the heads frozen, on held-out sentences (the dev split:
on the training split the exits' mistakes are rarer than on unseen text); ``fit_gate`` is L2-regularised logistic
regression on standardised features (the strength chosen by cross-validation on the same sentences), folded back
into one weight vector and bias per exit. Besides one threshold for every gate (``gate:T``), the gates carry
per-exit thresholds tuned on the same sentences for F1 budgets (``budget:D``, ``gate_budgets``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from padellm.errors import ConfigError

GATES_FILE = "exit_gates.safetensors"
GATES_REPORT = "exit_gates.json"


def gate_features(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``[batch, 2 * hidden + 1]``: the mean and the element-wise maximum of each sentence's hidden states over its
    real subwords (``attention_mask`` 1), and the log of their number (longer sentences have more to get wrong)."""
    mask = attention_mask[..., None].bool()
    weights = mask.to(hidden.dtype)
    length = weights.sum(1)
    mean = (hidden * weights).sum(1) / length.clamp(min=1)
    peak = hidden.masked_fill(~mask, torch.finfo(hidden.dtype).min).amax(1)
    return torch.cat([mean, peak, length.log1p()], -1)


def feature_count(hidden: int) -> int:
    return 2 * hidden + 1


def entity_counts(predicted: set, gold: set) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of one sentence's ``predicted`` entities."""
    hits = len(predicted & gold)
    return hits, len(predicted) - hits, len(gold) - hits


def safe_to_leave(counts: torch.Tensor) -> torch.Tensor:
    """Per sentence and exit but the last, ``[n, exits - 1]`` booleans, from each exit's ``entity_counts``
    ``[n, exits, 3]``: whether the exit's entities are at least as good as the last exit's on every count of the
    micro F1 (no fewer true positives, no more false positives, hence no more false negatives either)."""
    last = counts[:, -1:]
    return (counts[:, :-1, 0] >= last[..., 0]) & (counts[:, :-1, 1] <= last[..., 1])


@dataclass(frozen=True)
class GateFit:
    """What fitting one exit's gate saw and achieved."""

    sentences: int
    safe_rate: float
    """Share of the sentences for which leaving at this exit was safe."""
    accuracy: float
    """Share of them the fitted gate classifies right at probability 0.5."""
    l2: float
    """The L2 strength chosen by cross-validation."""


L2_CHOICES = (0.01, 0.1, 1.0)


def _logistic(z: torch.Tensor, y: torch.Tensor, l2: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of an L2-regularised logistic regression of ``y`` on standardised ``z`` (LBFGS)."""
    weight = torch.zeros(z.shape[1], dtype=z.dtype, requires_grad=True)
    bias = torch.zeros((), dtype=z.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z @ weight + bias, y) + l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def cross_validate(z: torch.Tensor, y: torch.Tensor, choices: tuple[float, ...], folds: int, steps: int
                   ) -> tuple[float, torch.Tensor | None]:
    """The L2 strength of ``choices`` with the lowest held-out log loss over ``folds`` interleaved folds, and for
    it each sentence's held-out logit ``[n]`` (from the fit on the other folds); None for the logits when there
    are too few sentences to cross-validate (the first choice is then taken)."""
    if len(z) < 2 * folds:
        return choices[0], None
    fold = torch.arange(len(z)) % folds
    best: tuple[float, float, torch.Tensor] | None = None
    for l2 in choices:
        logits = torch.empty(len(z), dtype=z.dtype)
        for k in range(folds):
            weight, bias = _logistic(z[fold != k], y[fold != k], l2, steps)
            logits[fold == k] = z[fold == k] @ weight + bias
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum").item()
        if best is None or loss < best[0]:
            best = (loss, l2, logits)
    return best[1], best[2]


@dataclass(frozen=True)
class FittedGate:
    weight: torch.Tensor
    """``[features]``, in the units of the raw features (the standardisation it was fitted with folded in)."""
    bias: torch.Tensor
    fit: GateFit
    held_out: torch.Tensor
    """``[n]``: each sentence's probability from the gate fitted without its fold (cross-validation), what an
    unseen sentence would get; the in-sample probability where there were too few sentences to cross-validate."""


def fit_gate(features: torch.Tensor, safe: torch.Tensor, l2: tuple[float, ...] = L2_CHOICES, folds: int = 5,
             steps: int = 100) -> FittedGate:
    """Logistic regression of ``safe`` ``[n]`` (booleans) on ``features`` ``[n, f]``, its L2 strength chosen among
    ``l2`` by ``folds``-fold cross-validation on the same sentences."""
    x = features.double()
    y = safe.double()
    mean, scale = x.mean(0), x.std(0).clamp(min=1e-6) if len(x) > 1 else torch.ones(x.shape[1], dtype=x.dtype)
    z = (x - mean) / scale
    strength, held_out = cross_validate(z, y, tuple(l2), folds, steps)
    weight, bias = _logistic(z, y, strength, steps)
    raw_weight = weight / scale
    raw_bias = bias - (mean * raw_weight).sum()
    logits = x @ raw_weight + raw_bias
    accuracy = ((logits > 0) == safe.bool()).double().mean().item() if len(x) else 0.0
    fit = GateFit(len(x), round(y.mean().item(), 4) if len(x) else 0.0, round(accuracy, 4), strength)
    return FittedGate(raw_weight.float(), raw_bias.float(), fit,
                      torch.sigmoid(logits if held_out is None else held_out).float())


class ExitGates(nn.Module):
    """One gate per exit except the last (where every sentence leaves)."""

    def __init__(self, hidden: int, exits: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(exits, feature_count(hidden)), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(exits), requires_grad=False)
        self.budgets: dict[float, tuple[float, ...]] = {}
        """Per F1 budget (points), each gate's threshold tuned for it on the held-out sentences (``gate_budgets``):
        the ``budget`` criterion's operating points."""
        self.report: dict = {}
        """How the gates were fitted (data, each exit's ``GateFit``, the tuned budgets), saved beside them."""

    @property
    def exits(self) -> int:
        return self.weight.shape[0]

    def thresholds(self, config) -> tuple[float, ...]:
        """Each gate's threshold under the exit ``config`` (criterion ``gate``: its threshold at every exit;
        ``budget``: those tuned for its F1 budget)."""
        if config.criterion == "gate":
            return (config.threshold,) * self.exits
        for budget, thresholds in self.budgets.items():
            if math.isclose(budget, config.threshold):
                return thresholds
        tuned = ", ".join(f"budget:{budget:g}" for budget in self.budgets) or "none"
        raise ConfigError(f"exit criterion budget:{config.threshold:g}: these exit gates have thresholds tuned for "
                          f"{tuned}; `python eval/fit_exit_gates.py --model MODEL_DIR --budgets "
                          f"{config.threshold:g}` tunes them")

    def probability(self, index: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[batch]``: the probability that leaving at exit ``index`` (0-based) is safe for each sentence."""
        features = gate_features(hidden, attention_mask).to(self.weight.dtype)
        return torch.sigmoid(features @ self.weight[index] + self.bias[index])

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        tensors = {"weight": self.weight.detach().contiguous(), "bias": self.bias.detach().contiguous()}
        if self.budgets:
            tensors["budgets"] = torch.tensor(list(self.budgets), dtype=torch.float64)
            tensors["thresholds"] = torch.tensor(list(self.budgets.values()), dtype=torch.float64)
        save_file(tensors, folder / GATES_FILE)
        (folder / GATES_REPORT).write_text(json.dumps(self.report, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> ExitGates | None:
        """The gates saved in ``folder``, or None when it has none."""
        from safetensors.torch import load_file

        path = Path(folder) / GATES_FILE
        if not path.is_file():
            return None
        tensors = load_file(path)
        gates = cls((tensors["weight"].shape[1] - 1) // 2, tensors["weight"].shape[0])
        gates.weight.data.copy_(tensors["weight"])
        gates.bias.data.copy_(tensors["bias"])
        if "budgets" in tensors:
            gates.budgets = {budget: tuple(row) for budget, row in zip(tensors["budgets"].tolist(),
                                                                       tensors["thresholds"].tolist())}
        report = Path(folder) / GATES_REPORT
        gates.report = json.loads(report.read_text()) if report.is_file() else {}
        return gates


def gates_from_fits(hidden: int, fitted: list[FittedGate], data: str) -> ExitGates:
    """The gates of the fitted exits, shallowest first; their report names ``data`` and each exit's fit."""
    gates = ExitGates(hidden, len(fitted))
    for index, gate in enumerate(fitted):
        gates.weight.data[index] = gate.weight
        gates.bias.data[index] = gate.bias
    gates.report = {"data": data, "features": "mean and max of the hidden states, log length", "label": "safe_to_leave",
                    "exits": [asdict(gate.fit) for gate in fitted]}
    return gates
