"""Model families: chosen by config.json's model_type; BOS exactly once where the family needs it; the LM head."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from padellm.errors import ConfigError
from padellm.model_families import GENERIC, ModelFamily, family_of, load_tokenizer
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import load_template
from padellm.prompts.labels import LabelSet
from padellm.formats import format_of
from padellm.training.config import DataConfig
from padellm.types import Entity, Example
from tiny_models import build_tiny_causal_lm

LABELS = LabelSet.for_labels(["LOC", "PER"], {"LOC": "location", "PER": "person"})
TEXT = "Peter Blackburn in Paris"
EXAMPLE = Example(TEXT, tuple(TEXT.split()), ((0, 5), (6, 15), (16, 18), (19, 24)),
                  (Entity(0, 15, "PER"), Entity(19, 24, "LOC")))


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma3"])
def tiny_model(request, tmp_path_factory):
    return request.param, build_tiny_causal_lm(tmp_path_factory.mktemp(request.param) / "model", request.param)


EXPECTED = {"llama": ("llama", ()), "qwen2": ("qwen", ()), "gemma3": ("gemma", (2,))}
"""architecture -> (family, BOS tokens): the tiny tokenizers add no special token themselves, as the converted
packaged ones do not, so only the Gemma family's rule puts a BOS (Gemma's id 2) in front."""


def test_each_architecture_gets_its_family_and_bos_rule(tiny_model):
    architecture, folder = tiny_model
    family_name, bos = EXPECTED[architecture]
    assert family_of(folder).name == family_name
    tokenizer, bos_ids = load_tokenizer(folder)
    assert bos_ids == bos


@pytest.mark.parametrize("prompt", ["padellm-en-labelwise-v1", "padellm-en-v1", "padellm-en-branches-v1",
                                    "autoregressive-en-v1", "autoregressive-struct-en-v1"])
def test_every_prompt_and_training_sequence_starts_with_bos_exactly_once(tiny_model, prompt):
    architecture, folder = tiny_model
    tokenizer, bos_ids = load_tokenizer(folder)
    encoder = PromptEncoder(tokenizer, load_template(prompt), LABELS, bos_ids)
    bos = tokenizer.bos_token_id
    if encoder.template.mode == "parallel":
        prompts = [encoder.count_prompt(TEXT, label) for label in ("PER", "LOC")]
    else:
        prompts = [encoder.autoregressive_prompt(TEXT)]
    sequences = format_of(encoder.template).training_sequences(EXAMPLE, encoder, DataConfig(dataset="conll2003"))
    for ids in [*prompts, *(s.input_ids for s in sequences)]:
        assert list(ids[: len(bos_ids)]) == list(bos_ids)
        # Gemma: one BOS, at the start (a second one costs perplexity); the others: none at all.
        assert list(ids).count(bos) == (1 if architecture == "gemma3" else 0)


def test_decoders_send_prompts_with_one_bos(tiny_gemma_dir):
    """What reaches the engine, for both decoders: a recording backend that answers 'none' / nothing."""
    from padellm.formats import decode
    from padellm.engine.backend import Generation

    tokenizer, bos_ids = load_tokenizer(tiny_gemma_dir)
    seen = []

    class Recorder:
        eos_id = tokenizer.eos_token_id

        def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=(), logit_bias=None):
            seen.extend(prompts)
            return [Generation((), (), True) for _ in prompts]

    for prompt in ("padellm-en-labelwise-v1", "autoregressive-en-v1"):
        decode([TEXT, "Paris"], PromptEncoder(tokenizer, load_template(prompt), LABELS, bos_ids), Recorder())
    assert seen and all(p[0] == 2 and list(p).count(2) == 1 for p in seen)


def test_bos_missing_where_the_family_needs_it_is_an_error(tiny_llama_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.bos_token = None
    with pytest.raises(ConfigError, match="has no BOS token, which the gemma family needs"):
        ModelFamily("gemma", ("gemma3_text",), bos="always").bos_ids(tokenizer)
    with pytest.raises(ConfigError, match="bos must be one of always, never, tokenizer; got 'sometimes'"):
        ModelFamily("x", (), bos="sometimes")


def test_a_tokenizer_that_adds_its_own_bos_is_followed(tiny_llama_dir, tmp_path):
    """A Llama 3 style tokenizer adds BOS itself: the llama family's rule takes it from there, once."""
    from tokenizers import processors
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", bos)])
    assert tokenizer("a").input_ids[0] == bos
    assert family_of(tiny_llama_dir).bos_ids(tokenizer) == (bos,)
    assert GENERIC.bos_ids(tokenizer) == (bos,)


def test_unknown_architecture_falls_back_to_the_generic_family(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "phi3"}))
    assert family_of(tmp_path) is GENERIC
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="cannot read the model_type"):
        family_of(tmp_path)


def test_logits_match_the_models_own_forward_and_apply_soft_capping(tiny_model):
    architecture, folder = tiny_model
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    family = family_of(folder)
    assert family.tied(model.config)  # the tiny models tie their head, as SmolLM2 and Gemma 3 do
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        hidden = family.hidden_states(model, input_ids=ids)
        torch.testing.assert_close(family.logits(model, hidden), model(ids).logits)
        model.config.final_logit_softcapping = 0.5
        capped = family.logits(model, hidden)
    assert capped.abs().max() <= 0.5 and not torch.equal(capped, model.lm_head(hidden))
