"""Every shipped template, decoded by a backend that writes the gold answer (``oracle.GoldBackend``), gives back
exactly the gold entities: each format's prompts, answer syntax, reading back and alignment agree with its own
training targets, in English and Chinese, for several mentions of a label, a repeated string and no entity."""

import pytest
from oracle import LOGPROB, GoldBackend
from transformers import AutoTokenizer

from padellm.data.bio import tokenize
from padellm.engine.decoding import DecodeConfig
from padellm.formats import decode, format_of
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.labels import LabelSet
from padellm.prompts.templates import load_template, prompts_dir
from padellm.types import Entity, Example

TEMPLATES = sorted(p.stem for p in prompts_dir().glob("*.yaml"))
ENGLISH = LabelSet.for_labels(["LOC", "PER"], {"LOC": "location", "PER": "person"})
CHINESE = LabelSet.for_labels(["CONT", "NAME", "ORG"], {"CONT": "国籍", "NAME": "人名", "ORG": "组织名"})


def example(text: str, *entities: tuple[int, int, str]) -> Example:
    tokens, spans = tokenize(text)
    return Example(text, tuple(tokens), tuple(spans), tuple(sorted(Entity(*e) for e in entities)))


EXAMPLES = {
    "en": [example("Anna met Peter in Paris and Paris .", (0, 4, "PER"), (9, 14, "PER"), (18, 23, "LOC"),
                   (28, 33, "LOC")),
           example("Nothing to see here ."),
           example("Peter Blackburn", (0, 15, "PER"))],
    "zh": [example("高勇：男，中国国籍", (0, 2, "NAME"), (5, 9, "CONT")),
           example("现任清华大学教授", (2, 6, "ORG")),
           example("无")],
}


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_every_shipped_template_is_covered():
    assert len(TEMPLATES) >= 10 and {format_of(load_template(t)).name for t in TEMPLATES} == {
        "counted", "count-free", "labelwise", "lines", "structured"}


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_gold_answer_decodes_to_the_gold_entities(tokenizer, name):
    template = load_template(name)
    language = "zh" if "-zh-" in name else "en"
    encoder = PromptEncoder(tokenizer, template, CHINESE if language == "zh" else ENGLISH)
    examples = EXAMPLES[language]
    backend = GoldBackend(examples, encoder)
    config = DecodeConfig(max_count=8, max_mention_tokens=64, max_autoregressive_tokens=256)
    result = decode([ex.text for ex in examples], encoder, backend, config)
    for ex, found in zip(examples, result.entities):
        assert sorted((e.start, e.end, e.label) for e in found) == [(e.start, e.end, e.label) for e in ex.entities], (
            name, ex.text)
    scored = [e for found in result.entities for e in found if e.score is not None]
    assert all(e.score <= LOGPROB / 2 for e in scored)  # each mention scored from its own tokens
    assert backend.calls  # the answers came from the backend, call by call
