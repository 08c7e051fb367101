"""``padellm tune``: choose how a parallel adapter trades precision for recall, on dev data, and save it with the
adapter.

- **Count stage** (the paper's templates): the stage states, per (text, label), how many mentions to decode; an
  under-trained count stage says "none" too often, and a quantile of the digit distribution above 0.5 trades
  precision for recall. The stage is run once with the digits' log-probabilities; every candidate rule turns them
  into counts, the branches decode those counts (candidates that give the same counts share one decode), and the
  dev F1 picks the rule.
- **Count-free** templates: each branch answers its mention or ``none``; a negative ``none_bias`` on the none
  answer's logit makes the branches say none only when surer of it. Every candidate bias decodes the dev sample,
  and the dev F1 picks it. A label-wise template's branch writes a list of mentions, and a negative ``end_bias``
  on EOS makes it end the list only when surer: with several end biases, every (none bias, end bias) pair decodes
  the sample.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from padellm.engine.decoding import DecodeConfig
from padellm.formats import format_of
from padellm.formats.branches import count_prompts
from padellm.formats.counted import count_from_scores, count_request
from padellm.errors import ConfigError
from padellm.metrics import score
from padellm.types import Example

QUANTILES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
"""The quantiles ``padellm tune`` tries by default, next to argmax."""
NONE_BIASES = (0.0, -0.5, -1.0, -1.5, -2.0, -3.0)
"""The none biases ``padellm tune`` tries by default on a count-free adapter."""


@dataclass(frozen=True)
class Trial:
    settings: dict
    """The DecodeConfig fields this candidate sets (count_rule and count_quantile, or none_bias and maybe
    end_bias)."""
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


def untunable(adapter, decoding_format) -> None:
    """Refuse an adapter whose format has nothing to tune: no count stage and no logit bias."""
    if not decoding_format.count_stage and not decoding_format.biases:
        raise ConfigError(f"adapter {adapter}: tuning chooses how parallel decoding trades precision for recall; "
                          f"this adapter decodes in the {decoding_format.name} format, which has neither a count "
                          "stage nor a none answer")


def _tunable(ner, examples: list[Example], count_stage: bool) -> list[str]:
    """The texts to tune on, once ``ner`` is known to be a parallel extractor of the right kind."""
    untunable(ner.name, ner.format)
    if ner.format.count_stage != count_stage:
        raise ConfigError(f"adapter {ner.name}: its template {ner.encoder.template.name!r} "
                          + ("is count-free; tune its none_bias" if count_stage else "has a count stage; tune its "
                                                                                     "count rule"))
    if not examples:
        raise ConfigError("tune: no dev sentences to tune on")
    texts = [example.text for example in examples]
    ner.check(texts)
    return texts


def _dev_scores(examples: list[Example], labels: tuple[str, ...], predicted: list) -> tuple[float, float, float]:
    gold = [[e for e in example.entities if e.label in labels] for example in examples]
    micro = score([example.text for example in examples], gold, predicted).micro
    return micro.f1, micro.precision, micro.recall


def tune_count_rule(ner, examples: list[Example], quantiles: tuple[float, ...] = QUANTILES, batch_size: int = 64,
                    progress: bool = True) -> list[Trial]:
    """Every candidate rule's dev scores (exact spans, micro) for the parallel extractor ``ner``, in
    ``candidates`` order."""
    from tqdm.auto import tqdm

    texts = _tunable(ner, examples, count_stage=True)
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
            decoded[counts] = _dev_scores(examples, labels, predicted)
        f1, precision, recall = decoded[counts]
        trials.append(Trial(settings, f1, precision, recall, sum(counts)))
    return trials


def tune_biases(ner, examples: list[Example], biases: tuple[float, ...] = NONE_BIASES,
                end_biases: tuple[float, ...] = (), batch_size: int = 64, progress: bool = True) -> list[Trial]:
    """Every candidate's dev scores (exact spans, micro) for the count-free parallel extractor ``ner``: each none
    bias, or with ``end_biases`` (label-wise templates) each (none bias, end bias) pair; the smallest change first
    (ties go to the biases nearest 0)."""
    from tqdm.auto import tqdm

    texts = _tunable(ner, examples, count_stage=False)
    if end_biases and "end_bias" not in ner.format.biases:
        raise ConfigError(f"adapter {ner.name}: end biases apply to label-wise templates, whose branches end a list "
                          f"of mentions; its template {ner.encoder.template.name!r} writes one mention per branch")
    options = [{"none_bias": b} for b in sorted(dict.fromkeys(biases), key=abs)]
    if end_biases:
        options = sorted(({**o, "end_bias": e} for o in options for e in dict.fromkeys(end_biases)),
                         key=lambda o: (abs(o["none_bias"]) + abs(o["end_bias"]), abs(o["end_bias"])))
    trials = []
    for settings in tqdm(options, desc="biases", disable=not progress):
        config = dataclasses.replace(ner.decode_config, **settings)
        predicted, stated = [], 0
        for start in range(0, len(texts), batch_size):
            result = ner.run(texts[start : start + batch_size], decode_config=config)
            predicted += result.entities
            stated += sum(sum(counts.values()) for counts in result.counts)
        trials.append(Trial(settings, *_dev_scores(examples, ner.labels, predicted), stated))
    return trials


def best_trial(trials: list[Trial]) -> Trial:
    """The highest dev F1; on a tie, the earliest candidate (argmax, then the lowest quantile; for biases, the
    smallest change)."""
    if not trials:
        raise ConfigError("tune: no candidate was tried")
    return max(trials, key=lambda t: t.f1)  # max keeps the first of equal keys


@dataclass(frozen=True)
class Tuning:
    """What ``tune_adapter`` tried on which sentences, and what it chose."""

    adapter: Path
    dataset: str
    split: str
    sentences: int
    seed: int
    count_stage: bool
    trials: list[Trial]
    best: Trial
    kept: dict
    """The adapter's other decode settings (its decode.yaml less the tuned fields), kept as they were."""

    def record(self) -> dict:
        """The trials and the choice as one JSON-ready object."""
        return {"adapter": str(self.adapter), "dataset": self.dataset, "split": self.split,
                "sentences": self.sentences, "seed": self.seed, "chosen": self.best.settings,
                "trials": [{**t.settings, "f1": round(100 * t.f1, 2), "precision": round(100 * t.precision, 2),
                            "recall": round(100 * t.recall, 2), "mentions_stated": t.mentions_stated}
                           for t in self.trials]}

    def save(self, command: str) -> Path:
        """Write the chosen settings into the adapter's decode.yaml, with every trial in its comment."""
        from padellm.engine.decode_settings import write_decode_settings

        what = "count rule" if self.count_stage else "bias"
        lines = [f"Chosen by `{command}`:", f"dev F1 (exact spans) on {self.sentences} {self.dataset} {self.split} "
                 f"sentences (seed {self.seed}) per {what}:"]
        lines += [f"  {', '.join(f'{k}={v}' for k, v in t.settings.items())}: F1 {100 * t.f1:.2f} "
                  f"(P {100 * t.precision:.2f} / R {100 * t.recall:.2f}, {t.mentions_stated} mentions stated)"
                  for t in self.trials]
        return write_decode_settings(self.adapter, {**self.kept, **self.best.settings}, "\n".join(lines))


