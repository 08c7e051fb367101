"""What the parallel formats share: one prompt per (text, label), branches that answer in parallel, and their last
stage (de-duplicate, align, count what each label found)."""

from __future__ import annotations

import time
from collections import Counter
from typing import ClassVar

from padellm.engine.align import Mention
from padellm.engine.backend import Generation
from padellm.engine.decoding import DecodeConfig, DecodeResult, counts_per_text, merge, prompt_stats
from padellm.formats.base import DecodingFormat
from padellm.formats.training_sequence import TrainingSequence, TreeBuilder, concatenated
from padellm.prompts.encoding import PromptEncoder
from padellm.types import Example


class BranchFormat(DecodingFormat):
    """A PaDeLLM format: every label of a text is decoded in its own branches, all at once."""

    system: ClassVar[str] = "parallel"

    def label_prompt_tokens(self, text: str, encoder: PromptEncoder) -> int:
        """The longest prompt of ``text`` before its branch marker: the text part and the longest label part."""
        longest = max(len(encoder.label_part(label)) for label in encoder.label_set.labels)
        return len(encoder.text_prefix(text)) + longest


def count_prompts(texts: list[str], encoder: PromptEncoder, labels: tuple[str, ...] | None = None) -> list[list[int]]:
    """Stage 1's prompts: one per (text, label), texts outer, labels (default: the label set) inner."""
    labels = encoder.label_set.labels if labels is None else labels
    return [encoder.count_prompt(text, label) for text in texts for label in labels]




def branch_arguments(encoder: PromptEncoder, config: DecodeConfig, max_new_tokens: int,
                     biases: tuple[str, ...]) -> dict:
    """A count-free call's generation arguments: its token limit and, of the format's ``biases``, with
    ``none_bias`` the bias on the none answer's first token, with ``end_bias`` the bias on EOS."""
    arguments: dict = {"max_new_tokens": max_new_tokens}
    bias = {encoder.none_target()[0]: config.none_bias} if config.none_bias and "none_bias" in biases else {}
    if config.end_bias and "end_bias" in biases:
        bias[encoder.eos_id] = config.end_bias
    if bias:
        arguments["logit_bias"] = bias
    return arguments




def branch_call_stats(prompts: list[list[int]], generations: list[Generation]) -> Counter:
    """What one batched call of count-free branches did: one round, its branches and generated tokens, the
    branches cut by their token limit, and the prompt tokens it sent and the prefix cache served."""
    stats = Counter({"rounds": 1, "branches": len(prompts), "branch_tokens": sum(g.num_tokens for g in generations),
                     "unfinished_branches": sum(1 for g in generations if not g.finished)})
    stats.update(prompt_stats("branch", prompts, generations))
    return stats




def finish_count_free(result: DecodeResult, texts: list[str], mentions: list[list[Mention]],
                      labels: tuple[str, ...], config: DecodeConfig) -> DecodeResult:
    """The count-free decoders' last stage: ``mentions`` per (text, label) prompt, texts outer, become the counts
    (mentions found per label) and, de-duplicated and aligned, the entities of each text."""
    stated = [len(found) for found in mentions]
    result.counts = counts_per_text(stated, labels, len(texts))
    started = time.perf_counter()
    per_text: list[list[Mention]] = [[] for _ in texts]
    for index, found in enumerate(mentions):
        per_text[index // len(labels)] += found
    result.entities, merge_stats = merge(texts, per_text, config.dedup)
    result.stats.update(merge_stats)
    result.timings["dedup_align_s"] = time.perf_counter() - started
    result.timings["total_s"] = sum(result.timings.values())
    return result


def longest_mention(examples: list[Example], encoder: PromptEncoder) -> int:
    """The longest one-mention target of ``examples`` (the encoder's labels), in tokens, EOS included."""
    return max((len(encoder.mention_target(e.mention(ex.text))) for ex in examples for e in ex.entities
                if e.label in encoder.label_set.labels), default=0)


Targets = dict[str, list[tuple[int, list[int], float]]]
"""Per label, ``(k, target, loss weight)`` for each branch training sees."""


def branch_sequences(example: Example, encoder: PromptEncoder, targets: Targets) -> list[TrainingSequence]:
    """One padded sequence per (label, k): the label prompt and the mention-k marker as prompt, the target (then
    EOS) with its loss weight."""
    return [concatenated([(encoder.branch_prompt(encoder.count_prompt(example.text, label), k), 0), (target, weight)],
                         "mention")
            for label, branches in targets.items() for k, target, weight in branches]


def target_sequences(example: Example, encoder: PromptEncoder, targets: Targets, pack: bool) -> list[TrainingSequence]:
    """``targets`` as training sequences: one tree (``pack``) or one padded sequence per branch."""
    return [branch_tree(example, encoder, targets)] if pack else branch_sequences(example, encoder, targets)


def branch_tree(example: Example, encoder: PromptEncoder, targets: Targets) -> TrainingSequence:
    """``branch_sequences`` packed as one tree (root: the text part; a child per label: its label part; a grandchild
    per branch: marker and target), the same loss per token as the separate sequences."""
    tree = TreeBuilder()
    root = tree.add([(encoder.text_prefix(example.text), 0)], -1)
    for label, branches in targets.items():
        node = tree.add([(encoder.label_part(label), 0)], root)
        for k, target, weight in branches:
            tree.add([(encoder.mention_marker(k), 0), (target, weight)], node)
    return tree.sequence()
