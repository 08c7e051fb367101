"""Fitting a trained FastNER model's exit gates (``padellm.baselines.exit_gates``) on held-out sentences: one pass
runs every sentence through every exit and records each exit's gate features and the counts of its entities
against the gold ones; then one logistic regression per exit learns where leaving is safe, and per F1 budget
each gate's threshold is tuned on the gates' cross-validated probabilities (``padellm.baselines.gate_budgets``).

    python eval/fit_exit_gates.py --model runs/conll2003-fastner/model      # also run by padellm finetune
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from padellm.baselines.exit_gates import (ExitGates, entity_counts, feature_count, fit_gate, gate_features,
                                          gates_from_fits, safe_to_leave)
from padellm.baselines.fastner import FastNER
from padellm.baselines.fastner_data import collate, encode_example
from padellm.baselines.gate_budgets import NEVER, outcome, tune_thresholds
from padellm.baselines.spans import decode_spans
from padellm.types import Example

BUDGETS = (0.25, 0.5, 0.75, 1.0)
"""The F1 budgets (points) that ``fit_exit_gates`` tunes per-exit thresholds for: the ``budget:D`` criteria."""


@dataclass(frozen=True)
class ExitRecords:
    """What every exit of a model does on a set of sentences."""

    features: list[torch.Tensor]
    """Per exit but the last, shallowest first: each sentence's gate features ``[n, features]``."""
    counts: torch.Tensor
    """``[n, exits, 3]``: each exit's true positives, false positives and false negatives per sentence."""
    subwords: torch.Tensor
    """``[n]``: each sentence's subword count (what its share of batched encoder time follows)."""

    @property
    def safe(self) -> torch.Tensor:
        """``[n, exits - 1]``: whether leaving at each exit but the last was safe (``safe_to_leave``)."""
        return safe_to_leave(self.counts)


def exit_records(model: FastNER, tokenizer, examples: list[Example], batch_size: int = 32, progress: bool = False
                 ) -> ExitRecords:
    """Run ``examples`` through every exit of ``model``."""
    from tqdm.auto import tqdm

    exits = model.num_layers - 1
    features: list[list[torch.Tensor]] = [[] for _ in range(exits)]
    counts: list[list[tuple[int, int, int]]] = []
    encoded = [encode_example(ex, tokenizer, model.config) for ex in examples]
    with torch.inference_mode():
        for start in tqdm(range(0, len(encoded), batch_size), desc="exit gates: every exit", unit="batch",
                          disable=not progress):
            chunk = encoded[start : start + batch_size]
            batch = collate(chunk, tokenizer.pad_token_id, with_gold=False)
            words = batch.num_words.tolist()
            hidden = model.layers.embed(batch.input_ids)
            attention = model.layers.attention(hidden, batch.attention_mask)
            decoded = []
            for index in range(model.num_layers):
                hidden = model.layers.layer(index, hidden, attention)
                if index < exits:
                    features[index].append(gate_features(hidden, batch.attention_mask).float())
                probabilities = model.exit_probabilities(index, hidden, batch.attention_mask, batch.word_index,
                                                         batch.num_words)
                decoded.append([{span[:3] for span in decode_spans(probabilities[row], words[row],
                                                                   model.config.max_width, model.config.nested)}
                                for row in range(len(chunk))])
            for row, item in enumerate(chunk):
                gold = {(first, last, label) for (first, last), label in item.gold.items()}
                counts.append([entity_counts(decoded[index][row], gold) for index in range(model.num_layers)])
    width = feature_count(model.encoder.config.hidden_size)
    return ExitRecords([torch.cat(parts) if parts else torch.zeros(0, width) for parts in features],
                       torch.tensor(counts, dtype=torch.long).reshape(len(encoded), model.num_layers, 3),
                       torch.tensor([len(item.input_ids) for item in encoded], dtype=torch.long))


def fit_exit_gates(model: FastNER, tokenizer, examples: list[Example], data: str,
                   budgets: tuple[float, ...] = BUDGETS, progress: bool = False) -> ExitGates:
    """Fit the gates of ``model`` on ``examples`` (named ``data`` in their report), tune their thresholds for
    each F1 budget of ``budgets``, and attach them to the model."""
    records = exit_records(model, tokenizer, examples, progress=progress)
    safe = records.safe
    fitted = [fit_gate(x, safe[:, index]) for index, x in enumerate(records.features)]
    gates = gates_from_fits(model.encoder.config.hidden_size, fitted, data)
    held_out = (torch.stack([gate.held_out for gate in fitted], 1) if fitted
                else torch.zeros(len(examples), 0))
    full = outcome(held_out, records.counts, records.subwords, [NEVER] * len(fitted), gate_cost=0.0)  # no gates
    tuned = []
    for budget in budgets:
        thresholds, result = tune_thresholds(held_out, records.counts, records.subwords, budget)
        gates.budgets[float(budget)] = thresholds
        tuned.append({"max_drop": budget, "thresholds": list(thresholds), **asdict(result)})
    gates.report["budgets"] = {"full_model": asdict(full), "cost": "encoder layers per subword, relative to the "
                               "full model", "probabilities": "cross-validated", "tuned": tuned}
    model.gates = gates
    return gates
