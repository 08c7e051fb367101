import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from padellm.prompts.encoding import PromptEncoder
from padellm.engine.backend import Generation, TransformersBackend
from padellm.engine.align import Mention
from padellm.engine.decoding import (DecodeConfig, build_branches, count_from_scores, count_prompts, decode,
                                     decode_autoregressive, decode_parallel, decode_steps, merge, parallel_steps,
                                     read_label_sequences, run_steps, run_steps_async)
from padellm.errors import ConfigError, InvalidRequestError
from padellm.prompts.templates import LabelSet, load_template
from padellm.types import Entity

LABELS = LabelSet.for_labels(["LOC", "PER"], {"LOC": "location", "PER": "person"})


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


class ScriptedBackend:
    """Answers each prompt by looking up the text of its last line in a script; records every call."""

    def __init__(self, encoder, answers):
        self.encoder, self.answers, self.calls = encoder, answers, []

    def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=()):
        self.calls.append((len(prompts), max_new_tokens, stop_ids, score_ids))
        out = []
        for prompt in prompts:
            text = self.encoder.decode(prompt)
            answer, logprob = next(v for k, v in self.answers.items() if text.endswith(k))
            tokens = tuple(self.encoder.encode(answer))
            # One-step counting reads a distribution: all mass on the scripted answer's first token.
            scores = tuple(0.0 if i == tokens[0] else -30.0 for i in score_ids) if score_ids else None
            out.append(Generation(tokens[:max_new_tokens], (logprob,), not score_ids, scores))
        return out


def test_parallel_stages(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("2", 0.0), "person\n\n<num>": ("1", 0.0),
               "location\n\n<num>2\n<mention 1>": ("Paris", -0.5), "location\n\n<num>2\n<mention 2>": ("Anna", -2.0),
               "person\n\n<num>1\n<mention 1>": ("Anna", -0.1)}
    backend = ScriptedBackend(encoder, answers)
    result = decode_parallel(["Anna lives in Paris"], encoder, backend, DecodeConfig(count_rule="greedy"))
    # One batched call per stage: 2 count prompts, then 3 branches.
    assert [c[0] for c in backend.calls] == [2, 3]
    assert backend.calls[0][2] == tuple(encoder.encode("\n"))  # the count stops at its newline
    assert result.entities == [[Entity(0, 4, "PER"), Entity(14, 19, "LOC")]]  # Anna kept as PER (more probable)
    assert result.stats["branches"] == 3 and result.stats["dedup_removed"] == 1
    assert set(result.timings) == {"count_s", "branches_s", "dedup_align_s", "total_s"}
    assert decode_parallel(["Anna lives in Paris"], encoder, ScriptedBackend(encoder, answers),
                           DecodeConfig(dedup="none")).entities[0] == [Entity(0, 4, "LOC"), Entity(0, 4, "PER"), Entity(14, 19, "LOC")]


def test_given_counts_skip_the_count_stage(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("0", 0.0), "person\n\n<num>": ("0", 0.0),
               "location\n\n<num>1\n<mention 1>": ("Paris", -0.5), "person\n\n<num>1\n<mention 1>": ("Anna", -0.1)}
    backend = ScriptedBackend(encoder, answers)
    stated = decode_parallel(["Anna lives in Paris"], encoder, backend)
    assert stated.counts == [{"LOC": 0, "PER": 0}] and stated.entities == [[]]
    backend = ScriptedBackend(encoder, answers)
    given = decode_parallel(["Anna lives in Paris"], encoder, backend, counts=[{"LOC": 1, "PER": 1}])
    assert [c[0] for c in backend.calls] == [2]  # the branches only: no count stage call
    assert given.counts == [{"LOC": 1, "PER": 1}] and "count_prompts" not in given.stats
    assert given.entities == [[Entity(0, 4, "PER"), Entity(14, 19, "LOC")]]
    assert decode_parallel(["Paris"], encoder, ScriptedBackend(encoder, answers), counts=[{"LOC": 1}]).counts == [
        {"LOC": 1, "PER": 0}]  # a label left out counts 0
    with pytest.raises(ConfigError, match="counts: 1 mappings for 2 texts"):
        decode_parallel(["a", "b"], encoder, backend, counts=[{}])


