"""The label-wise format: a label has one branch, which writes all its mentions in text order joined by the
template's separator (one token), then EOS, or the none marker when it has none. Labels are decoded in parallel and
a label's mentions one after another, so a later mention sees the earlier ones, and a text takes one round of one
sequence per label. Templates: ``padellm-en-labelwise-v1``, ``padellm-zh-labelwise-v1`` (the shipped adapters).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import ClassVar

from padellm.engine.align import Mention
from padellm.engine.backend import Generation
from padellm.engine.decoding import DecodeConfig, DecodeResult, DecodeSteps, GenerateCall, check_labels
from padellm.formats.base import Call
from padellm.formats.branches import (BranchFormat, Targets, branch_arguments, branch_call_stats, count_prompts,
                                      finish_count_free, target_sequences)
from padellm.formats.training_sequence import TrainingSequence
from padellm.prompts.encoding import PromptEncoder, mentions_by_label
from padellm.types import Example
from padellm.formats.count_free import count_stage_settings, no_counts


def labelwise_targets(example: Example, encoder: PromptEncoder, none_weight: float = 1.0) -> Targets:
    """Per label, its one branch (k = 1): all its mentions (weight 1), or the none marker (``none_weight``)."""
    return {label: [(1, encoder.label_target(mentions), 1.0 if mentions else none_weight)]
            for label, mentions in mentions_by_label(example, encoder.label_set.labels).items()}


def read_label_sequences(generations: list[Generation], encoder: PromptEncoder, labels: tuple[str, ...],
                         max_count: int) -> tuple[list[list[Mention]], Counter]:
    """Label-wise format: each label branch's mentions (its output split at the separator token, each piece's
    log-probability the sum over its tokens), the first ``max_count`` of them. A branch that ran out of tokens
    loses its last piece, which may be cut short."""
    separator = encoder.separator_id()
    found: list[list[Mention]] = []
    stats: Counter = Counter()
    for index, generation in enumerate(generations):
        pieces: list[list[int]] = [[]]
        scores: list[float] = [0.0]
        for token, logprob in zip(generation.token_ids, generation.logprobs):
            if token == separator:
                pieces.append([])
                scores.append(0.0)
            else:
                pieces[-1].append(token)
                scores[-1] += logprob
        if not generation.finished:
            pieces.pop()
            scores.pop()
        mentions = []
        for ids, logprob in zip(pieces, scores):
            text = encoder.decode(ids)
            if encoder.parallel.is_none(text):
                if text.strip():
                    break  # the none marker: no (further) mention
                continue
            mentions.append(Mention(labels[index % len(labels)], encoder.parallel.parse_mention(text),
                                    len(mentions) + 1, logprob))
        if len(mentions) > max_count:
            stats["clamped_counts"] += 1
            mentions = mentions[:max_count]
        found.append(mentions)
    return found, stats


def label_steps(texts: list[str], encoder: PromptEncoder, config: DecodeConfig = DecodeConfig(),
                labels: tuple[str, ...] | None = None) -> DecodeSteps:
    """PaDeLLM over labels (a label-wise template): one batched call with one branch per (text, label), each
    writing all its label's mentions in text order, or none. A label's count is the number of mentions its branch
    wrote. ``branch_window`` and ``stop_at_repeat`` do not apply (there are no rounds)."""
    labels = check_labels(labels, encoder)
    result = DecodeResult([])
    stats = result.stats

    started = time.perf_counter()
    prompts = [encoder.branch_prompt(prompt, 1) for prompt in count_prompts(texts, encoder, labels)]
    arguments = branch_arguments(encoder, config, config.max_autoregressive_tokens, Labelwise.biases)
    generations = (yield GenerateCall(prompts, arguments)) if prompts else []
    mentions, read_stats = read_label_sequences(generations, encoder, labels, config.max_count)
    stats.update(read_stats)
    if prompts:
        stats.update(branch_call_stats(prompts, generations))
    result.timings["branches_s"] = time.perf_counter() - started
    return finish_count_free(result, texts, mentions, labels, config)


def labelwise_calls(example: Example, encoder: PromptEncoder) -> list[Call]:
    """One call: every label's branch writes the label's mentions in text order, or none."""
    prompts = [encoder.count_prompt(example.text, label) for label in encoder.label_set.labels]
    targets = [encoder.label_target(m) for m in mentions_by_label(example, encoder.label_set.labels).values()]
    return [(prompts, targets)]


class Labelwise(BranchFormat):
    """One branch per label writes all its mentions, or none."""

    name: ClassVar[str] = "labelwise"
    biases: ClassVar[tuple[str, ...]] = ("none_bias", "end_bias")
    caps_mentions: ClassVar[bool] = True

    def training_sequences(self, example: Example, encoder: PromptEncoder, data) -> list[TrainingSequence]:
        return target_sequences(example, encoder, labelwise_targets(example, encoder, data.none_weight), data.pack)

    def training_problems(self, data, prompt: str) -> list[str]:
        return count_stage_settings(data, prompt)

    def longest_target(self, examples: list[Example], encoder: PromptEncoder) -> int:
        return max((len(encoder.label_target(mentions)) for ex in examples
                    for mentions in mentions_by_label(ex, encoder.label_set.labels).values()), default=0)

    def steps(self, texts: list[str], encoder: PromptEncoder, config: DecodeConfig,
              labels: tuple[str, ...] | None = None, counts: list[dict[str, int]] | None = None) -> DecodeSteps:
        no_counts(counts, encoder)
        return label_steps(texts, encoder, config, labels)

    def tokens_needed(self, text: str, encoder: PromptEncoder, config: DecodeConfig) -> int:
        return (self.label_prompt_tokens(text, encoder) + len(encoder.mention_marker(1))
                + config.max_autoregressive_tokens)

    def gold_calls(self, example: Example, encoder: PromptEncoder) -> list[Call]:
        return labelwise_calls(example, encoder)
