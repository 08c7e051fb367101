"""The paper's format (PaDeLLM-NER, Lu et al., 2024): a count stage, then one branch per stated mention.

Stage 1 sends one count prompt per (text, label) in one batched call; stage 2 one mention prompt per (text, label,
k <= count) in one batched call, each starting with its stage-1 prompt token for token (prefix caching on vLLM);
stage 3 de-duplicates and aligns. Templates: ``padellm-en-v1``, ``padellm-zh-v1``, ``padellm-en-aligned-v1``.

Its supervision comes in two forms (``SUPERVISIONS``):

- ``paper``: the objective of the paper exactly. Every (text, label, k) is its own training sequence whose loss
  starts at the count: a label with n mentions trains its count n times (a label with none, once), and the
  ``<mention k>`` markers are in the loss. Packed as a tree, the count tokens weigh n and the markers carry a
  loss, which gives the loss of the separate sequences exactly.
- ``compact``: each count once, markers out of the loss (the markers are given at inference).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from padellm.engine.align import Mention
from padellm.engine.backend import Generation
from padellm.engine.decoding import (DecodeConfig, DecodeResult, DecodeSteps, GenerateCall, check_labels,
                                     counts_per_text, merge, prompt_stats)
from padellm.errors import ConfigError, one_of_problem
from padellm.formats.base import Call
from padellm.formats.branches import BranchFormat, count_prompts, longest_mention
from padellm.formats.training_sequence import TrainingSequence, TreeBuilder, concatenated
from padellm.prompts.encoding import PromptEncoder, mentions_by_label
from padellm.types import Example

logger = logging.getLogger(__name__)

SUPERVISIONS = ("paper", "compact")


def parse_count(encoder: PromptEncoder, token_ids: tuple[int, ...], max_count: int) -> tuple[int, str | None]:
    """The count a stage-1 generation states, clamped to ``max_count``; the second value names a repair."""
    count = encoder.parallel.parse_count(encoder.decode(list(token_ids)))
    if count is None:
        return 0, "unparsable_counts"
    if count > max_count:
        return max_count, "clamped_counts"
    return count, None


def count_from_scores(scores: tuple[float, ...], rule: str, quantile: float) -> int:
    """The count a one-step stage 1 states: ``scores`` are the log-probabilities of the digits 0..9."""
    weights = [math.exp(x) for x in scores]
    if rule == "argmax" or not any(weights):
        return max(range(len(scores)), key=lambda n: scores[n])
    total, cumulative = sum(weights), 0.0
    for count, weight in enumerate(weights):
        cumulative += weight / total
        if cumulative >= quantile:
            return count
    return len(weights) - 1


@dataclass(frozen=True)
class Branch:
    """One stage-2 request: mention ``k`` of ``label`` in text ``index``, under the stated ``count``."""

    index: int
    label: str
    k: int
    count: int
    prompt: tuple[int, ...]


def count_request(encoder: PromptEncoder, config: DecodeConfig) -> dict:
    """Stage 1's generation arguments: the digits up to the newline (greedy), or one step scoring the digits."""
    if config.count_rule == "greedy":
        newline = encoder.count_target(0)[len(encoder.encode(str(0))) :]
        return {"max_new_tokens": len(encoder.encode(str(config.max_count))) + 1, "stop_ids": tuple(newline[:1])}
    return {"max_new_tokens": 1, "score_ids": encoder.count_digit_ids()}


def read_counts(generations: list[Generation], encoder: PromptEncoder, config: DecodeConfig) -> tuple[list[int], Counter]:
    """The count of each stage-1 generation under ``config.count_rule``, and how many needed a repair
    (``unparsable_counts`` read as 0, ``clamped_counts`` cut to ``max_count``)."""
    counts, repairs = [], Counter()
    for generation in generations:
        if config.count_rule == "greedy":
            count, repair = parse_count(encoder, generation.token_ids, config.max_count)
        else:
            count = count_from_scores(generation.first_scores, config.count_rule, config.count_quantile)
            count, repair = (config.max_count, "clamped_counts") if count > config.max_count else (count, None)
        if repair:
            repairs[repair] += 1
            logger.debug("count stage: %s from %r", repair, encoder.decode(list(generation.token_ids)))
        counts.append(count)
    return counts, repairs


def build_branches(prompts: list[list[int]], counts: list[int], encoder: PromptEncoder,
                   labels: tuple[str, ...] | None = None) -> list[Branch]:
    """Stage 2's requests: for each stage-1 prompt, mentions 1..count, each prompt extending its stage-1 prompt
    (``labels``: those ``count_prompts`` was given)."""
    labels = encoder.label_set.labels if labels is None else labels
    return [Branch(i // len(labels), labels[i % len(labels)], k, count,
                   tuple(encoder.mention_prompt(prompts[i], count, k)))
            for i, count in enumerate(counts) for k in range(1, count + 1)]


