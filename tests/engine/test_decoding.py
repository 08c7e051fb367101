import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from padellm.engine.backend import TransformersBackend


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_transformers_backend_first_step_scores(tiny_llama_dir, tokenizer):
    import torch

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    prompt = tokenizer("text:\nEU rejects").input_ids
    ids = (5, 17, 42)
    (generation,) = TransformersBackend(model, tokenizer.eos_token_id).generate([prompt], 3, score_ids=ids)
    with torch.no_grad():
        expected = torch.log_softmax(model(torch.tensor([prompt])).logits[0, -1].float(), -1)[list(ids)]
    assert generation.first_scores == pytest.approx(expected.tolist(), abs=1e-5)


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
