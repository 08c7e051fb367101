import pytest
from transformers import AutoTokenizer
from scripted import LABELS, ScriptedBackend

from padellm.engine.align import Mention
from padellm.engine.decoding import DecodeConfig, merge, run_steps, run_steps_async
from padellm.errors import ConfigError, InvalidRequestError
from padellm.formats import decode, decode_steps
from padellm.formats.branches import count_prompts
from padellm.formats.counted import build_branches, count_from_scores
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import load_template
from padellm.types import Entity


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def decode_counted(texts, encoder, backend, config=DecodeConfig(), labels=None, counts=None):
    return run_steps(decode_steps(texts, encoder, config, labels, counts), backend)


def test_parallel_stages(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("2", 0.0), "person\n\n<num>": ("1", 0.0),
               "location\n\n<num>2\n<mention 1>": ("Paris", -0.5), "location\n\n<num>2\n<mention 2>": ("Anna", -2.0),
               "person\n\n<num>1\n<mention 1>": ("Anna", -0.1)}
    backend = ScriptedBackend(encoder, answers)
    result = decode_counted(["Anna lives in Paris"], encoder, backend, DecodeConfig(count_rule="greedy"))
    # One batched call per stage: 2 count prompts, then 3 branches.
    assert [c[0] for c in backend.calls] == [2, 3]
    assert backend.calls[0][2] == tuple(encoder.encode("\n"))  # the count stops at its newline
    assert result.entities == [[Entity(0, 4, "PER"), Entity(14, 19, "LOC")]]  # Anna kept as PER (more probable)
    assert result.stats["branches"] == 3 and result.stats["dedup_removed"] == 1
    assert set(result.timings) == {"count_s", "branches_s", "dedup_align_s", "total_s"}
    assert decode_counted(["Anna lives in Paris"], encoder, ScriptedBackend(encoder, answers),
                           DecodeConfig(dedup="none")).entities[0] == [Entity(0, 4, "LOC"), Entity(0, 4, "PER"), Entity(14, 19, "LOC")]


def test_given_counts_skip_the_count_stage(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("0", 0.0), "person\n\n<num>": ("0", 0.0),
               "location\n\n<num>1\n<mention 1>": ("Paris", -0.5), "person\n\n<num>1\n<mention 1>": ("Anna", -0.1)}
    backend = ScriptedBackend(encoder, answers)
    stated = decode_counted(["Anna lives in Paris"], encoder, backend)
    assert stated.counts == [{"LOC": 0, "PER": 0}] and stated.entities == [[]]
    backend = ScriptedBackend(encoder, answers)
    given = decode_counted(["Anna lives in Paris"], encoder, backend, counts=[{"LOC": 1, "PER": 1}])
    assert [c[0] for c in backend.calls] == [2]  # the branches only: no count stage call
    assert given.counts == [{"LOC": 1, "PER": 1}] and "count_prompts" not in given.stats
    assert given.entities == [[Entity(0, 4, "PER"), Entity(14, 19, "LOC")]]
    assert decode_counted(["Paris"], encoder, ScriptedBackend(encoder, answers), counts=[{"LOC": 1}]).counts == [
        {"LOC": 1, "PER": 0}]  # a label left out counts 0
    with pytest.raises(ConfigError, match="counts: 1 mappings for 2 texts"):
        decode_counted(["a", "b"], encoder, backend, counts=[{}])


def test_counts_are_clamped_or_zeroed_never_a_crash(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("9", 0.0), "person\n\n<num>": ("many", 0.0), "<mention 1>": ("Paris", 0.0),
               "<mention 2>": ("Paris", 0.0), "<mention 3>": ("x", 0.0)}
    result = decode_counted(["Paris"], encoder, ScriptedBackend(encoder, answers),
                             DecodeConfig(max_count=3, count_rule="greedy"))
    assert result.stats["clamped_counts"] == 1 and result.stats["unparsable_counts"] == 1
    assert result.stats["branches"] == 3 and result.entities == [[Entity(0, 5, "LOC")]]
    assert result.stats["unaligned_mentions"] == 2
    with pytest.raises(ConfigError, match="max_count must be >= 1; got 0"):
        DecodeConfig(max_count=0)


def test_one_step_counts_read_the_digit_distribution(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("9", 0.0), "person\n\n<num>": ("1", 0.0), "<mention 1>": ("Paris", 0.0),
               "<mention 2>": ("Paris", 0.0), "<mention 3>": ("x", 0.0)}
    for rule in ("argmax", "quantile"):
        backend = ScriptedBackend(encoder, answers)
        result = decode_counted(["Paris"], encoder, backend, DecodeConfig(max_count=3, count_rule=rule))
        assert backend.calls[0][1:] == (1, (), encoder.count_digit_ids())  # one token, ten digits scored
        assert result.stats["clamped_counts"] == 1 and result.stats["count_tokens"] == 2
        assert result.stats["branches"] == 3 + 1


