"""What a text costs each decoder before any model runs: prompt and output lengths from the gold answers.

A decoder's latency on a small machine follows its sequential steps (per backend call, a prefill and the
forward passes of the longest sequence it generates) and its batch throughput the tokens it computes (prompts,
less what vLLM's prefix cache shares, plus every token the passes feed). Both follow from the template, the
tokenizer and the gold mentions (and, with n-gram speculation, from what the proposer would copy), so the ratio
between two formats bounds the speed-up a trained adapter can reach with them: ``eval/decode_costs.py`` prints it
per corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from padellm.formats import format_of
from padellm.prompts.encoding import PromptEncoder
from padellm.types import Example


@dataclass(frozen=True)
class TextCost:
    """One text's decoding under one template, if the model wrote the gold answer."""

    sequences: int
    """Sequences generated for the text, over all of its backend calls."""
    prompt_tokens: int
    computed_prompt_tokens: int
    """Prompt tokens left to compute when the text's prompts share whole KV-cache blocks (vLLM's prefix cache)."""
    generated_tokens: int
    """Every generated token, EOS included."""
    sequential_steps: int
    """What a single request waits for: per backend call, one step for its prefill and one per forward pass of
    its longest sequence (a pass per generated token, EOS included; fewer with speculation), summed over the
    calls that follow one another."""
    computed_generated_tokens: int
    """Tokens the forward passes after the prompt compute: one per generated token without speculation; with it,
    each pass also verifies its draft tokens, accepted or not."""


@dataclass(frozen=True)
class Speculation:
    """Prompt-lookup (n-gram) speculative decoding as vLLM 0.32 proposes: after each pass, the longest n-gram
    (``min_n``..``max_n`` tokens) that ends the context and occurs earlier in it, at its earliest occurrence,
    proposes the ``tokens`` that follow it there. ``tokens`` 0: no speculation."""

    tokens: int = 0
    max_n: int = 4
    min_n: int = 1

    def __post_init__(self) -> None:
        if self.tokens < 0 or self.min_n < 1 or self.max_n < self.min_n:
            raise ValueError(f"speculation: tokens >= 0 and 1 <= min_n <= max_n; got tokens {self.tokens}, "
                             f"min_n {self.min_n}, max_n {self.max_n}")


def propose(context: np.ndarray, speculation: Speculation) -> np.ndarray:
    """The draft tokens vLLM's n-gram proposer offers after ``context`` (prompt and tokens so far)."""
    for n in range(min(speculation.max_n, len(context) - 1), speculation.min_n - 1, -1):
        windows = np.lib.stride_tricks.sliding_window_view(context[:-1], n)  # n-grams that start before the suffix
        hits = np.flatnonzero((windows == context[-n:]).all(axis=1))
        if hits.size:
            start = int(hits[0]) + n
            return context[start : start + speculation.tokens]
    return context[:0]


def forward_passes(prompt: Sequence[int], target: Sequence[int], speculation: Speculation) -> tuple[int, int]:
    """(forward passes, tokens they compute) to generate ``target`` greedily after ``prompt``: the prefill's pass
    gives the first token; each later pass feeds the last token and the drafts, and emits the drafts that match
    the target plus one."""
    if not speculation.tokens or len(target) <= 1:
        return len(target), len(target)
    context = np.asarray([*prompt, target[0]], dtype=np.int64)
    produced, passes, computed = 1, 1, 1
    while produced < len(target):
        drafts = propose(context, speculation)
        remaining = np.asarray(target[produced:], dtype=np.int64)
        matched = drafts[: len(remaining)] == remaining[: len(drafts)]
        accepted = int(np.argmin(matched)) if not matched.all() else len(matched)
        emitted = min(accepted + 1, len(remaining))
        context = np.concatenate([context, remaining[:emitted]])
        produced, passes, computed = produced + emitted, passes + 1, computed + 1 + len(drafts)
    return passes, computed


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


def text_cost(example: Example, encoder: PromptEncoder, block: int = 32,
              speculation: Speculation = Speculation()) -> TextCost:
    """``example``'s cost under ``encoder``'s template, whatever its format (the calls it makes come from
    ``DecodingFormat.gold_calls``); with ``speculation``,
    the forward passes n-gram speculation would take if every draft matching the gold answer were accepted."""
    if block < 1:
        raise ValueError(f"block must be >= 1; got {block}")
    calls = format_of(encoder.template).gold_calls(example, encoder)
    prompts = [p for call_prompts, _ in calls for p in call_prompts]
    targets = [t for _, call_targets in calls for t in call_targets]
    passes = [[forward_passes(p, t, speculation) for p, t in zip(*call)] for call in calls]
    prompt_tokens = sum(len(p) for p in prompts)
    return TextCost(sequences=len(prompts), prompt_tokens=prompt_tokens,
                    computed_prompt_tokens=prompt_tokens - shared_block_tokens(prompts, block),
                    generated_tokens=sum(len(t) for t in targets),
                    sequential_steps=sum(1 + max(n for n, _ in call) for call in passes),
                    computed_generated_tokens=sum(c for call in passes for _, c in call))


def summarize_costs(costs: Sequence[TextCost]) -> dict:
    """Means per text, and the sequential steps' median and 95th percentile."""
    if not costs:
        raise ValueError("no texts to summarize")
    n = len(costs)
    mean = {field: sum(getattr(c, field) for c in costs) / n
            for field in ("sequences", "prompt_tokens", "computed_prompt_tokens", "generated_tokens",
                          "sequential_steps")}
    computed = [c.computed_prompt_tokens + c.computed_generated_tokens for c in costs]
    steps = [c.sequential_steps for c in costs]
    return {"texts": n, **{f"mean_{k}": round(v, 2) for k, v in mean.items()},
            "mean_computed_tokens": round(sum(computed) / n, 2),
            "sequential_steps_p50": float(np.percentile(steps, 50)),
            "sequential_steps_p95": float(np.percentile(steps, 95))}


def cost_ratios(reference: dict, other: dict) -> dict:
    """How far ``other`` can outrun ``reference``: the ratio of their mean sequential steps (a single request's
    bound when a step costs the same for one sequence as for several) and of the tokens they compute per text
    (batch throughput's bound when compute is the limit)."""
    return {"sequential_steps": round(reference["mean_sequential_steps"] / other["mean_sequential_steps"], 2),
            "computed_tokens": round(reference["mean_computed_tokens"] / other["mean_computed_tokens"], 2)}
