"""Fitting a trained FastNER model's exit gates (``padellm.baselines.exit_gates``) on held-out sentences: one pass
runs every sentence through every exit, records each exit's gate features and whether leaving there was safe
(its entities against the last exit's and the gold ones), then fits one logistic regression per exit.

    python eval/fit_exit_gates.py --model runs/conll2003-fastner/model      # also run by padellm finetune
"""

from __future__ import annotations

import torch

from padellm.baselines.exit_gates import (ExitGates, feature_count, fit_gate, gate_features, gates_from_fits,
                                          safe_to_leave)
from padellm.baselines.fastner import FastNER
from padellm.baselines.fastner_data import collate, encode_example
from padellm.baselines.spans import decode_spans
from padellm.types import Example


def exit_records(model: FastNER, tokenizer, examples: list[Example], batch_size: int = 32, progress: bool = False
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per exit but the last, shallowest first: the gate features of every sentence ``[n, features]`` and
    whether leaving there was safe for it ``[n]`` (booleans)."""
    from tqdm.auto import tqdm

    exits = model.num_layers - 1
    features: list[list[torch.Tensor]] = [[] for _ in range(exits)]
    safe: list[list[bool]] = [[] for _ in range(exits)]
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
                for index in range(exits):
                    safe[index].append(safe_to_leave(decoded[index][row], decoded[-1][row], gold))
    width = feature_count(model.encoder.config.hidden_size)
    return ([torch.cat(parts) if parts else torch.zeros(0, width) for parts in features],
            [torch.tensor(flags, dtype=torch.bool) for flags in safe])


def fit_exit_gates(model: FastNER, tokenizer, examples: list[Example], data: str, progress: bool = False) -> ExitGates:
    """Fit the gates of ``model`` on ``examples`` (named ``data`` in their report) and attach them to it."""
    features, safe = exit_records(model, tokenizer, examples, progress=progress)
    fitted = [fit_gate(x, y) for x, y in zip(features, safe)]
    model.gates = gates_from_fits(model.encoder.config.hidden_size, fitted, data)
    return model.gates
