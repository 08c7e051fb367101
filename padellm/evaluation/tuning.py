"""``padellm tune``: choose a parallel adapter's count rule on dev data and save it with the adapter.

The count stage states, per (text, label), how many mentions to decode; an under-trained count stage says "none"
too often, and a quantile of the digit distribution above 0.5 trades precision for recall. The stage is run once
with the digits' log-probabilities; every candidate rule turns them into counts, the branches decode those counts
(candidates that give the same counts share one decode), and the dev F1 picks the rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from padellm.engine.decoding import DecodeConfig, count_from_scores, count_prompts, count_request
from padellm.errors import ConfigError
from padellm.metrics import score
from padellm.types import Example

QUANTILES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
"""The quantiles ``padellm tune`` tries by default, next to argmax."""


@dataclass(frozen=True)
class Trial:
    settings: dict
    """The DecodeConfig fields this candidate sets (count_rule, count_quantile)."""
    f1: float
    precision: float
    recall: float
    mentions_stated: int


def candidates(quantiles: tuple[float, ...] = QUANTILES) -> list[dict]:
    """argmax first, then each quantile in increasing order (ties go to the earliest)."""
    return [{"count_rule": "argmax"}] + [{"count_rule": "quantile", "count_quantile": q} for q in sorted(quantiles)]


def counts_under(scores: list[tuple[float, ...]], config: DecodeConfig) -> list[int]:
    """The count each (text, label) gets under ``config``'s rule, from its digit log-probabilities."""
    return [min(count_from_scores(s, config.count_rule, config.count_quantile), config.max_count) for s in scores]


def tune_count_rule(ner, examples: list[Example], quantiles: tuple[float, ...] = QUANTILES, batch_size: int = 64,
                    progress: bool = True) -> list[Trial]:
    """Every candidate rule's dev scores (exact spans, micro) for the parallel extractor ``ner``, in
    ``candidates`` order."""
    from tqdm.auto import tqdm

    if ner.mode != "parallel":
        raise ConfigError(f"adapter {ner.name}: tuning chooses the count rule of parallel decoding; this adapter "
                          f"decodes {ner.mode}")
    if not examples:
        raise ConfigError("tune: no dev sentences to tune on")
    texts = [example.text for example in examples]
    ner.check(texts)
    encoder, labels = ner.encoder, ner.labels
    scores: list[tuple[float, ...]] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        generations = ner.backend.generate(count_prompts(chunk, encoder, labels),
                                           **count_request(encoder, dataclasses.replace(ner.decode_config,
                                                                                         count_rule="argmax")))
        scores += [g.first_scores for g in generations]
    decoded: dict[tuple[int, ...], tuple] = {}
    trials = []
    options = candidates(quantiles)
    for settings in tqdm(options, desc="count rules", disable=not progress):
        config = dataclasses.replace(ner.decode_config, **settings)
        counts = tuple(counts_under(scores, config))
        if counts not in decoded:
            predicted = []
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                given = [dict(zip(labels, counts[(start + i) * len(labels) : (start + i + 1) * len(labels)]))
                         for i in range(len(chunk))]
                predicted += ner.run(chunk, decode_config=config, counts=given).entities
            gold = [[e for e in example.entities if e.label in labels] for example in examples]
            micro = score(texts, gold, predicted).micro
            decoded[counts] = (micro.f1, micro.precision, micro.recall)
        f1, precision, recall = decoded[counts]
        trials.append(Trial(settings, f1, precision, recall, sum(counts)))
    return trials


def best_trial(trials: list[Trial]) -> Trial:
    """The highest dev F1; on a tie, the earliest candidate (argmax, then the lowest quantile)."""
    if not trials:
        raise ConfigError("tune: no candidate was tried")
    return max(trials, key=lambda t: t.f1)  # max keeps the first of equal keys
