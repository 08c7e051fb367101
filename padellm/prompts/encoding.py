"""Templates -> token ids, shared by training and inference so that both see exactly the same tokens.

Prompt pieces are tokenized separately and concatenated (never re-tokenized as one string): the stage-2
prompt of PaDeLLM is then, token for token, the stage-1 prompt followed by the count and the mention marker,
which is what lets vLLM's prefix cache reuse stage 1's work and what the model saw in training.

Every prompt starts with the base model family's BOS tokens (``bos_ids``: Gemma's ``<bos>``, nothing for SmolLM2),
exactly once: the text prefix of a parallel prompt and the autoregressive prompt are the only two places a
sequence starts, and both add them here.
"""

from __future__ import annotations

from functools import lru_cache

from padellm.prompts.templates import AutoregressiveTemplate, ParallelTemplate, StructuredTemplate, Template
from padellm.prompts.labels import LabelSet
from padellm.types import Example


class PromptEncoder:
    """Encodes the prompts and targets of one template and label set with one tokenizer."""

    def __init__(self, tokenizer, template: Template, label_set: LabelSet, bos_ids: tuple[int, ...] = ()):
        if tokenizer.eos_token_id is None:
            raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no EOS token")
        self.tokenizer = tokenizer
        self.template = template
        self.label_set = label_set
        self.bos_ids: tuple[int, ...] = tuple(bos_ids)
        """What every sequence starts with (``padellm.model_families.load_tokenizer`` gives a base model's)."""
        self.eos_id: int = tokenizer.eos_token_id
        self._encode_cached = lru_cache(maxsize=4096)(self._encode)

    def _encode(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, text: str) -> list[int]:
        return list(self._encode_cached(text))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ----------------------------------------------------------------------------------- PaDeLLM
    @property
    def parallel(self) -> ParallelTemplate:
        if not isinstance(self.template, ParallelTemplate):
            raise TypeError(f"template {self.template.name!r} is {self.template.mode}, not parallel")
        return self.template

    def count_prompt(self, text: str, label: str) -> list[int]:
        """The text part (everything before ``{label}``) and the label part are tokenized separately, so that
        every label's prompt of a text starts with the same tokens: one shared prefix in vLLM's cache, and a
        shared trunk when training sequences are packed as a tree."""
        return self.text_prefix(text) + self.label_part(label)

    def text_prefix(self, text: str) -> list[int]:
        """The tokens every prompt of ``text`` starts with; with the template's ``align_text``, padded with
        filler tokens to a multiple of it (whole KV-cache blocks, which vLLM's prefix cache can share)."""
        # Not cached: the text differs every time.
        head = self.parallel.count_prompt.split("{label}")[0]
        ids = [*self.bos_ids, *self._encode(head.format(text=text))]
        block = self.parallel.align_text
        if block and len(ids) % block:
            ids += [self.encode(self.parallel.filler)[0]] * (block - len(ids) % block)
        return ids

    def label_part(self, label: str) -> list[int]:
        """The tokens of a count prompt after the text prefix (the label's name and the count marker)."""
        tail = "{label}" + self.parallel.count_prompt.split("{label}", 1)[1]
        return self.encode(tail.format(label=self.label_set.name(label)))

    def count_target(self, count: int) -> list[int]:
        return self.encode(self.parallel.render_count(count))

    def count_digit_ids(self) -> tuple[int, ...]:
        """The first token of the count targets 0..9: what a one-step count stage scores. Raises ValueError
        when the tokenizer does not give each of them a distinct first token."""
        ids = tuple(self.count_target(n)[0] for n in range(10))
        if len(set(ids)) != 10:
            raise ValueError(f"tokenizer {self.tokenizer.name_or_path!r} does not start the count targets 0-9 with "
                             "ten distinct tokens; use count_rule greedy")
        return ids

    def mention_marker(self, k: int) -> list[int]:
        return self.encode(self.parallel.render_mention_prompt(k))

    def mention_prompt(self, count_prompt: list[int], count: int, k: int) -> list[int]:
        return count_prompt + self.count_target(count) + self.mention_marker(k)

    def mention_target(self, mention: str) -> list[int]:
        return list(self._encode(self.parallel.render_mention(mention))) + [self.eos_id]

    def branch_prompt(self, label_prompt: list[int], k: int) -> list[int]:
        """Count-free format: branch k of the label whose ``count_prompt`` is ``label_prompt``."""
        return label_prompt + self.mention_marker(k)

    def none_target(self) -> list[int]:
        """Count-free format: what a branch writes when its label has no k-th mention."""
        return list(self._encode(self.parallel.none_target)) + [self.eos_id]

    def label_target(self, mentions: list[str]) -> list[int]:
        """Label-wise format: what a label's one branch writes: its mentions in text order joined by the
        separator, then EOS, or the none marker when it has none."""
        if not mentions:
            return self.none_target()
        joined = self.parallel.separator.join(self.parallel.render_mention(m) for m in mentions)
        return list(self._encode(joined)) + [self.eos_id]

    def separator_id(self) -> int:
        """Label-wise format: the one token that separates a branch's mentions. Raises ValueError when the
        tokenizer spells the template's separator with more or fewer tokens."""
        ids = self.encode(self.parallel.separator)
        if len(ids) != 1:
            raise ValueError(f"template {self.template.name!r}: separator {self.parallel.separator!r} is {len(ids)} "
                             f"tokens for tokenizer {self.tokenizer.name_or_path!r}; a label-wise template needs one")
        return ids[0]

    # ---------------------------------------------------------------------------- autoregressive
    @property
    def autoregressive(self) -> AutoregressiveTemplate | StructuredTemplate:
        if not isinstance(self.template, (AutoregressiveTemplate, StructuredTemplate)):
            raise TypeError(f"template {self.template.name!r} is {self.template.mode}, not autoregressive")
        return self.template

    def autoregressive_prompt(self, text: str) -> list[int]:
        return [*self.bos_ids, *self._encode(self.autoregressive.render_prompt(text, list(self.label_set.names)))]

    def autoregressive_target(self, mentions: list[tuple[str, str]]) -> list[int]:
        """``mentions`` as ``(label, mention)`` pairs in text order."""
        named = [(self.label_set.name(label), mention) for label, mention in mentions]
        target = self.autoregressive.render_target(named, list(self.label_set.names))
        return list(self._encode(target)) + [self.eos_id]


def mentions_by_label(example: Example, labels: tuple[str, ...]) -> dict[str, list[str]]:
    """Each label's mention strings in text order (by start, then end); repeated strings stay repeated."""
    found: dict[str, list[str]] = {label: [] for label in labels}
    for entity in sorted(example.entities, key=lambda e: (e.start, e.end)):
        if entity.label in found:
            found[entity.label].append(entity.mention(example.text))
    return found
