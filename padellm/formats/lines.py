"""The autoregressive baseline in its compact format: one prompt per text naming every label, one target listing
every entity present as a ``label: mention`` line in text order, then EOS. Templates: ``autoregressive-en-v1``,
``autoregressive-zh-v1``. The paper's structured format (``padellm.formats.structured``) decodes the same way.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import ClassVar

from padellm.engine.align import Mention, align
from padellm.engine.decoding import DecodeConfig, DecodeResult, DecodeSteps, GenerateCall, check_labels, prompt_stats
from padellm.errors import ConfigError
from padellm.formats.base import Call, DecodingFormat
from padellm.formats.training_sequence import TrainingSequence, concatenated
from padellm.prompts.encoding import PromptEncoder
from padellm.types import Example


def autoregressive_mentions(example: Example, encoder: PromptEncoder) -> list[tuple[str, str]]:
    """``(label, mention)`` of the example's entities of the encoder's labels, in text order."""
    labels = set(encoder.label_set.labels)
    return [(e.label, e.mention(example.text)) for e in sorted(example.entities, key=lambda e: (e.start, e.end))
            if e.label in labels]


def autoregressive_sequence(example: Example, encoder: PromptEncoder) -> TrainingSequence:
    """The baseline's one sequence: prompt, then every ``label: mention`` in text order, then EOS."""
    target = encoder.autoregressive_target(autoregressive_mentions(example, encoder))
    return concatenated([(encoder.autoregressive_prompt(example.text), 0), (target, 1)], "autoregressive")


def autoregressive_steps(texts: list[str], encoder: PromptEncoder, config: DecodeConfig = DecodeConfig(),
                         labels: tuple[str, ...] | None = None) -> DecodeSteps:
    """The baseline: one sequence per text listing every entity (``labels``: keep only these)."""
    labels = check_labels(labels, encoder)
    result = DecodeResult([[] for _ in texts])
    names = list(encoder.label_set.names)
    started = time.perf_counter()
    prompts = [encoder.autoregressive_prompt(t) for t in texts]
    generations = (yield GenerateCall(prompts, {"max_new_tokens": config.max_autoregressive_tokens})) if texts else []
    result.timings["generate_s"] = time.perf_counter() - started
    result.stats["sequences"] += len(texts)
    result.stats["generated_tokens"] += sum(g.num_tokens for g in generations)
    result.stats.update(prompt_stats("prompt", prompts, generations))
    result.stats["unfinished_sequences"] += sum(1 for g in generations if not g.finished)

    started = time.perf_counter()
    for index, (text, generation) in enumerate(zip(texts, generations)):
        pairs, bad = encoder.autoregressive.parse(encoder.decode(list(generation.token_ids)), names)
        result.stats["unparsable_lines"] += bad
        seen: Counter = Counter()
        mentions = []
        for name, mention in pairs:
            label = encoder.label_set.label(name)
            if label not in labels:
                continue
            seen[(label, mention)] += 1
            mentions.append(Mention(label, mention, seen[(label, mention)], None))
        result.entities[index], dropped = align(text, mentions)
        result.stats["unaligned_mentions"] += dropped
    result.timings["align_s"] = time.perf_counter() - started
    result.timings["total_s"] = sum(result.timings.values())
    return result


class Lines(DecodingFormat):
    """One sequence per text lists its entities, one ``label: mention`` line each."""

    name: ClassVar[str] = "lines"
    system: ClassVar[str] = "autoregressive"

    def training_sequences(self, example: Example, encoder: PromptEncoder, data) -> list[TrainingSequence]:
        return [autoregressive_sequence(example, encoder)]

    def longest_target(self, examples: list[Example], encoder: PromptEncoder) -> int:
        return max((len(encoder.autoregressive_target(autoregressive_mentions(ex, encoder))) for ex in examples),
                   default=0)

    def steps(self, texts: list[str], encoder: PromptEncoder, config: DecodeConfig,
              labels: tuple[str, ...] | None = None, counts: list[dict[str, int]] | None = None) -> DecodeSteps:
        if counts is not None:
            raise ConfigError("counts: only parallel decoding has a count stage")
        return autoregressive_steps(texts, encoder, config, labels)

    def tokens_needed(self, text: str, encoder: PromptEncoder, config: DecodeConfig) -> int:
        return len(encoder.autoregressive_prompt(text)) + config.max_autoregressive_tokens

    def gold_calls(self, example: Example, encoder: PromptEncoder) -> list[Call]:
        return [([encoder.autoregressive_prompt(example.text)],
                 [encoder.autoregressive_target(autoregressive_mentions(example, encoder))])]
