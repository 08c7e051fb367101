"""Model families in one place: what padellm must know about a base model's architecture to prompt, train and
decode it the same way everywhere.

A family is chosen by the ``model_type`` of the model folder's ``config.json``; nothing else in padellm branches
on a model's name. What a family decides:

* **BOS**: whether every sequence starts with the tokenizer's BOS token. Gemma needs it and its tokenizer (as
  converted from the packaged GGUF) does not add it: perplexity of an English paragraph 7,900 without, 53 with.
  SmolLM2 (Llama architecture) has never had one, and its shipped adapters were trained without: a Llama follows
  its own tokenizer (Llama 3's adds ``<|begin_of_text|>``, SmolLM2's adds nothing). Qwen has none.
  :class:`padellm.prompts.encoding.PromptEncoder` adds it exactly once, at the start of every prompt.
* **EOS**: the tokenizer's EOS token ends every target and every generation, in every family; the prompt encoder
  refuses a tokenizer without one.
* **The LM head**: its attribute, the transformer body's attribute, whether it is tied to the input embedding
  (Gemma, SmolLM2: yes) and the final logit soft-capping some families apply (Gemma 2). Training computes the
  head only at the positions that carry a loss (Gemma's has 262,144 rows).
* **No chat template**: padellm's prompts are its own versioned templates (``prompts/``), written as raw text for
  every family, so that an adapter's prompt is the same whatever base it was trained on.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from padellm.errors import ConfigError, one_of_problem

logger = logging.getLogger(__name__)

BOS_RULES = ("always", "never", "tokenizer")


@dataclass(frozen=True)
class ModelFamily:
    name: str
    model_types: tuple[str, ...]
    """``config.json`` ``model_type`` values of this family."""
    bos: str
    """always: prepend the tokenizer's BOS token to every sequence; never: no BOS; tokenizer: whatever the
    tokenizer itself adds when asked for special tokens (a Llama's own choice)."""
    body: str = "model"
    """Attribute of the causal LM that holds the transformer body (its output: the last hidden states)."""
    lm_head: str = "lm_head"
    """Attribute of the causal LM that maps hidden states to the vocabulary."""

    def __post_init__(self) -> None:
        if self.bos not in BOS_RULES:
            raise ConfigError(one_of_problem("bos", BOS_RULES, self.bos))

    def bos_ids(self, tokenizer) -> tuple[int, ...]:
        """The tokens every sequence starts with: ``(bos_id,)`` or ``()``."""
        if self.bos == "never":
            return ()
        if self.bos == "tokenizer":
            with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
            plain = tokenizer("a", add_special_tokens=False)["input_ids"]
            for start in range(len(with_special) - len(plain) + 1):
                if with_special[start : start + len(plain)] == plain:
                    return tuple(with_special[:start])
            return ()
        if tokenizer.bos_token_id is None:
            raise ConfigError(f"tokenizer {tokenizer.name_or_path!r} has no BOS token, which the {self.name} family "
                              "needs at the start of every sequence")
        return (tokenizer.bos_token_id,)

    def tied(self, config) -> bool:
        """Whether the LM head shares the input embedding's weights (then it is frozen with it)."""
        return bool(getattr(config, "tie_word_embeddings", False))

    def hidden_states(self, causal_lm, **inputs):
        """The last hidden states of the transformer body (no LM head)."""
        return getattr(causal_lm, self.body)(**inputs).last_hidden_state

    def logits(self, causal_lm, hidden):
        """The LM head on ``hidden`` (any leading shape), with the family's final soft-capping where configured."""
        import torch

        logits = getattr(causal_lm, self.lm_head)(hidden)
        cap = getattr(causal_lm.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits


FAMILIES = (
    ModelFamily("gemma", ("gemma", "gemma2", "gemma3_text"), bos="always"),
    ModelFamily("llama", ("llama", "mistral"), bos="tokenizer"),
    ModelFamily("qwen", ("qwen2", "qwen3"), bos="never"),
)
GENERIC = ModelFamily("generic", (), bos="tokenizer")
"""Any other causal LM: follows its tokenizer for BOS, and has the usual ``model`` / ``lm_head`` layout."""


@functools.lru_cache(maxsize=None)
def family_for_type(model_type: str) -> ModelFamily:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    logger.info("model_type %r is not a known family (%s): BOS as its tokenizer adds it", model_type,
                ", ".join(t for f in FAMILIES for t in f.model_types))
    return GENERIC


def family_of(model_dir: str | Path) -> ModelFamily:
    """The family of the Hugging Face model folder ``model_dir`` (by its config.json's model_type)."""
    path = Path(model_dir) / "config.json"
    try:
        model_type = json.loads(path.read_text(encoding="utf-8"))["model_type"]
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{path}: cannot read the model_type of the base model ({err})") from None
    return family_for_type(str(model_type))


def load_tokenizer(model_dir: str | Path):
    """The tokenizer of ``model_dir`` and its family's BOS tokens: what a PromptEncoder is built from."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return tokenizer, family_of(model_dir).bos_ids(tokenizer)