def test_counts_are_clamped_or_zeroed_never_a_crash(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("9", 0.0), "person\n\n<num>": ("many", 0.0), "<mention 1>": ("Paris", 0.0),
               "<mention 2>": ("Paris", 0.0), "<mention 3>": ("x", 0.0)}
    result = decode_parallel(["Paris"], encoder, ScriptedBackend(encoder, answers),
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
        result = decode_parallel(["Paris"], encoder, backend, DecodeConfig(max_count=3, count_rule=rule))
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


def test_transformers_backend_first_step_scores(tiny_llama_dir, tokenizer):
    import torch

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    prompt = tokenizer("text:\nEU rejects").input_ids
    ids = (5, 17, 42)
    (generation,) = TransformersBackend(model, tokenizer.eos_token_id).generate([prompt], 3, score_ids=ids)
    with torch.no_grad():
        expected = torch.log_softmax(model(torch.tensor([prompt])).logits[0, -1].float(), -1)[list(ids)]
    assert generation.first_scores == pytest.approx(expected.tolist(), abs=1e-5)


def test_autoregressive_decoding(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("autoregressive-en-v1"), LABELS)
    backend = ScriptedBackend(encoder, {"entities:\n": ("person: Anna\nlocation: Paris\nnonsense\n", 0.0)})
    result = decode_autoregressive(["Anna lives in Paris"], encoder, backend)
    assert result.entities == [[Entity(0, 4, "PER"), Entity(14, 19, "LOC")]]
    assert result.stats["unparsable_lines"] == 1 and backend.calls[0][0] == 1


def test_transformers_backend_matches_hf_greedy_generate(tiny_llama_dir, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    prompts = [tokenizer("text:\nEU rejects German call").input_ids, tokenizer("Peter").input_ids]
    ours = TransformersBackend(model, tokenizer.eos_token_id, batch_size=2).generate(prompts, max_new_tokens=6)
    for prompt, generation in zip(prompts, ours):
        import torch

        reference = model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False,
                                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
        expected = [t for t in reference[0, len(prompt):].tolist()]
        if tokenizer.eos_token_id in expected:
            expected = expected[: expected.index(tokenizer.eos_token_id)]
        assert list(generation.token_ids) == expected
        assert len(generation.logprobs) == len(generation.token_ids) and generation.logprob <= 0


def test_a_label_subset_decodes_only_those_labels(tokenizer):
    encoder = PromptEncoder(tokenizer, load_template("padellm-en-v1"), LABELS)
    answers = {"location\n\n<num>": ("1", 0.0), "person\n\n<num>": ("1", 0.0),
               "location\n\n<num>1\n<mention 1>": ("Paris", -0.5), "person\n\n<num>1\n<mention 1>": ("Anna", -0.1)}
    backend = ScriptedBackend(encoder, answers)
    result = decode_parallel(["Anna lives in Paris"], encoder, backend, DecodeConfig(count_rule="greedy"), ("PER",))
    assert [c[0] for c in backend.calls] == [1, 1] and result.entities == [[Entity(0, 4, "PER")]]
    encoder = PromptEncoder(tokenizer, load_template("autoregressive-en-v1"), LABELS)
    backend = ScriptedBackend(encoder, {"entities:\n": ("person: Anna\nlocation: Paris\n", 0.0)})
    assert decode_autoregressive(["Anna lives in Paris"], encoder, backend, labels=("LOC",)).entities == \
        [[Entity(14, 19, "LOC")]]
    with pytest.raises(InvalidRequestError, match=r"labels\[1\]: not one of the adapter's labels \['LOC', 'PER'\]"):
        decode_autoregressive(["Anna"], encoder, backend, labels=("LOC", "ORG"))


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
    steps = parallel_steps(["Anna lives in Paris"], encoder, config)
    result = asyncio.run(run_steps_async(steps, AsyncScripted(encoder, answers)))
    expected = decode_parallel(["Anna lives in Paris"], encoder, ScriptedBackend(encoder, answers), config)
    assert result.entities == expected.entities and result.stats == expected.stats


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


def test_the_reference_backend_applies_a_logit_bias_and_reports_the_models_own_logprobs(tiny_llama_dir):
    import torch

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    backend = TransformersBackend(model, eos_id=0)
    prompt = [[5, 6, 7, 8]]
    plain = backend.generate(prompt, 3)[0]
    forced = backend.generate(prompt, 3, logit_bias={42: 100.0})[0]
    assert forced.token_ids == (42, 42, 42) and plain.token_ids != forced.token_ids
    with torch.no_grad():  # the reported log-probability of the first forced token is the model's, not biased
        logits = model(torch.tensor(prompt)).logits[0, -1].float()
    assert forced.logprobs[0] == pytest.approx(float(torch.log_softmax(logits, -1)[42]), abs=1e-4)


def test_rows_that_finish_leave_the_batch_and_the_rest_decode_as_they_would_alone(tiny_llama_dir, monkeypatch):
    """The reference backend drops finished rows (and their KV cache) mid-batch: every prompt's generation, its
    log-probabilities and first-step scores equal decoding it alone."""
    from transformers import DynamicCache

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    prompts = [[5 + i, 6, 7 + 2 * i, 8, 9 + i][: 3 + i % 3] for i in range(8)]
    free = TransformersBackend(model, eos_id=0, batch_size=1).generate(prompts, 8)
    stops = (free[0].token_ids[2], free[3].token_ids[4])  # prompt 0 stops at step 3, prompt 3 by step 5
    kwargs = {"stop_ids": stops, "score_ids": (11, 12, 13), "logit_bias": {stops[0]: 0.5, 17: -1.0}}
    alone = [TransformersBackend(model, eos_id=0, batch_size=1).generate([p], 8, **kwargs)[0] for p in prompts]
    selections = []
    original = DynamicCache.batch_select_indices
    monkeypatch.setattr(DynamicCache, "batch_select_indices",
                        lambda self, keep: (selections.append(len(keep)), original(self, keep))[1])
    together = TransformersBackend(model, eos_id=0, batch_size=8).generate(prompts, 8, **kwargs)
    assert selections and max(selections) < 8  # rows left the batch
    assert len({len(g.token_ids) for g in alone}) > 1  # they finished at different steps
    for one, batched in zip(alone, together):
        assert batched.token_ids == one.token_ids and batched.finished == one.finished
        assert batched.logprobs == pytest.approx(one.logprobs, abs=1e-4)
        assert batched.first_scores == pytest.approx(one.first_scores, abs=1e-4)


class PerTokenScripted:
    """Answers each prompt by the end of its text with ``(answer, finished)``; every token has log-probability
    -0.1 (so a mention's score says how many tokens it took); records every call."""

    def __init__(self, encoder, answers):
        self.encoder, self.answers, self.calls = encoder, answers, []

    def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=(), logit_bias=None):
        self.calls.append((len(prompts), max_new_tokens, logit_bias))
        out = []
        for prompt in prompts:
            text = self.encoder.decode(prompt)
            answer, finished = next(v for k, v in self.answers.items() if text.endswith(k))
            tokens = tuple(self.encoder.encode(answer))
            out.append(Generation(tokens, (-0.1,) * len(tokens), finished))
        return out


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
