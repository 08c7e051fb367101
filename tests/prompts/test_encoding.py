import pytest
from transformers import AutoTokenizer

from padellm.prompts.encoding import PromptEncoder, mentions_by_label
from padellm.prompts.templates import LabelSet, load_template
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


def test_mentions_are_numbered_in_text_order_and_repeats_kept():
    text = "Paris , Lyon and Paris"
    example = Example(text, tuple(text.split()), ((0, 5), (6, 7), (8, 12), (13, 16), (17, 22)),
                      (Entity(17, 22, "LOC"), Entity(8, 12, "LOC"), Entity(0, 5, "LOC")))
    assert mentions_by_label(example, ("LOC", "PER")) == {"LOC": ["Paris", "Lyon", "Paris"], "PER": []}
