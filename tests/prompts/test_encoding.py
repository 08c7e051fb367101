import pytest
from transformers import AutoTokenizer

from padellm.prompts.encoding import PromptEncoder, mentions_by_label
from padellm.prompts.templates import load_template
from padellm.prompts.labels import LabelSet
from padellm.types import Entity, Example

LABELS = LabelSet.for_labels(["LOC", "PER"], {"LOC": "location", "PER": "person"})


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_stage_two_prompt_extends_stage_one_token_for_token(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    prompt = encoder.count_prompt("Peter Blackburn in Paris", "PER")
    assert encoder.decode(prompt) == "text:\nPeter Blackburn in Paris\nentity type:\nperson\n\n<num>"
    # Every label's prompt of a text starts with the same tokens (one cached prefix).
    shared = encoder.text_prefix("Peter Blackburn in Paris")
    assert prompt[: len(shared)] == shared == encoder.count_prompt("Peter Blackburn in Paris", "LOC")[: len(shared)]
    second = encoder.mention_prompt(prompt, 2, 1)
    assert second[: len(prompt)] == prompt
    assert encoder.decode(second[len(prompt) :]) == "2\n<mention 1>"
    assert encoder.mention_target("Paris")[-1] == tokenizer.eos_token_id
    with pytest.raises(TypeError, match="not autoregressive"):
        encoder.autoregressive_prompt("x")


def test_aligned_template_fills_whole_kv_blocks_with_the_text(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-aligned-v1"), LABELS)
    plain = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    for text in ("Peter", "Peter Blackburn went to Brussels to meet the European Commission on Monday ."):
        shared = encoder.text_prefix(text)
        unpadded = plain.text_prefix(text)
        assert len(shared) % 32 == 0 and 0 <= len(shared) - len(unpadded) < 32
        assert shared[: len(unpadded)] == unpadded
        filler = encoder.encode(" ")[0]
        assert set(shared[len(unpadded) :]) <= {filler}
        for label in ("LOC", "PER"):
            prompt = encoder.count_prompt(text, label)
            assert prompt[: len(shared)] == shared and prompt[len(shared) :] == plain.label_part(label)
    from padellm.errors import ConfigError
    from padellm.prompts.templates import ParallelTemplate

    with pytest.raises(ConfigError, match="align_text must be >= 0"):
        ParallelTemplate("t", 1, "en", "{text} {label}", "{count}", "<{k}>", "{mention}", align_text=-1)


def test_mentions_are_numbered_in_text_order_and_repeats_kept():
    text = "Paris , Lyon and Paris"
    example = Example(text, tuple(text.split()), ((0, 5), (6, 7), (8, 12), (13, 16), (17, 22)),
                      (Entity(17, 22, "LOC"), Entity(8, 12, "LOC"), Entity(0, 5, "LOC")))
    assert mentions_by_label(example, ("LOC", "PER")) == {"LOC": ["Paris", "Lyon", "Paris"], "PER": []}
