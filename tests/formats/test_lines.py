import pytest
from transformers import AutoTokenizer
from scripted import LABELS, ScriptedBackend

from padellm.formats import decode
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import load_template
from padellm.types import Entity


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_autoregressive_decoding(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("autoregressive-en-v1"), LABELS)
    backend = ScriptedBackend(encoder, {"entities:\n": ("person: Anna\nlocation: Paris\nnonsense\n", 0.0)})
    result = decode(["Anna lives in Paris"], encoder, backend)
    assert result.entities == [[Entity(0, 4, "PER"), Entity(14, 19, "LOC")]]
    assert result.stats["unparsable_lines"] == 1 and backend.calls[0][0] == 1
