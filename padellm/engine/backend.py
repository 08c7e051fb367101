"""Generation backends: greedy continuations of token-id prompts, with per-token log-probabilities.

A backend is anything with ``generate(prompts, max_new_tokens, stop_ids, score_ids, logit_bias) ->
list[Generation]``; the decoding stages depend only on that, so they run the same on the transformers reference
backend here, on vLLM, or on a scripted fake in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class Generation:
    token_ids: tuple[int, ...]
    """Generated tokens, without the EOS that ended them."""
    logprobs: tuple[float, ...]
    """Log-probability of each generated token (EOS excluded, as in the paper)."""
    finished: bool
    """True when generation ended with EOS (or a stop token), False when it hit max_new_tokens."""
    first_scores: tuple[float, ...] | None = None
    """Log-probabilities of the requested ``score_ids`` at the first generated position (None: none asked)."""
    cached_tokens: int = 0
    """Prompt tokens whose KV cache the engine reused from an earlier request (prefix caching) instead of
    computing them; 0 where a backend has no such cache."""

    @property
    def num_tokens(self) -> int:
        """Tokens the model generated, the ending EOS or stop token included."""
        return len(self.token_ids) + int(self.finished)

    @property
    def logprob(self) -> float:
        return float(sum(self.logprobs))


class GenerationBackend(Protocol):
    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop_ids: tuple[int, ...] = (),
                 score_ids: tuple[int, ...] = (), logit_bias: dict[int, float] | None = None) -> list[Generation]:
        """Greedy continuation of each prompt until EOS, a token in ``stop_ids`` (neither is returned), or
        ``max_new_tokens``; with ``score_ids``, also their log-probabilities at the first generated position.
        ``logit_bias`` ``{token id: bias}`` is added to those tokens' logits before each greedy choice; the
        log-probabilities reported stay the model's own (unbiased), as vLLM reports them."""
        ...


class TransformersBackend:
    """Batched greedy decoding with a KV cache on a transformers (optionally peft) model: the reference."""

    def __init__(self, model, eos_id: int, pad_id: int | None = None, batch_size: int = 64):
        self.model = model
        self.eos_id = eos_id
        self.pad_id = eos_id if pad_id is None else pad_id
        self.batch_size = batch_size

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop_ids: tuple[int, ...] = (),
                 score_ids: tuple[int, ...] = (), logit_bias: dict[int, float] | None = None) -> list[Generation]:
        results: list[Generation | None] = [None] * len(prompts)
        # Similar lengths together: less left padding.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            generations = self._generate_batch([prompts[i] for i in chunk], max_new_tokens, {self.eos_id, *stop_ids},
                                               score_ids, logit_bias or {})
            for i, generation in zip(chunk, generations):
                results[i] = generation
        return results  # type: ignore[return-value]

    def _generate_batch(self, prompts: list[list[int]], max_new_tokens: int, stops: set[int],
                        score_ids: tuple[int, ...], logit_bias: dict[int, float]) -> list[Generation]:
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
            attention_mask[row, width - len(prompt) :] = 1
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        tokens: list[list[int]] = [[] for _ in prompts]
        logprobs: list[list[float]] = [[] for _ in prompts]
        finished = [False] * len(prompts)
        first_scores: list[tuple[float, ...] | None] = [None] * len(prompts)
        # Batch row -> prompt index. Rows that finished leave the batch (and their KV cache) once an eighth of it
        # has, so that a few long generations do not drag the whole batch through every step.
        rows = torch.arange(len(prompts), device=device)
        done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
        past = None
        step_ids, step_positions = input_ids, position_ids
        bias = None
        if logit_bias:
            bias = torch.zeros(self.model.config.vocab_size, device=device)
            bias[list(logit_bias)] = torch.tensor(list(logit_bias.values()), device=device)
        for step in range(max_new_tokens):
            out = self.model(input_ids=step_ids, attention_mask=attention_mask, position_ids=step_positions,
                             past_key_values=past, use_cache=True)
            past = out.past_key_values
            log_softmax = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
            best = (log_softmax if bias is None else log_softmax + bias[: log_softmax.shape[-1]]).argmax(-1)
            best_logprob = log_softmax.gather(-1, best[:, None])[:, 0]
            if score_ids and step == 0:
                for row, scores in zip(rows.tolist(), log_softmax[:, list(score_ids)].tolist()):
                    first_scores[row] = tuple(scores)
            for i, row in enumerate(rows.tolist()):
                if done[i]:
                    continue
                token = int(best[i])
                if token in stops:
                    finished[row] = True
                    done[i] = True
                else:
                    tokens[row].append(token)
                    logprobs[row].append(float(best_logprob[i]))
            if bool(done.all()):
                break
            step_ids = torch.where(done, torch.full_like(best, self.pad_id), best)[:, None]
            attention_mask = torch.cat([attention_mask, torch.ones_like(step_ids)], dim=1)
            step_positions = position_ids[:, -1:] + 1
            position_ids = torch.cat([position_ids, step_positions], dim=1)
            if int(done.sum()) >= max(1, len(rows) // 8) and hasattr(past, "batch_select_indices"):
                keep = (~done).nonzero()[:, 0]
                past.batch_select_indices(keep)
                step_ids, step_positions = step_ids[keep], step_positions[keep]
                attention_mask, position_ids = attention_mask[keep], position_ids[keep]
                rows, done = rows[keep], done[keep]
        if was_training:
            self.model.train()
        return [Generation(tuple(t), tuple(lp), f, s) for t, lp, f, s in zip(tokens, logprobs, finished, first_scores)]
