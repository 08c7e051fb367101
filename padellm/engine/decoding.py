"""PaDeLLM parallel decoding and the autoregressive baseline over any generation backend.

Parallel: stage 1 sends one count prompt per (text, label) in one batched request; stage 2 one mention prompt
per (text, label, k <= count) in one batched request, each starting with its stage-1 prompt token for token
(prefix caching on vLLM); stage 3 de-duplicates; alignment turns strings into character spans. A count-free
template has no stage 1: rounds of branches answer "the k-th mention, or none" (``branch_steps``). Each stage's
prompt building and reading is a pure function. The decoders themselves do no I/O: they yield the backend calls
they need (``DecodeSteps``), so the blocking library and the asynchronous server drive the same code.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field

from padellm.prompts.encoding import PromptEncoder
from padellm.engine.align import Mention, align, occurrences
from padellm.engine.backend import Generation, GenerationBackend
from padellm.engine.dedup import STRATEGIES, dedup
from padellm.errors import ConfigError, InvalidRequestError, bound_problems, one_of_problem
from padellm.types import Entity

logger = logging.getLogger(__name__)


COUNT_RULES = ("greedy", "argmax", "quantile")


@dataclass(frozen=True)
class DecodeConfig:
    max_count: int = 10
    """Counts above this are clamped to it (and counted in the stats)."""
    max_mention_tokens: int = 32
    """Longest mention a branch may generate, in tokens."""
    max_autoregressive_tokens: int = 192
    """Longest output of a sequence that writes several mentions, in tokens: the autoregressive decoder's, and a
    label-wise template's branch (all of one label's mentions)."""
    dedup: str = "paper"
    """De-duplication strategy: paper (a string keeps its most probable label) or none."""
    count_rule: str = "argmax"
    """Stage 1: greedy (the paper: generate the count's digits up to the newline), argmax (one forward step, the
    most likely digit: the same counts from 0 to 9 without the newline's decode step) or quantile (one step:
    the count_quantile of the digit distribution)."""
    count_quantile: float = 0.5
    """With count_rule quantile: the smallest count whose cumulative probability reaches this. Above 0.5
    trades precision for recall when a model under-counts."""
    none_bias: float = 0.0
    """Count-free templates: added to the logit of the none answer before each branch's greedy choice. Below 0
    a branch answers none only when the model is surer of it, which trades precision for recall when the
    branches say none too often (padellm tune chooses it on dev data). Decoders without a none answer ignore it,
    as those without a count stage ignore count_rule."""
    end_bias: float = 0.0
    """Label-wise templates: added to the logit of EOS before each greedy choice of a label's branch. Below 0 a
    branch ends its list of mentions only when the model is surer of it, which trades precision for recall when
    the branches stop long lists early (padellm tune chooses it on dev data with --end-biases). Other decoders
    ignore it (in a one-mention branch EOS ends the mention itself)."""
    branch_window: int = 0
    """Count-free templates: branches per label and round (k .. k+window-1 of every open label); 0: the
    template's window, the one training wrote none answers for. A label with n mentions takes
    ceil((n + 1) / window) rounds, each a prefill and a decode, so a wider window saves the rounds that only learn
    that the last mention was the last, for more branches per round."""
    stop_at_repeat: bool = False
    """Count-free templates: a branch that writes a string absent from the text, or one its label has already
    found as often as it occurs in the text, closes its label as a none answer would (the mention is dropped
    at alignment either way). A model that loops on one mention then stops instead of running to max_count."""

    def __post_init__(self) -> None:
        problems = []
        if self.count_rule not in COUNT_RULES:
            problems.append(one_of_problem("count_rule", COUNT_RULES, self.count_rule))
        if not 0 < self.count_quantile < 1:
            problems.append(f"count_quantile must be in (0, 1); got {self.count_quantile}")
        problems += bound_problems(self,
                                   at_least_one=("max_count", "max_mention_tokens", "max_autoregressive_tokens"))
        if self.branch_window < 0:
            problems.append(f"branch_window must be >= 0 (0: the template's window); got {self.branch_window}")
        for name in ("none_bias", "end_bias"):
            if not -100 <= getattr(self, name) <= 100:
                problems.append(f"{name} must be in [-100, 100] (a logit offset); got {getattr(self, name)}")
        if self.dedup not in STRATEGIES:
            problems.append(one_of_problem("dedup", STRATEGIES, self.dedup))
        if problems:
            raise ConfigError(problems)


@dataclass
class DecodeResult:
    """Entities per text, with timings (seconds) per stage and counts of what happened."""

    entities: list[list[Entity]]
    timings: dict[str, float] = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)
    counts: list[dict[str, int]] = field(default_factory=list)
    """Parallel decoding: the count stage's answer per text, ``{label: count}`` (empty for autoregressive)."""


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


