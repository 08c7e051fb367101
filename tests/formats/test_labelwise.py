import pytest
from transformers import AutoTokenizer
from scripted import LABELS, PerTokenScripted

from padellm.engine.backend import Generation
from padellm.engine.decoding import DecodeConfig, run_steps
from padellm.errors import ConfigError
from padellm.formats import decode, decode_steps
from padellm.formats.labelwise import read_label_sequences
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import load_template
from padellm.types import Entity


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_labelwise_branches_decode_every_label_in_one_call_and_split_its_mentions(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-labelwise-v1"), LABELS)
    text = "Anna met Peter in Paris and Paris"
    answers = {"location\n": ("Paris\nParis", True), "person\n": ("Anna\nPeter", True)}
    backend = PerTokenScripted(encoder, answers)
    result = decode([text], encoder, backend, DecodeConfig(max_autoregressive_tokens=50, none_bias=-1.0,
                                                           end_bias=-0.5))
    # one call, one branch per label, with the whole label's output as its limit, the none bias on its answer and
    # the end bias on EOS
    assert backend.calls == [(2, 50, {encoder.none_target()[0]: -1.0, encoder.eos_id: -0.5})]
    assert result.entities == [[Entity(0, 4, "PER"), Entity(9, 14, "PER"), Entity(18, 23, "LOC"), Entity(28, 33, "LOC")]]
    assert result.counts == [{"LOC": 2, "PER": 2}]
    assert result.stats["rounds"] == 1 and result.stats["branches"] == 2
    # each mention's score is the sum over its own tokens (the separator's excluded)
    peter = next(e for e in result.entities[0] if e.start == 9)
    assert peter.score == pytest.approx(-0.1 * len(encoder.encode("Peter")))
    assert set(result.timings) == {"branches_s", "dedup_align_s", "total_s"}

    # none; a branch cut by its token limit loses its last (maybe partial) mention; max_count caps a label
    answers = {"location\n": ("none", True), "person\n": ("Anna\nPeter\nPet", False)}
    result = decode([text], encoder, PerTokenScripted(encoder, answers))
    assert result.counts == [{"LOC": 0, "PER": 2}] and result.stats["unfinished_branches"] == 1
    result = decode([text], encoder, PerTokenScripted(encoder, answers), DecodeConfig(max_count=1))
    assert result.counts == [{"LOC": 0, "PER": 1}] and result.stats["clamped_counts"] == 1
    assert result.entities == [[Entity(0, 4, "PER")]]

    # the same string under two labels keeps one: the more probable (a tie, here: the first label)
    answers = {"location\n": ("Paris", True), "person\n": ("Anna\nParis", True)}
    result = decode(["Anna in Paris"], encoder, PerTokenScripted(encoder, answers))
    assert [e.label for e in result.entities[0]] == ["PER", "LOC"] and result.stats["dedup_removed"] == 1
    with pytest.raises(ConfigError, match="count-free; it has no count stage"):
        run_steps(decode_steps([text], encoder, counts=[{"PER": 1}]), backend)


def test_read_label_sequences_stops_at_none_and_skips_empty_lines(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-labelwise-v1"), LABELS)

    def generation(answer):
        tokens = tuple(encoder.encode(answer))
        return Generation(tokens, (-0.1,) * len(tokens), True)

    found, stats = read_label_sequences([generation("Paris\n\nRome"), generation("Anna\nnone\nBob")], encoder,
                                        LABELS.labels, max_count=10)
    assert [[(m.label, m.text, m.k) for m in f] for f in found] == [[("LOC", "Paris", 1), ("LOC", "Rome", 2)],
                                                                    [("PER", "Anna", 1)]]
    assert not stats
