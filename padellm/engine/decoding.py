"""What every decoder shares, whatever its format: its settings (``DecodeConfig``), its result, the backend calls it
yields, the drivers that run it on a blocking or an asynchronous backend, and its last stage (de-duplicate, align).

The decoders themselves live with their formats (``padellm.formats``). They do no I/O: they yield the backend calls
they need (``DecodeSteps``), so the blocking library and the asynchronous server drive the same code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field

from padellm.prompts.encoding import PromptEncoder
from padellm.engine.align import Mention, align
from padellm.engine.backend import Generation, GenerationBackend
from padellm.engine.dedup import STRATEGIES, dedup
from padellm.errors import ConfigError, InvalidRequestError, bound_problems, one_of_problem
from padellm.types import Entity


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
    window_tokens: int = 1
    """A text of several sentences is decoded in windows of whole sentences, grouped while a window stays within
    this many tokens; the default (1) decodes each sentence on its own, as the adapters were trained on single
    sentences. 150 CoNLL-2003 test sentences as one document (a line each): 85.43 F1 with the default against
    85.03 one by one; windows of up to 48 tokens 82.83, 128 tokens 70.43; five windows filling a 1,024-token
    context 22.15 (eval/long_document.py)."""
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
                                   at_least_one=("max_count", "max_mention_tokens", "max_autoregressive_tokens",
                                                 "window_tokens"))
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


def counts_per_text(stated: list[int], labels: tuple[str, ...], num_texts: int) -> list[dict[str, int]]:
    """Counts in stage 1's order (texts outer, labels inner) as ``{label: count}`` per text."""
    return [dict(zip(labels, stated[i * len(labels) : (i + 1) * len(labels)])) for i in range(num_texts)]

