"""The count-free format: no count stage. Branch k of a label is prompted with the text, the label and the
mention-k marker, and writes the k-th mention, or the none marker when the label has fewer than k mentions. The
decoder runs rounds: round 1 decodes branches 1..window of every (text, label) in one batched call; each later
round the next window of the labels whose branches all found a mention. Templates: ``padellm-en-branches-v1``,
``padellm-zh-branches-v1``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import ClassVar

from padellm.engine.align import Mention, occurrences
from padellm.engine.backend import Generation
from padellm.engine.decoding import DecodeConfig, DecodeResult, DecodeSteps, GenerateCall, check_labels
from padellm.errors import ConfigError
from padellm.formats.base import Call
from padellm.formats.branches import (BranchFormat, Targets, branch_arguments, branch_call_stats, count_prompts,
                                      finish_count_free, longest_mention, target_sequences)
from padellm.formats.training_sequence import TrainingSequence
from padellm.prompts.encoding import PromptEncoder, mentions_by_label
from padellm.types import Example


def count_free_targets(example: Example, encoder: PromptEncoder, none_weight: float = 1.0) -> Targets:
    """Per label, ``(k, target, loss weight)`` for each branch training sees: the k-th mention for k <= n (weight
    1), then the none marker for k = n+1 .. max(n+1, window) (weight ``none_weight``)."""
    window = encoder.parallel.window
    targets = {}
    for label, mentions in mentions_by_label(example, encoder.label_set.labels).items():
        found = [(k, encoder.mention_target(m), 1.0) for k, m in enumerate(mentions, start=1)]
        nones = [(k, encoder.none_target(), none_weight)
                 for k in range(len(mentions) + 1, max(len(mentions) + 1, window) + 1)]
        targets[label] = found + nones
    return targets


def read_branch_rounds(requests: list[tuple[int, int]], generations: list[Generation], encoder: PromptEncoder,
                       labels: tuple[str, ...], max_count: int, known: list[list[Mention]] | None = None,
                       texts: list[str] | None = None) -> tuple[dict[int, list[Mention]], dict[int, int], Counter]:
    """Count-free format, one round: ``requests`` are ``(label prompt index, k)`` in increasing k per prompt. Per
    prompt, the mentions found before its first none answer, and the next k to ask where every branch of the round
    found one (below ``max_count``); mentions after a none answer are dropped and counted. With ``texts``
    (``stop_at_repeat``), a mention that ``texts`` does not hold once more for its label, beyond ``known`` (the
    mentions of earlier rounds) and this round's, closes the label as a none answer does."""
    found: dict[int, list[Mention]] = {}
    closed: set[int] = set()
    last: dict[int, int] = {}
    stats: Counter = Counter()
    for (index, k), generation in zip(requests, generations):
        text = encoder.decode(list(generation.token_ids))
        last[index] = k
        if encoder.parallel.is_none(text):
            closed.add(index)
            continue
        if index in closed:
            stats["mentions_after_none"] += 1
            continue
        mention = encoder.parallel.parse_mention(text)
        if texts is not None:
            source = texts[index // len(labels)]
            before = [m.text for m in (known[index] if known else []) + found.get(index, [])].count(mention)
            if not mention or len(occurrences(source, mention)) <= before:
                stats["closed_at_repeat" if before else "closed_at_absent"] += 1
                closed.add(index)
                continue
        found.setdefault(index, []).append(Mention(labels[index % len(labels)], mention, k, generation.logprob))
    following = {}
    for index, k in last.items():
        if index in closed:
            continue
        if k >= max_count:
            stats["clamped_counts"] += 1
        else:
            following[index] = k + 1
    return found, following, stats


def branch_steps(texts: list[str], encoder: PromptEncoder, config: DecodeConfig = DecodeConfig(),
                 labels: tuple[str, ...] | None = None) -> DecodeSteps:
    """PaDeLLM without a count stage (a count-free template): round 1 decodes branches 1..window of every
    (text, label) in one batched call; each later round decodes the next window of the labels whose branches all
    found a mention. A label's count is the number of mentions found before its first none answer."""
    labels = check_labels(labels, encoder)
    result = DecodeResult([])
    stats = result.stats
    window = config.branch_window or encoder.parallel.window

    started = time.perf_counter()
    prompts = count_prompts(texts, encoder, labels)
    mentions: list[list[Mention]] = [[] for _ in prompts]
    following = {index: 1 for index in range(len(prompts))}
    arguments = branch_arguments(encoder, config, config.max_mention_tokens, CountFree.biases)
    while following:
        requests = [(index, k) for index, start in following.items()
                    for k in range(start, min(start + window, config.max_count + 1))]
        branch_prompts = [encoder.branch_prompt(prompts[index], k) for index, k in requests]
        generations = yield GenerateCall(branch_prompts, arguments)
        found, following, round_stats = read_branch_rounds(requests, generations, encoder, labels, config.max_count,
                                                           mentions, texts if config.stop_at_repeat else None)
        for index, new in found.items():
            mentions[index] += new
        stats.update(round_stats)
        stats.update(branch_call_stats(branch_prompts, generations))
    result.timings["branches_s"] = time.perf_counter() - started
    return finish_count_free(result, texts, mentions, labels, config)


def count_free_calls(example: Example, encoder: PromptEncoder) -> list[Call]:
    """The count-free branches in rounds, as ``branch_steps`` decodes them: each round opens the next ``window``
    branches of every label whose branches all found a mention; branch k writes the k-th mention or none. (No
    max_count: the gold answer's own number of mentions.)"""
    window = encoder.parallel.window
    labels = encoder.label_set.labels
    prompts = [encoder.count_prompt(example.text, label) for label in labels]
    lists = list(mentions_by_label(example, labels).values())
    calls: list[Call] = []
    following = {index: 1 for index in range(len(labels))}
    while following:
        call: Call = ([], [])
        for index, start in following.items():
            for k in range(start, start + window):
                call[0].append(encoder.branch_prompt(prompts[index], k))
                found = k <= len(lists[index])
                call[1].append(encoder.mention_target(lists[index][k - 1]) if found else encoder.none_target())
        calls.append(call)
        following = {index: start + window for index, start in following.items()
                     if start + window - 1 <= len(lists[index])}
    return calls


class CountFree(BranchFormat):
    """Branch k writes the k-th mention or none, in rounds of ``window`` branches per open label."""

    name: ClassVar[str] = "count-free"
    biases: ClassVar[tuple[str, ...]] = ("none_bias",)
    generation_limit: ClassVar[str] = "max_mention_tokens"

    def training_sequences(self, example: Example, encoder: PromptEncoder, data) -> list[TrainingSequence]:
        return target_sequences(example, encoder, count_free_targets(example, encoder, data.none_weight), data.pack)

    def training_problems(self, data, prompt: str) -> list[str]:
        return count_stage_settings(data, prompt)

    def longest_target(self, examples: list[Example], encoder: PromptEncoder) -> int:
        return longest_mention(examples, encoder)

    def steps(self, texts: list[str], encoder: PromptEncoder, config: DecodeConfig,
              labels: tuple[str, ...] | None = None, counts: list[dict[str, int]] | None = None) -> DecodeSteps:
        no_counts(counts, encoder)
        return branch_steps(texts, encoder, config, labels)

    def tokens_needed(self, text: str, encoder: PromptEncoder, config: DecodeConfig) -> int:
        return (self.label_prompt_tokens(text, encoder) + len(encoder.mention_marker(config.max_count))
                + config.max_mention_tokens)

    def gold_calls(self, example: Example, encoder: PromptEncoder) -> list[Call]:
        return count_free_calls(example, encoder)


def count_stage_settings(data, prompt: str) -> list[str]:
    """A count-free format has no count stage: ``data``'s count supervision and weights must stay at their
    defaults."""
    defaults = type(data)()
    return [f"data.{name}: the count-free prompt {prompt!r} has no count stage to weigh or supervise; got "
            f"{getattr(data, name)!r} (leave it at {getattr(defaults, name)!r})"
            for name in ("supervision", "count_weight", "zero_count_weight")
            if getattr(data, name) != getattr(defaults, name)]


def no_counts(counts: list[dict[str, int]] | None, encoder: PromptEncoder) -> None:
    if counts is not None:
        raise ConfigError(f"counts: template {encoder.template.name!r} is count-free; it has no count stage")
