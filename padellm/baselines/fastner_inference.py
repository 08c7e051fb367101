"""FastNER on examples: predicted entities (``predict_examples``), and the speed and F1 of its exits and early-exit
criteria on one set of sentences (``prepare_batches``, ``measure``, ``operating_point``).

For measurement, sentences are encoded and batched once, outside the clock; each measured pass runs the model
(layer by layer, exits, early exit) and turns spans into entities. Speed-up is the full model's wall time over the early-exit
wall time at the same batch size, on the same sentences, after a warm-up pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from padellm.baselines.exit_criteria import ExitConfig
from padellm.baselines.fastner import Batch, FastNER
from padellm.baselines.fastner_data import Encoded, collate, encode_example
from padellm.baselines.spans import to_entities
from padellm.metrics import score
from padellm.types import Example


@dataclass(frozen=True)
class Pass:
    f1: float
    """Micro span F1, %."""
    seconds: float
    mean_exit: float
    """Average exit layer (1-based)."""


def predict_examples(model: FastNER, tokenizer, examples: list[Example], exit_config: ExitConfig = ExitConfig(),
                     layers: int | None = None, batch_size: int = 32):
    """(entities per example, exit layer per example), in the examples' order."""
    entities, exits = [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        encoded: list[Encoded] = [encode_example(ex, tokenizer, model.config) for ex in chunk]
        predictions = model.predict(collate(encoded, tokenizer.pad_token_id, with_gold=False), exit_config, layers)
        for example, prediction in zip(chunk, predictions):
            entities.append(to_entities(prediction.spans, example.token_spans, model.config.labels))
            exits.append(prediction.exit_layer)
    return entities, exits


def prepare_batches(model: FastNER, tokenizer, examples: list[Example], batch_size: int) -> list[tuple[list[Example], Batch]]:
    """Batches of similar lengths (sorted by subword count), the examples of each beside it."""
    encoded = [encode_example(ex, tokenizer, model.config) for ex in examples]
    order = sorted(range(len(examples)), key=lambda i: len(encoded[i].input_ids))
    return [([examples[i] for i in chunk], collate([encoded[i] for i in chunk], tokenizer.pad_token_id, with_gold=False))
            for chunk in (order[s : s + batch_size] for s in range(0, len(order), batch_size))]


def measure(model: FastNER, batches: list[tuple[list[Example], Batch]], exit_config: ExitConfig = ExitConfig(),
            layers: int | None = None) -> Pass:
    """One timed pass over ``batches``; F1 against the examples' gold entities."""
    texts, gold, predicted, exits = [], [], [], []
    started = time.perf_counter()
    with torch.inference_mode():
        for examples, batch in batches:
            for example, prediction in zip(examples, model.predict(batch, exit_config, layers)):
                predicted.append(to_entities(prediction.spans, example.token_spans, model.config.labels))
                exits.append(prediction.exit_layer)
    seconds = time.perf_counter() - started
    for examples, _ in batches:
        texts += [ex.text for ex in examples]
        gold += [list(ex.entities) for ex in examples]
    f1 = 100 * score(texts, gold, predicted, "span").micro.f1
    return Pass(round(f1, 2), seconds, sum(exits) / max(1, len(exits)))


def operating_point(full: Pass, passes: dict[str, Pass], max_drop: float = 1.0) -> tuple[str, float] | None:
    """The early-exit setting with the largest speed-up whose F1 is within ``max_drop`` points of ``full``."""
    eligible = [(full.seconds / p.seconds, name) for name, p in passes.items() if p.f1 >= full.f1 - max_drop]
    if not eligible:
        return None
    speed_up, name = max(eligible)
    return name, speed_up