def read_mentions(branches: list[Branch], generations: list[Generation], encoder: PromptEncoder,
                  num_texts: int) -> list[list[Mention]]:
    """Each text's generated mentions with their summed token log-probabilities."""
    per_text: list[list[Mention]] = [[] for _ in range(num_texts)]
    for branch, generation in zip(branches, generations):
        mention = encoder.parallel.parse_mention(encoder.decode(list(generation.token_ids)))
        per_text[branch.index].append(Mention(branch.label, mention, branch.k, generation.logprob))
    return per_text


def given_count_list(given: list[dict[str, int]], num_texts: int, labels: tuple[str, ...]) -> list[int]:
    """Counts stated by the caller, ``{label: count}`` per text, in stage 1's order (texts outer, labels inner);
    a label a text's mapping leaves out counts 0."""
    if len(given) != num_texts:
        raise ConfigError(f"counts: {len(given)} mappings for {num_texts} texts")
    return [int(given[index].get(label, 0)) for index in range(num_texts) for label in labels]


def parallel_steps(texts: list[str], encoder: PromptEncoder, config: DecodeConfig = DecodeConfig(),
                   labels: tuple[str, ...] | None = None, counts: list[dict[str, int]] | None = None) -> DecodeSteps:
    """PaDeLLM: one batched backend call per stage for all ``texts`` (``labels``: a subset to decode).
    ``counts``: ``{label: count}`` per text instead of stage 1's (e.g. the gold counts, for the F1 ceiling that
    the count stage leaves to the branches); stage 1 is then skipped."""
    labels = check_labels(labels, encoder)
    result = DecodeResult([])
    stats = result.stats

    started = time.perf_counter()
    prompts = count_prompts(texts, encoder, labels)
    if counts is None:
        generations = (yield GenerateCall(prompts, count_request(encoder, config))) if prompts else []
        stated, repairs = read_counts(generations, encoder, config)
        stats.update(repairs)
        stats["count_prompts"] += len(prompts)
        stats["count_tokens"] += sum(g.num_tokens for g in generations)
        stats.update(prompt_stats("count", prompts, generations))
    else:
        stated = given_count_list(counts, len(texts), labels)
    result.counts = counts_per_text(stated, labels, len(texts))
    result.timings["count_s"] = time.perf_counter() - started

    started = time.perf_counter()
    branches = build_branches(prompts, stated, encoder, labels)
    generations = (yield GenerateCall([list(b.prompt) for b in branches],
                                      {"max_new_tokens": config.max_mention_tokens})) if branches else []
    stats["branches"] += len(branches)
    stats["branch_tokens"] += sum(g.num_tokens for g in generations)
    stats.update(prompt_stats("branch", [b.prompt for b in branches], generations))
    stats["unfinished_branches"] += sum(1 for g in generations if not g.finished)
    result.timings["branches_s"] = time.perf_counter() - started

    started = time.perf_counter()
    result.entities, merge_stats = merge(texts, read_mentions(branches, generations, encoder, len(texts)), config.dedup)
    stats.update(merge_stats)
    result.timings["dedup_align_s"] = time.perf_counter() - started
    result.timings["total_s"] = sum(result.timings.values())
    return result


def _check_supervision(supervision: str) -> None:
    if supervision not in SUPERVISIONS:
        raise ValueError(one_of_problem("supervision", SUPERVISIONS, supervision))


def count_loss_weight(mentions: int, count_weight: float, zero_count_weight: float) -> float:
    """The loss weight of a count's tokens in one sequence: ``count_weight``, times ``zero_count_weight`` when the
    count is 0 (most (text, label) pairs state none: below 1, this evens out the bias towards "none")."""
    return count_weight * (zero_count_weight if mentions == 0 else 1.0)


def parallel_sequences(example: Example, encoder: PromptEncoder, merge_first_mention: bool = True,
                       supervision: str = "compact", count_weight: float = 1.0,
                       zero_count_weight: float = 1.0) -> list[TrainingSequence]:
    """PaDeLLM's sequences for one example, one padded sequence each: per label a count sequence (target: the
    number of mentions, 0 included) and per mention k a mention sequence (prompt + count + mention-k marker;
    target: the mention string and EOS). ``count_weight`` scales the loss of the count tokens, ``zero_count_weight``
that of the count 0 on top (see ``count_loss_weight``).

    ``supervision="paper"``: one sequence per (label, k), its loss from the count on (count, marker, mention),
    or the count alone for a label without mentions. ``"compact"``: a label's count sequence once, the mention
    sequences with the count and marker as prompt; ``merge_first_mention``: the count sequence of a label with
    mentions is a prefix of its first mention sequence, and causal attention makes the loss at each position
    independent of what follows, so the two are trained as one sequence with the same per-token losses.
    """
    _check_supervision(supervision)
    sequences = []
    for label, mentions in mentions_by_label(example, encoder.label_set.labels).items():
        prompt = encoder.count_prompt(example.text, label)
        count = encoder.count_target(len(mentions))
        weight = count_loss_weight(len(mentions), count_weight, zero_count_weight)
        if supervision == "paper":
            if not mentions:
                sequences.append(concatenated([(prompt, 0), (count, weight)], "count"))
            for k, mention in enumerate(mentions, start=1):
                sequences.append(concatenated([(prompt, 0), (count, weight), (encoder.mention_marker(k), 1),
                                            (encoder.mention_target(mention), 1)], "count+mention"))
            continue
        first = 0
        if mentions and merge_first_mention:
            pieces = [(prompt, 0), (count, weight), (encoder.mention_marker(1), 0),
                      (encoder.mention_target(mentions[0]), 1)]
            sequences.append(concatenated(pieces, "count+mention"))
            first = 1
        else:
            sequences.append(concatenated([(prompt, 0), (count, weight)], "count"))
        for k in range(first + 1, len(mentions) + 1):
            mention_prompt = encoder.mention_prompt(prompt, len(mentions), k)
            sequences.append(concatenated([(mention_prompt, 0), (encoder.mention_target(mentions[k - 1]), 1)], "mention"))
    return sequences