# ------------------------------------------------------------------ pure stages (no model calls)
def count_prompts(texts: list[str], encoder: PromptEncoder, labels: tuple[str, ...] | None = None) -> list[list[int]]:
    """Stage 1's prompts: one per (text, label), texts outer, labels (default: the label set) inner."""
    labels = encoder.label_set.labels if labels is None else labels
    return [encoder.count_prompt(text, label) for text in texts for label in labels]


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


def merge(texts: list[str], mentions: list[list[Mention]], strategy: str) -> tuple[list[list[Entity]], Counter]:
    """Stage 3: de-duplicate each text's mentions, then align them to character spans."""
    entities, stats = [], Counter()
    for text, found in zip(texts, mentions):
        kept = dedup(found, strategy)
        stats["dedup_removed"] += len(found) - len(kept)
        spans, dropped = align(text, kept)
        stats["unaligned_mentions"] += dropped
        entities.append(spans)
    return entities, stats


def prompt_stats(stage: str, prompts, generations: list[Generation]) -> Counter:
    """``{stage}_prompt_tokens`` and ``{stage}_cached_tokens``: the prompt tokens a stage sent and how many of
    them the engine's prefix cache served instead of computing."""
    return Counter({f"{stage}_prompt_tokens": sum(len(p) for p in prompts),
                    f"{stage}_cached_tokens": sum(g.cached_tokens for g in generations)})


# ------------------------------------------------------------------------------- the decoders
@dataclass(frozen=True)
class GenerateCall:
    """One batched backend call a decoder needs: ``backend.generate(prompts, **arguments)``."""

    prompts: list[list[int]]
    arguments: dict


DecodeSteps = Generator[GenerateCall, list[Generation], DecodeResult]
"""A decoder written without I/O: it yields the backend calls it needs, is sent their generations, and returns
its result. ``run_steps`` drives it on a blocking backend, ``run_steps_async`` on an asynchronous one (the
server's), so both run the very same decoding code."""


def run_steps(steps: DecodeSteps, backend: GenerationBackend) -> DecodeResult:
    try:
        call = next(steps)
        while True:
            call = steps.send(backend.generate(call.prompts, **call.arguments))
    except StopIteration as done:
        return done.value


async def run_steps_async(steps: DecodeSteps, backend) -> DecodeResult:
    """As ``run_steps``, awaiting ``backend.generate``; cancelling the caller cancels the backend call."""
    try:
        call = next(steps)
        while True:
            call = steps.send(await backend.generate(call.prompts, **call.arguments))
    except StopIteration as done:
        return done.value


def check_labels(labels: tuple[str, ...] | None, encoder: PromptEncoder) -> tuple[str, ...]:
    """The labels to decode: all of the adapter's (None) or the given subset, in the adapter's order."""
    known = encoder.label_set.labels
    if labels is None:
        return known
    for index, label in enumerate(labels):
        if label not in known:
            raise InvalidRequestError(f"labels[{index}]", label, f"not one of the adapter's labels {list(known)}")
    return tuple(label for label in known if label in labels)