def tune_adapter(adapter: str | Path, dataset: str, split: str, sample: int, seed: int = 0,
                 quantiles: tuple[float, ...] = QUANTILES, biases: tuple[float, ...] = NONE_BIASES,
                 end_biases: tuple[float, ...] = (), backend: str = "vllm", vllm_config=None,
                 progress: bool = True) -> Tuning:
    """Decode a seeded dev sample of ``sample`` sentences under every candidate (a count-stage adapter: argmax and
    each quantile; a count-free one: each none bias, and each end bias for a label-wise one) and pick the best."""
    from padellm.data.datasets import available_splits, load_dataset
    from padellm.engine.decode_settings import read_decode_settings
    from padellm.evaluation.command import sample_indices
    from padellm.ner import load
    from padellm.prompts.templates import load_prompt

    adapter = Path(adapter)
    if split not in available_splits(dataset):
        raise ConfigError(f"split: {dataset} has no {split!r} split (it has: {', '.join(available_splits(dataset))})")
    form = format_of(load_prompt(adapter)[0])
    untunable(adapter, form)
    tuned = (("count_rule", "count_quantile") if form.count_stage
             else ("none_bias", "end_bias") if end_biases else ("none_bias",))
    examples = load_dataset(dataset, [split]).split(split)
    examples = [examples[i] for i in sample_indices(len(examples), min(sample, len(examples)), seed)]
    kept = {k: v for k, v in read_decode_settings(adapter).items() if k not in tuned}
    ner = load(adapter, backend, decode_config=DecodeConfig(**kept), vllm_config=vllm_config)
    try:
        if form.count_stage:
            trials = tune_count_rule(ner, examples, quantiles, progress=progress)
        else:
            trials = tune_biases(ner, examples, biases, end_biases, progress=progress)
    finally:
        ner.close()
    return Tuning(adapter, dataset, split, len(examples), seed, form.count_stage, trials, best_trial(trials),
                  kept)