def parallel_tree(example: Example, encoder: PromptEncoder, supervision: str = "compact",
                  count_weight: float = 1.0, zero_count_weight: float = 1.0) -> TrainingSequence:
    """Every PaDeLLM sequence of one example packed into one tree-shaped sequence, exactly equivalent in loss to
    ``parallel_sequences`` with the same ``supervision``.

    The count and mention sequences of a text share most of their tokens: every label's prompt starts with
    the same text part, and every mention sequence of a label starts with that label's count sequence. Packed
    as a tree (root: the text part; a child per label: label part and count; a grandchild per mention: marker
    and mention) with an attention mask that lets each token see only its own path, and positions that
    continue along the path, each token gets the hidden state it would get in its own sequence. On CoNLL-2003
    the whole training split is 1.12M tokens instead of 3.43M as separate sequences (3.1x fewer). Under
    ``paper`` supervision a count stands for the n sequences that repeat it: its tokens weigh n (at least 1).
    """
    _check_supervision(supervision)
    tree = TreeBuilder()
    marker_weight = 1 if supervision == "paper" else 0
    root = tree.add([(encoder.text_prefix(example.text), 0)], -1)
    for label, mentions in mentions_by_label(example, encoder.label_set.labels).items():
        repeats = max(1, len(mentions)) if supervision == "paper" else 1
        weight = count_loss_weight(len(mentions), count_weight, zero_count_weight) * repeats
        node = tree.add([(encoder.label_part(label), 0), (encoder.count_target(len(mentions)), weight)], root)
        for k, mention in enumerate(mentions, start=1):
            tree.add([(encoder.mention_marker(k), marker_weight), (encoder.mention_target(mention), 1)], node)
    return tree.sequence()


def count_stage_calls(example: Example, encoder: PromptEncoder) -> list[Call]:
    """The paper's two stages: every label's count, read in one step (count rule argmax), then one branch per
    stated mention, all in one call."""
    labels = encoder.label_set.labels
    prompts = [encoder.count_prompt(example.text, label) for label in labels]
    one_step = [encoder.count_target(0)[:1] for _ in labels]  # its length is what counts: one pass per label
    calls: list[Call] = [(prompts, one_step)]
    branches: Call = ([], [])
    for prompt, mentions in zip(prompts, mentions_by_label(example, labels).values()):
        for k, mention in enumerate(mentions, 1):
            branches[0].append(encoder.mention_prompt(prompt, len(mentions), k))
            branches[1].append(encoder.mention_target(mention))
    return calls + ([branches] if branches[0] else [])


class Counted(BranchFormat):
    """The paper's format: a count stage, then one branch per stated mention."""

    name: ClassVar[str] = "counted"
    count_stage: ClassVar[bool] = True
    generation_limit: ClassVar[str] = "max_mention_tokens"

    def training_sequences(self, example: Example, encoder: PromptEncoder, data) -> list[TrainingSequence]:
        if data.pack:
            return [parallel_tree(example, encoder, data.supervision, data.count_weight, data.zero_count_weight)]
        return parallel_sequences(example, encoder, True, data.supervision, data.count_weight, data.zero_count_weight)

    def training_problems(self, data, prompt: str) -> list[str]:
        if data.none_weight == 1.0:
            return []
        return [f"data.none_weight: prompt {prompt!r} has a count stage, not none answers; got {data.none_weight!r} "
                f"(leave it at 1.0, or use a count-free prompt such as padellm-en-branches-v1)"]

    def longest_target(self, examples: list[Example], encoder: PromptEncoder) -> int:
        return longest_mention(examples, encoder)

    def steps(self, texts: list[str], encoder: PromptEncoder, config: DecodeConfig,
              labels: tuple[str, ...] | None = None, counts: list[dict[str, int]] | None = None) -> DecodeSteps:
        return parallel_steps(texts, encoder, config, labels, counts)

    def tokens_needed(self, text: str, encoder: PromptEncoder, config: DecodeConfig) -> int:
        branch = (len(encoder.count_target(config.max_count)) + len(encoder.mention_marker(config.max_count))
                  + config.max_mention_tokens)
        return self.label_prompt_tokens(text, encoder) + branch

    def gold_calls(self, example: Example, encoder: PromptEncoder) -> list[Call]:
        return count_stage_calls(example, encoder)