def given_count_list(given: list[dict[str, int]], num_texts: int, labels: tuple[str, ...]) -> list[int]:
    """Counts stated by the caller, ``{label: count}`` per text, in stage 1's order (texts outer, labels inner);
    a label a text's mapping leaves out counts 0."""
    if len(given) != num_texts:
        raise ConfigError(f"counts: {len(given)} mappings for {num_texts} texts")
    return [int(given[index].get(label, 0)) for index in range(num_texts) for label in labels]


def counts_per_text(stated: list[int], labels: tuple[str, ...], num_texts: int) -> list[dict[str, int]]:
    """Counts in stage 1's order (texts outer, labels inner) as ``{label: count}`` per text."""
    return [dict(zip(labels, stated[i * len(labels) : (i + 1) * len(labels)])) for i in range(num_texts)]


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


def branch_arguments(encoder: PromptEncoder, config: DecodeConfig, max_new_tokens: int) -> dict:
    """A count-free call's generation arguments: its token limit and, with ``none_bias``, the bias on the none
    answer's first token; with ``end_bias`` and a label-wise template, the bias on EOS."""
    arguments: dict = {"max_new_tokens": max_new_tokens}
    bias = {encoder.none_target()[0]: config.none_bias} if config.none_bias else {}
    if config.end_bias and encoder.parallel.labelwise:
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
    arguments = branch_arguments(encoder, config, config.max_mention_tokens)
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
    arguments = branch_arguments(encoder, config, config.max_autoregressive_tokens)
    generations = (yield GenerateCall(prompts, arguments)) if prompts else []
    mentions, read_stats = read_label_sequences(generations, encoder, labels, config.max_count)
    stats.update(read_stats)
    if prompts:
        stats.update(branch_call_stats(prompts, generations))
    result.timings["branches_s"] = time.perf_counter() - started
    return finish_count_free(result, texts, mentions, labels, config)


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


def decode_steps(texts: list[str], encoder: PromptEncoder, config: DecodeConfig = DecodeConfig(),
                 labels: tuple[str, ...] | None = None, counts: list[dict[str, int]] | None = None) -> DecodeSteps:
    """The decoder the encoder's template was trained for (``counts``: parallel decoding only, see
    ``parallel_steps``)."""
    if encoder.template.mode == "parallel" and not encoder.parallel.has_count_stage:
        if counts is not None:
            raise ConfigError(f"counts: template {encoder.template.name!r} is count-free; it has no count stage")
        if encoder.parallel.labelwise:
            return label_steps(texts, encoder, config, labels)
        return branch_steps(texts, encoder, config, labels)
    if encoder.template.mode == "parallel":
        return parallel_steps(texts, encoder, config, labels, counts)
    if counts is not None:
        raise ConfigError("counts: only parallel decoding has a count stage")
    return autoregressive_steps(texts, encoder, config, labels)


def decode_parallel(texts: list[str], encoder: PromptEncoder, backend: GenerationBackend,
                    config: DecodeConfig = DecodeConfig(), labels: tuple[str, ...] | None = None,
                    counts: list[dict[str, int]] | None = None) -> DecodeResult:
    return run_steps(parallel_steps(texts, encoder, config, labels, counts), backend)


def decode_autoregressive(texts: list[str], encoder: PromptEncoder, backend: GenerationBackend,
                          config: DecodeConfig = DecodeConfig(), labels: tuple[str, ...] | None = None) -> DecodeResult:
    return run_steps(autoregressive_steps(texts, encoder, config, labels), backend)


def decode(texts: list[str], encoder: PromptEncoder, backend: GenerationBackend,
           config: DecodeConfig = DecodeConfig(), labels: tuple[str, ...] | None = None) -> DecodeResult:
    """Decode with the strategy the encoder's template was trained for."""
    return run_steps(decode_steps(texts, encoder, config, labels), backend)