def test_pure_stages_build_branches_and_merge(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    prompts = count_prompts(["Anna", "Paris"], encoder)
    assert len(prompts) == 4 and prompts[0] == encoder.count_prompt("Anna", "LOC")
    branches = build_branches(prompts, [0, 2, 1, 0], encoder)
    assert [(b.index, b.label, b.k, b.count) for b in branches] == [(0, "PER", 1, 2), (0, "PER", 2, 2), (1, "LOC", 1, 1)]
    assert list(branches[1].prompt[: len(prompts[1])]) == prompts[1]  # a branch extends its count prompt
    mentions = [[Mention("PER", "Anna", 1, -0.1), Mention("LOC", "Anna", 1, -0.2), Mention("PER", "Bob", 2, -0.1)],
                [Mention("LOC", "Paris", 1, -0.3)]]
    entities, stats = merge(["Anna", "Paris"], mentions, "paper")
    assert entities == [[Entity(0, 4, "PER")], [Entity(0, 5, "LOC")]]
    assert stats == {"dedup_removed": 1, "unaligned_mentions": 1}


def test_count_from_scores():
    import math

    probabilities = [0.5, 0.3, 0.2] + [0.0] * 7
    scores = tuple(math.log(p) if p else float("-inf") for p in probabilities)
    assert count_from_scores(scores, "argmax", 0.5) == 0
    assert count_from_scores(scores, "quantile", 0.5) == 0
    assert count_from_scores(scores, "quantile", 0.6) == 1
    assert count_from_scores(scores, "quantile", 0.85) == 2
    # Only relative mass matters: digits need not carry all of the probability.
    assert count_from_scores(tuple(s - 1.0 for s in scores), "quantile", 0.6) == 1
    with pytest.raises(ConfigError, match="count_quantile must be in \\(0, 1\\); got 1.0"):
        DecodeConfig(count_quantile=1.0)
    with pytest.raises(ConfigError, match="count_rule must be one of greedy, argmax, quantile; got 'vote'"):
        DecodeConfig(count_rule="vote")


def test_a_label_subset_decodes_only_those_labels(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("1", 0.0), "person\n\n<num>": ("1", 0.0),
               "location\n\n<num>1\n<mention 1>": ("Paris", -0.5), "person\n\n<num>1\n<mention 1>": ("Anna", -0.1)}
    backend = ScriptedBackend(encoder, answers)
    result = decode_counted(["Anna lives in Paris"], encoder, backend, DecodeConfig(count_rule="greedy"), ("PER",))
    assert [c[0] for c in backend.calls] == [1, 1] and result.entities == [[Entity(0, 4, "PER")]]
    encoder = PromptEncoder(tokenizer, load_template("autoregressive-en-v1"), LABELS)
    backend = ScriptedBackend(encoder, {"entities:\n": ("person: Anna\nlocation: Paris\n", 0.0)})
    assert decode(["Anna lives in Paris"], encoder, backend, labels=("LOC",)).entities == \
        [[Entity(14, 19, "LOC")]]
    with pytest.raises(InvalidRequestError, match=r"labels\[1\]: not one of the adapter's labels \['LOC', 'PER'\]"):
        decode(["Anna"], encoder, backend, labels=("LOC", "ORG"))


def test_the_async_driver_runs_the_same_decoder(tokenizer):
    import asyncio

    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("2", 0.0), "person\n\n<num>": ("1", 0.0),
               "location\n\n<num>2\n<mention 1>": ("Paris", -0.5), "location\n\n<num>2\n<mention 2>": ("Anna", -2.0),
               "person\n\n<num>1\n<mention 1>": ("Anna", -0.1)}

    class AsyncScripted(ScriptedBackend):
        async def generate(self, *args, **kwargs):
            return ScriptedBackend.generate(self, *args, **kwargs)

    config = DecodeConfig(count_rule="greedy")
    steps = decode_steps(["Anna lives in Paris"], encoder, config)
    result = asyncio.run(run_steps_async(steps, AsyncScripted(encoder, answers)))
    expected = decode_counted(["Anna lives in Paris"], encoder, ScriptedBackend(encoder, answers), config)
    assert result.entities == expected.entities and result.stats == expected.stats
