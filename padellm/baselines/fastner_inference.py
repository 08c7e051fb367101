"""FastNER on examples: predicted entities (``predict_examples``), and the speed and F1 of its exits and early-exit
criteria on one set of sentences (``prepare_batches``, ``measure``, ``operating_point``), and what each part of an
exit costs against a layer (``exit_costs``).

For measurement, sentences are encoded and batched once, outside the clock; each measured pass runs the model
(layer by layer, exits, early exit) and turns spans into entities. Speed-up is the full model's wall time over the early-exit
wall time at the same batch size, on the same sentences, after a warm-up pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from padellm.baselines.exit_criteria import ExitConfig, StableLabels, leave_now
from padellm.baselines.fastner import Batch, FastNER
from padellm.baselines.fastner_data import Encoded, collate, encode_example
from padellm.baselines.spans import decode_spans, span_mask, to_entities
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


def exit_costs(model: FastNER, batches: list[tuple[list[Example], Batch]], repeats: int = 3) -> dict[str, float]:
    """Milliseconds per batch, averaged over ``batches`` and layers, of one encoder layer and of each part of an
    exit after it: the bypass, the biaffine scorer (with the softmax), a threshold criterion (entropy), the
    ``stable`` criterion, decoding every sentence's spans (what ``patience`` pays at each exit) and, for a model
    with exit gates, a gate (what the ``gate`` criterion pays at each exit but the last, instead of the rest).
    Each part is timed ``repeats`` times on the states of the real batches; the fastest time counts."""
    def timed(part: str, run):
        """``run()``'s result; its fastest of ``repeats`` times is added to ``part``'s total."""
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - started)
        totals[part] += min(times)
        calls[part] += 1
        return result

    parts = ("layer", "bypass", "scorer", "threshold_criterion", "stable_criterion", "decode")
    totals = dict.fromkeys(parts + (("gate",) if model.gates is not None else ()), 0.0)
    calls = dict.fromkeys(totals, 0)
    entropy = ExitConfig("entropy", 0.1)
    with torch.inference_mode():
        for _, batch in batches:
            hidden = model.layers.embed(batch.input_ids)
            attention = model.layers.attention(hidden, batch.attention_mask)
            width = int(batch.num_words.max())
            word_index, words = batch.word_index[:, :width], batch.num_words.tolist()
            mask = span_mask(batch.num_words, width, model.config.max_width)
            for index, head in enumerate(model.heads):
                hidden = timed("layer", lambda: model.layers.layer(index, hidden, attention))
                states = (timed("bypass", lambda: head.bypass(hidden, batch.attention_mask, word_index))
                          if head.bypass is not None
                          else torch.gather(hidden, 1, word_index[..., None].expand(-1, -1, hidden.shape[-1])))
                probabilities = timed("scorer", lambda: head.scorer(states).softmax(-1).float())
                timed("threshold_criterion", lambda: leave_now(entropy, probabilities, mask).tolist())
                timed("stable_criterion", lambda: StableLabels(1).update(probabilities, mask).tolist())
                timed("decode", lambda: [decode_spans(probabilities[row], words[row], model.config.max_width,
                                                      model.config.nested) for row in range(len(words))])
                if model.gates is not None and index < model.gates.exits:  # the last exit has no gate
                    timed("gate", lambda: model.gates.probability(index, hidden, batch.attention_mask).ge(0.5).tolist())
    return {name: round(1000 * total / max(1, calls[name]), 4) for name, total in totals.items()}
