import importlib.util
import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

import numpy as np

from padellm.evaluation.decode_costs import (Speculation, TextCost, cost_ratios, forward_passes, propose,
                                             shared_block_tokens, summarize_costs, text_cost)
from padellm.prompts.encoding import PromptEncoder
from padellm.prompts.templates import load_template
from padellm.prompts.labels import LabelSet
from padellm.types import Entity, Example

LABELS = LabelSet.for_labels(["LOC", "PER"], {"LOC": "location", "PER": "person"})
TEXT = "Peter met Paul in Paris"
EXAMPLE = Example(TEXT, (), (), (Entity(0, 5, "PER"), Entity(10, 14, "PER"), Entity(18, 23, "LOC")))


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_a_prefix_cache_serves_whole_blocks_an_earlier_prompt_computed_but_never_a_prompts_last_block():
    head = list(range(1, 65))
    assert shared_block_tokens([head + [100], head + [101]], 32) == 64
    assert shared_block_tokens([head + [100], head[:40]], 32) == 32  # the second block is not whole
    assert shared_block_tokens([head, head], 32) == 32  # the block that ends the prompt is computed again
    assert shared_block_tokens([head + [100], [0] + head], 32) == 0  # a different first block shares nothing


def test_labelwise_branches_cost_one_sequence_per_label_and_wait_for_the_longest(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-labelwise-v1"), LABELS)
    cost = text_cost(EXAMPLE, encoder)
    prefix = encoder.text_prefix(TEXT)
    targets = [encoder.label_target(["Paris"]), encoder.label_target(["Peter", "Paul"])]
    assert len(prefix) % 32 == 0  # the template aligns the text part to whole blocks
    assert cost == TextCost(sequences=2, prompt_tokens=2 * len(prefix) + sum(len(encoder.label_part(l)) for l in ("LOC", "PER")),
                            computed_prompt_tokens=len(prefix) + sum(len(encoder.label_part(l)) for l in ("LOC", "PER")),
                            generated_tokens=sum(map(len, targets)), sequential_steps=1 + max(map(len, targets)),
                            computed_generated_tokens=sum(map(len, targets)))
    nothing = text_cost(Example("no names here", (), ()), encoder)
    assert nothing.generated_tokens == 2 * len(encoder.none_target())


def test_the_baseline_costs_its_one_sequence(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("autoregressive-en-v1"), LABELS)
    cost = text_cost(EXAMPLE, encoder)
    target = encoder.autoregressive_target([("PER", "Peter"), ("PER", "Paul"), ("LOC", "Paris")])
    assert cost.sequences == 1 and cost.prompt_tokens == cost.computed_prompt_tokens == len(
        encoder.autoregressive_prompt(TEXT))
    assert cost.generated_tokens == cost.sequential_steps - 1 == len(target)


def test_the_papers_count_stage_takes_one_step_then_one_branch_per_mention(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    cost = text_cost(EXAMPLE, encoder)
    loc, per = (encoder.count_prompt(TEXT, label) for label in ("LOC", "PER"))
    branches = [encoder.mention_prompt(loc, 1, 1), encoder.mention_prompt(per, 2, 1), encoder.mention_prompt(per, 2, 2)]
    targets = [encoder.mention_target(m) for m in ("Paris", "Peter", "Paul")]
    assert cost.sequences == 2 + 3 and cost.generated_tokens == 2 + sum(map(len, targets))
    assert cost.sequential_steps == (1 + 1) + (1 + max(map(len, targets)))
    assert cost.prompt_tokens == len(loc) + len(per) + sum(map(len, branches))
    assert text_cost(Example("no names here", (), ()), encoder).sequential_steps == 2  # counts 0: no branches


def test_count_free_branches_take_rounds_until_each_label_says_none(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-branches-v1"), LABELS)
    assert encoder.parallel.window == 2
    cost = text_cost(EXAMPLE, encoder)
    mention = {m: len(encoder.mention_target(m)) for m in ("Paris", "Peter", "Paul")}
    none = len(encoder.none_target())
    # round 1: LOC 1-2 (Paris, none: closed), PER 1-2 (Peter, Paul); round 2: PER 3-4 (none, none)
    assert cost.sequences == 6 and cost.generated_tokens == sum(mention.values()) + 3 * none
    assert cost.sequential_steps == (1 + max(mention.values())) + (1 + none)


def test_speculation_copies_what_follows_the_longest_earlier_ngram_and_emits_matching_drafts_plus_one():
    spec = Speculation(tokens=3, max_n=2)
    assert propose(np.array([7, 8, 9, 5, 7, 8]), spec).tolist() == [9, 5, 7]  # "7 8" occurred: what followed it
    assert propose(np.array([1, 2, 3, 4, 1, 5, 6, 1]), spec).tolist() == [2, 3, 4]  # "1": its earliest occurrence
    assert propose(np.array([1, 2, 3]), spec).tolist() == []  # nothing ends the context earlier
    # copying a 5-token mention out of the prompt: the prefill gives token 1, one pass accepts 3 drafts + 1,
    # the last pass writes EOS (its drafts, copied from the prompt, are wrong)
    prompt, target = [10, 11, 12, 13, 14, 15, 20], [11, 12, 13, 14, 15, 0]
    assert forward_passes(prompt, target, spec) == (3, 1 + (1 + 3) + (1 + 3))
    assert forward_passes(prompt, target, Speculation()) == (6, 6)  # one pass per token without it
    with pytest.raises(ValueError, match="min_n 0"):
        Speculation(tokens=2, min_n=0)


def test_speculation_shortens_a_labelwise_branch_that_copies_the_text(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-labelwise-v1"), LABELS)
    long = Example("Peter Paul Mary met in Paris", (), (), (Entity(0, 5, "PER"), Entity(6, 10, "PER"), Entity(11, 15, "PER")))
    plain, fast = text_cost(long, encoder), text_cost(long, encoder, speculation=Speculation(tokens=4))
    assert fast.sequential_steps < plain.sequential_steps and fast.generated_tokens == plain.generated_tokens
    assert fast.computed_generated_tokens > plain.computed_generated_tokens  # drafts are verified, right or wrong


def test_a_block_size_below_one_is_refused(tokenizer):
    with pytest.raises(ValueError, match="block must be >= 1"):
        text_cost(EXAMPLE, PromptEncoder(tokenizer, load_template("autoregressive-en-v1"), LABELS), block=0)


def test_summaries_and_the_bounds_they_give():
    slow = summarize_costs([TextCost(1, 40, 40, 11, 12, 11), TextCost(1, 40, 40, 7, 8, 7)])
    fast = summarize_costs([TextCost(4, 160, 50, 12, 5, 12), TextCost(4, 160, 50, 8, 3, 8)])
    assert slow["mean_sequential_steps"] == 10 and slow["mean_computed_tokens"] == 49
    assert fast["sequential_steps_p50"] == 4 and fast["mean_computed_tokens"] == 60
    assert cost_ratios(slow, fast) == {"sequential_steps": 2.5, "computed_tokens": 0.82}
    with pytest.raises(ValueError, match="no texts"):
        summarize_costs([])


def test_the_script_prints_a_table_or_json(tmp_path, tiny_llama_dir, capsys):
    path = Path(__file__).resolve().parents[2] / "eval" / "decode_costs.py"
    spec = importlib.util.spec_from_file_location("decode_costs_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "test.txt").write_text("Peter B-PER\nmet O\nParis B-LOC\n\nHe O\nleft O\n")
    argv = ["--dataset", str(corpus), "--split", "test", "--base-model", str(tiny_llama_dir)]
    assert module.main(argv) == 0
    table = capsys.readouterr().out
    assert "| autoregressive-en | 1 |" in table and "| padellm-en-labelwise | 2 |" in table
    assert module.main([*argv, "--json", "--template", "padellm-en-labelwise-v1"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["texts"] == 2 and record["templates"]["padellm-en-labelwise"]["bound_over_reference"] == {
        "sequential_steps": 1.0, "computed_tokens": 1.0}
    assert module.main([*argv, "--json", "--speculative-tokens", "2", "--prompt-lookup-max", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["speculative_tokens"] == 2
    assert module.main([*argv, "--block", "0"]) == 2
    assert "--block must be >= 1" in capsys.readouterr().err
    assert module.main([*argv, "--speculative-tokens", "-1"]) == 2
    assert "speculation: tokens >= 0" in capsys.readouterr().err
