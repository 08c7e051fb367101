"""What a text costs each decoder before any model runs: prompt and output lengths from the gold answers.

A decoder's latency on a small machine follows its sequential decode steps (the longest sequence it generates
for a text) and its batch throughput the tokens it computes (prompts, less what vLLM's prefix cache shares, plus
every generated token). Both follow from the template, the tokenizer and the gold mentions, so the ratio between
two formats bounds the speed-up a trained adapter can reach with them: ``eval/decode_costs.py`` prints it per
corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from padellm.prompts.encoding import PromptEncoder, mentions_by_label
from padellm.training.sequences import autoregressive_mentions
from padellm.types import Example


@dataclass(frozen=True)
class TextCost:
    """One text's decoding under one template, if the model wrote the gold answer."""

    sequences: int
    """Sequences generated for the text (one per label for label-wise branches, one for the baseline)."""
    prompt_tokens: int
    computed_prompt_tokens: int
    """Prompt tokens left to compute when the text's prompts share whole KV-cache blocks (vLLM's prefix cache)."""
    generated_tokens: int
    """Every generated token, EOS included."""
    sequential_tokens: int
    """The longest sequence's generated tokens: the decode steps a single request waits for."""


def shared_block_tokens(prompts: Sequence[Sequence[int]], block: int) -> int:
    """Tokens of ``prompts`` that a prefix cache of ``block``-token blocks serves, the prompts arriving in order:
    a whole block is served when an earlier prompt had the same tokens up to its end. A block that ends a prompt
    is computed all the same: vLLM computes at least a prompt's last token and caches whole blocks only."""
    seen: set[tuple[int, ...]] = set()
    shared = 0
    for prompt in prompts:
        for end in range(block, len(prompt) + 1, block):
            key = tuple(prompt[:end])
            if key in seen and end < len(prompt):
                shared += block
            seen.add(key)
    return shared


def text_cost(example: Example, encoder: PromptEncoder, block: int = 32) -> TextCost:
    """``example``'s cost under ``encoder``'s template: the label-wise branches (one sequence per label) or a
    one-sequence baseline (compact or structured). Other parallel formats decode in rounds whose length depends
    on the model's own answers, so they have no gold cost; a ValueError names the template."""
    if block < 1:
        raise ValueError(f"block must be >= 1; got {block}")
    template = encoder.template
    if template.mode == "parallel":
        if not encoder.parallel.labelwise:
            raise ValueError(f"template {template.name!r}: decode costs cover the label-wise branches and "
                             "one-sequence baselines; a count stage or count-free branches decode in rounds that "
                             "depend on the model's answers")
        prompts = [encoder.count_prompt(example.text, label) for label in encoder.label_set.labels]
        targets = [encoder.label_target(mentions)
                   for mentions in mentions_by_label(example, encoder.label_set.labels).values()]
    else:
        prompts = [encoder.autoregressive_prompt(example.text)]
        targets = [encoder.autoregressive_target(autoregressive_mentions(example, encoder))]
    prompt_tokens = sum(len(p) for p in prompts)
    return TextCost(sequences=len(prompts), prompt_tokens=prompt_tokens,
                    computed_prompt_tokens=prompt_tokens - shared_block_tokens(prompts, block),
                    generated_tokens=sum(len(t) for t in targets),
                    sequential_tokens=max(len(t) for t in targets))


def _quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def summarize_costs(costs: Sequence[TextCost]) -> dict:
    """Means per text, and the sequential steps' median and 95th percentile."""
    if not costs:
        raise ValueError("no texts to summarize")
    n = len(costs)
    mean = {field: sum(getattr(c, field) for c in costs) / n
            for field in ("sequences", "prompt_tokens", "computed_prompt_tokens", "generated_tokens",
                          "sequential_tokens")}
    computed = [c.computed_prompt_tokens + c.generated_tokens for c in costs]
    steps = [c.sequential_tokens for c in costs]
    return {"texts": n, **{f"mean_{k}": round(v, 2) for k, v in mean.items()},
            "mean_computed_tokens": round(sum(computed) / n, 2),
            "sequential_tokens_p50": _quantile(steps, 0.5), "sequential_tokens_p95": _quantile(steps, 0.95)}


def cost_ratios(reference: dict, other: dict) -> dict:
    """How far ``other`` can outrun ``reference``: the ratio of their mean sequential steps (a single request's
    decode-step bound, one prefill step each added) and of the tokens they compute per text (batch throughput's
    bound when compute is the limit)."""
    return {"sequential_steps": round((reference["mean_sequential_tokens"] + 1) / (other["mean_sequential_tokens"] + 1), 2),
            "computed_tokens": round(reference["mean_computed_tokens"] / other["mean_computed_tokens"], 2)}
