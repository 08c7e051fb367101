import pytest
from transformers import AutoTokenizer
from scripted import LABELS, ScriptedBackend

from padellm.engine.decoding import DecodeConfig, run_steps
from padellm.errors import ConfigError
from padellm.formats import decode, decode_steps
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import load_template
from padellm.types import Entity


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_count_free_rounds_open_branches_while_they_find_mentions(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-branches-v1"), LABELS)
    answers = {"location\n<mention 1>": ("Paris", -0.5), "location\n<mention 2>": ("none", -0.1),
               "person\n<mention 1>": ("Anna", -0.1), "person\n<mention 2>": ("Peter", -0.3),
               "person\n<mention 3>": ("none", 0.0), "person\n<mention 4>": ("Bob", -0.2)}
    text = "Anna met Peter in Paris"
    backend = ScriptedBackend(encoder, answers)
    result = decode([text], encoder, backend)
    # round 1: branches 1-2 of both labels; round 2: branches 3-4 of PER only (LOC said none at 2)
    assert [c[0] for c in backend.calls] == [4, 2] and all(c[3] == () for c in backend.calls)
    assert result.entities == [[Entity(0, 4, "PER"), Entity(9, 14, "PER"), Entity(18, 23, "LOC")]]
    assert result.counts == [{"LOC": 1, "PER": 2}]
    assert result.stats["rounds"] == 2 and result.stats["branches"] == 6
    assert result.stats["mentions_after_none"] == 1  # Bob, after PER's none at 3, is dropped
    assert set(result.timings) == {"branches_s", "dedup_align_s", "total_s"}
    # max_count caps the branches a label may open, and counts the labels it stopped
    capped = ScriptedBackend(encoder, answers)
    result = decode([text], encoder, capped, DecodeConfig(max_count=2))
    assert [c[0] for c in capped.calls] == [4] and result.stats["clamped_counts"] == 1
    assert result.counts == [{"LOC": 1, "PER": 2}]
    with pytest.raises(ConfigError, match="count-free; it has no count stage"):
        run_steps(decode_steps([text], encoder, counts=[{"PER": 1}]), backend)


def test_a_wider_branch_window_opens_more_branches_per_round_and_finds_the_same(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-branches-v1"), LABELS)
    answers = {"location\n<mention 1>": ("Paris", -0.5), "location\n<mention 2>": ("none", -0.1),
               "location\n<mention 3>": ("none", -0.1), "person\n<mention 1>": ("Anna", -0.1),
               "person\n<mention 2>": ("Peter", -0.3), "person\n<mention 3>": ("none", 0.0),
               "person\n<mention 4>": ("Bob", -0.2), "person\n<mention 5>": ("none", 0.0)}
    text = "Anna met Peter in Paris"
    narrow, wide = ScriptedBackend(encoder, answers), ScriptedBackend(encoder, answers)
    expected = decode([text], encoder, narrow)  # the template's window, 2: PER's none at 3 takes a second round
    result = decode([text], encoder, wide, DecodeConfig(branch_window=3))
    assert [c[0] for c in narrow.calls] == [4, 2] and [c[0] for c in wide.calls] == [6]
    assert result.entities == expected.entities and result.counts == expected.counts == [{"LOC": 1, "PER": 2}]
    assert result.stats["rounds"] == 1
    with pytest.raises(ConfigError, match="branch_window must be >= 0"):
        DecodeConfig(branch_window=-1)


def test_stop_at_repeat_closes_a_label_whose_branch_repeats_or_invents_a_mention(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-branches-v1"), LABELS)
    # PER loops on Anna (once in the text); LOC's second Paris is real (twice in the text), its third is not, and
    # after it LOC's branch 4 writes Rome, which is not in the text at all.
    answers = {**{f"person\n<mention {k}>": ("Anna", -0.1) for k in range(1, 11)},
               **{f"location\n<mention {k}>": ("Paris", -0.2) for k in range(1, 4)},
               **{f"location\n<mention {k}>": ("Rome", -0.2) for k in range(4, 11)}}
    text = "Anna went from Paris to Paris"
    looping = ScriptedBackend(encoder, answers)
    plain = decode([text], encoder, looping)
    assert plain.stats["rounds"] == 5 and plain.counts == [{"LOC": 10, "PER": 10}]  # to max_count
    stopping = ScriptedBackend(encoder, answers)
    result = decode([text], encoder, stopping, DecodeConfig(stop_at_repeat=True))
    assert result.entities == plain.entities == [[Entity(0, 4, "PER"), Entity(15, 20, "LOC"), Entity(24, 29, "LOC")]]
    assert result.counts == [{"LOC": 2, "PER": 1}]
    # round 1: PER repeats at 2; LOC finds both Paris; round 2: LOC's third Paris is one too many
    assert [c[0] for c in stopping.calls] == [4, 2] and result.stats["rounds"] == 2
    assert result.stats["closed_at_repeat"] == 2 and result.stats["mentions_after_none"] == 1  # Rome, after it
    absent = decode(["Anna went to Paris"], encoder, ScriptedBackend(encoder, {**answers, "location\n<mention 1>": ("Rome", -0.2)}),
                    DecodeConfig(stop_at_repeat=True))
    assert absent.stats["closed_at_absent"] == 1 and absent.counts == [{"LOC": 0, "PER": 1}]


def test_none_bias_reaches_every_branch_call_as_a_logit_bias_on_the_none_answer(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-branches-v1"), LABELS)
    answers = {"location\n<mention 1>": ("none", -0.5), "person\n<mention 1>": ("none", -0.1),
               "location\n<mention 2>": ("none", -0.5), "person\n<mention 2>": ("none", -0.1)}
    seen = []

    class Recording(ScriptedBackend):
        def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=(), logit_bias=None):
            seen.append(logit_bias)
            return super().generate(prompts, max_new_tokens, stop_ids, score_ids)

    decode(["Anna met Peter"], encoder, Recording(encoder, answers), DecodeConfig(none_bias=-1.5, end_bias=-1.0))
    assert seen == [{encoder.none_target()[0]: -1.5}]  # no end bias: EOS ends a one-mention branch's mention
    decode(["Anna met Peter"], encoder, ScriptedBackend(encoder, answers))  # no bias: the argument is not sent
    with pytest.raises(ConfigError, match=r"none_bias must be in \[-100, 100\]"):
        DecodeConfig(none_bias=-1000)
    with pytest.raises(ConfigError, match=r"end_bias must be in \[-100, 100\]"):
        DecodeConfig(end_bias=101)
