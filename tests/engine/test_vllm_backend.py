"""The vLLM backend against the transformers reference on the same tiny random weights.

One LoRA-enabled engine serves most of the module (start-up takes tens of seconds on CPU): the base model plus
two adapters (parallel and autoregressive), trained for a few steps at a high learning rate so that LoRA visibly
changes the model. One more engine runs an adapter merged into the base model.
"""

import pytest

from conftest import require

require("vllm")

from padellm import load  # noqa: E402
from padellm.adapters import load_adapter  # noqa: E402
from padellm.engine.backend import TransformersBackend  # noqa: E402
from padellm.engine.decoding import DecodeConfig  # noqa: E402
from padellm.engine.vllm_backend import VLLMConfig, VLLMEngine, vllm_backends  # noqa: E402
from padellm.errors import ConfigError, InvalidRequestError  # noqa: E402

TEXTS = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "Paris"]


@pytest.fixture(scope="module")
def adapters(tiny_adapters):
    return tiny_adapters


@pytest.fixture(scope="module")
def engine(tiny_llama_dir):
    engine = VLLMEngine(tiny_llama_dir, VLLMConfig(dtype="float32", max_model_len=512, max_num_seqs=32))
    yield engine
    engine.close()


def _reference(folder):
    loaded = load_adapter(folder)
    return loaded, TransformersBackend(loaded.model, loaded.encoder.eos_id)


def _assert_same(ours, reference):
    assert len(ours) == len(reference)
    for mine, theirs in zip(ours, reference):
        assert mine.token_ids == theirs.token_ids
        assert mine.finished == theirs.finished
        assert mine.logprobs == pytest.approx(theirs.logprobs, abs=2e-3)


def test_greedy_generations_and_logprobs_match_transformers(engine, adapters):
    loaded, reference = _reference(adapters["parallel"])
    prompts = [loaded.encoder.count_prompt(text, label) for text in TEXTS for label in loaded.encoder.label_set.labels]
    prompts += [loaded.encoder.mention_prompt(p, 1, 1) for p in prompts]
    backend = engine.backend(adapters["parallel"])
    _assert_same(backend.generate(prompts, 8), reference.generate(prompts, 8))
    stop = tuple(loaded.encoder.encode("\n"))
    _assert_same(backend.generate(prompts, 8, stop_ids=stop), reference.generate(prompts, 8, stop_ids=stop))


def test_a_logit_bias_moves_vllm_as_it_moves_the_reference(engine, adapters):
    loaded, reference = _reference(adapters["parallel"])
    prompts = [loaded.encoder.count_prompt(text, "PER") for text in TEXTS]
    backend = engine.backend(adapters["parallel"])
    plain = backend.generate(prompts, 4)
    token = next(t for t in (42, 43, 44) if all(t not in g.token_ids for g in plain))
    for bias in ({token: 100.0}, {plain[0].token_ids[0]: -5.0}):
        ours, theirs = backend.generate(prompts, 4, logit_bias=bias), reference.generate(prompts, 4, logit_bias=bias)
        _assert_same(ours, theirs)  # the same choices, and both report the model's own log-probabilities
    assert all(g.token_ids == (token,) * 4 for g in backend.generate(prompts, 4, logit_bias={token: 100.0}))


def test_first_step_scores_match_transformers(engine, adapters):
    loaded, reference = _reference(adapters["parallel"])
    digits = loaded.encoder.count_digit_ids()
    prompts = [loaded.encoder.count_prompt(TEXTS[0], label) for label in loaded.encoder.label_set.labels]
    ours = engine.backend(adapters["parallel"]).generate(prompts, 1, score_ids=digits)
    theirs = reference.generate(prompts, 1, score_ids=digits)
    for mine, expected in zip(ours, theirs):
        assert len(mine.first_scores) == 10
        assert mine.first_scores == pytest.approx(expected.first_scores, abs=2e-3)


def test_lora_changes_the_model(engine, adapters):
    loaded, _ = _reference(adapters["parallel"])
    prompt = [loaded.encoder.count_prompt(TEXTS[0], "PER")]
    base = engine.backend(None).generate(prompt, 4)[0]
    tuned = engine.backend(adapters["parallel"]).generate(prompt, 4)[0]
    assert (base.token_ids, base.logprobs) != (tuned.token_ids, tuned.logprobs)


@pytest.mark.parametrize("mode", ["parallel", "autoregressive"])
def test_decoding_on_vllm_equals_the_reference(engine, adapters, mode):
    configs = [DecodeConfig(max_count=3, count_rule="greedy")]
    if mode == "parallel":
        configs += [DecodeConfig(max_count=3), DecodeConfig(max_count=3, count_rule="quantile", count_quantile=0.7)]
    for config in configs:
        ner = load(adapters[mode], engine.backend(adapters[mode]), decode_config=config)
        reference = load(adapters[mode], backend="transformers", decode_config=config)
        assert ner.mode == mode
        ours, theirs = ner.run(TEXTS), reference.run(TEXTS)
        assert ours.entities == theirs.entities

        def uncached(stats):  # only vLLM has a prefix cache: the reference never reuses a token
            return {k: v for k, v in stats.items() if not k.endswith("_cached_tokens")}

        assert uncached(ours.stats) == uncached(theirs.stats)
        assert ner(TEXTS[1]) == ours.entities[1]


def test_load_checks_inputs_and_backend(engine, adapters):
    ner = load(adapters["parallel"], engine.backend(adapters["parallel"]))
    with pytest.raises(InvalidRequestError, match=r"texts\[1\]: must be a string"):
        ner.batch(["fine", 3])
    long = ner.run(["Peter went to Paris . " * 150])  # about 1,000 tokens: decoded in windows of 512
    assert long.stats["windows"] > 0 and all(0 <= e.start < e.end <= len("Peter went to Paris . " * 150)
                                             for e in long.entities[0])
    with pytest.raises(InvalidRequestError, match=r"texts\[0\]: the prompt and the longest generation alone need "
                                                  r"\d+ tokens but the engine's max_model_len is 512"):
        ner.run(["fine"], decode_config=DecodeConfig(max_mention_tokens=500))
    with pytest.raises(InvalidRequestError, match="texts: must be a list of strings"):
        ner.batch("a string, not a list")
    assert ner.batch([]) == []
    with pytest.raises(ConfigError, match="decodes with adapter .*parallel, not .*autoregressive"):
        load(adapters["autoregressive"], engine.backend(adapters["parallel"]))
    with pytest.raises(ConfigError, match="backend must be one of vllm, transformers; got 'tgi'"):
        load(adapters["parallel"], "tgi")
    with pytest.raises(ConfigError, match="lora must be one of auto, request, merged; got 'fused'"):
        VLLMConfig(lora="fused")


def test_merged_adapter_engine_equals_the_reference(adapters, tmp_path, monkeypatch):
    monkeypatch.setenv("PADELLM_CACHE_DIR", str(tmp_path))
    (backend,) = vllm_backends([adapters["parallel"]], VLLMConfig(lora="merged", dtype="float32", max_model_len=512))
    try:
        assert backend.lora_request is None and backend.engine.model_dir.parent == tmp_path / "merged"
        ner = load(adapters["parallel"], backend)
        reference = load(adapters["parallel"], backend="transformers")
        assert ner.run(TEXTS).entities == reference.run(TEXTS).entities
        loaded, ref_backend = _reference(adapters["parallel"])
        prompts = [loaded.encoder.count_prompt(t, "PER") for t in TEXTS]
        _assert_same(backend.generate(prompts, 6), ref_backend.generate(prompts, 6))
    finally:
        processes = list(backend.engine.llm.llm_engine.engine_core.resources.engine_manager.processes)
        backend.engine.close()
    # Closed, not killed: vLLM's own 5 s grace is too short on a CPU and ends in SIGKILL (exit code -9).
    assert processes and all(p.exitcode is not None and p.exitcode != -9 for p in processes)


def test_an_in_process_engine_decodes_the_same_and_leaves_the_environment_as_it_was(adapters, tmp_path, monkeypatch):
    """in_process: the engine core and worker run in this process (no engine-core child process to wait on); an
    engine started in vLLM's processes after it is one again (vLLM froze its reading of the environment)."""
    import os

    from padellm.evaluation.timeline import TimelineRecorder

    monkeypatch.setenv("PADELLM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    (backend,) = vllm_backends([adapters["parallel"]], VLLMConfig(lora="merged", dtype="float32", max_model_len=512,
                                                                  in_process=True))
    try:
        assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ
        assert type(backend.engine.llm.llm_engine.engine_core).__name__ == "InprocClient"
        ner = load(adapters["parallel"], backend)
        reference = load(adapters["parallel"], backend="transformers")
        assert ner.run(TEXTS).entities == reference.run(TEXTS).entities
        # the timeline recorder reads the in-process engine's steps as it reads a child process's
        with TimelineRecorder(ner) as recorder:
            timeline = recorder.request(TEXTS[0])
        assert timeline.calls and all(call.steps for call in timeline.calls)
        assert timeline.calls[0].steps[0].new == timeline.calls[0].sequences  # every label's branch, first step
    finally:
        backend.engine.close()
    (after,) = vllm_backends([adapters["parallel"]], VLLMConfig(lora="merged", dtype="float32", max_model_len=512))
    try:
        assert type(after.engine.llm.llm_engine.engine_core).__name__ == "SyncMPClient"
    finally:
        after.engine.close()
    with pytest.raises(ConfigError, match="in_process: vLLM's n-gram speculation loads numba"):
        VLLMConfig(in_process=True, speculative_tokens=4)


def test_eval_command_on_vllm(adapters, tmp_path, capsys):
    import json

    from padellm.cli import main

    argv = ["eval", "--systems", "parallel,autoregressive", "--parallel", str(adapters["parallel"]),
            "--autoregressive", str(adapters["autoregressive"]), "--dataset", str(adapters["corpus"]),
            "--sample", "2", "--warmup", "1", "--no-progress", "--allow-label-subset", "--lora", "request",
            "--dtype", "float32", "--max-model-len", "512", "--max-num-seqs", "32", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "speed-ups (x) over autoregressive" in capsys.readouterr().out
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["vllm_config"]["lora"] == "request" and result["data"]["sample_indices"] == [0, 2]
    assert len(result["latencies_ms"]["parallel"]) == len(result["latencies_ms"]["autoregressive"]) == 2
    systems = result["summary"]["systems"]
    assert systems["autoregressive"]["sequences_per_sentence"] == 1
    assert systems["parallel"]["stats"]["count_prompts"] == 2 * 4
    # The same adapters on the transformers reference backend find the same entities.
    reference = tmp_path / "reference"
    assert main([*argv[:-1], str(reference), "--backend", "transformers"]) == 0
    def spans(folder):
        records = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        return [{name: [(e["start"], e["end"], e["label"]) for e in found] for name, found in r["predictions"].items()}
                for r in records]

    assert len(spans(tmp_path)) == 2 and spans(tmp_path) == spans(reference)


def test_prompt_lookup_speculative_decoding_changes_no_output(adapters, tmp_path, monkeypatch):
    """n-gram speculation proposes tokens copied from the prompt and verifies them: greedy output must not move."""
    monkeypatch.setenv("PADELLM_CACHE_DIR", str(tmp_path))
    config = VLLMConfig(lora="merged", dtype="float32", max_model_len=512, speculative_tokens=4, prompt_lookup_max=3)
    from padellm.engine.vllm_config import engine_arguments

    assert engine_arguments(tmp_path, config, False)["speculative_config"] == {
        "method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3, "prompt_lookup_min": 1}
    backends = vllm_backends([adapters["parallel"], adapters["autoregressive"]], config)
    greedy = DecodeConfig(count_rule="greedy")  # one-step digit scoring and n-gram speculation do not mix in vLLM
    try:
        for backend, mode in zip(backends, ("parallel", "autoregressive")):
            ner = load(adapters[mode], backend, decode_config=greedy)
            reference = load(adapters[mode], backend="transformers", decode_config=greedy)
            assert ner.run(TEXTS).entities == reference.run(TEXTS).entities, mode
        # refused before decoding (before any engine starts, when load starts it), naming the setting
        with pytest.raises(ConfigError, match="speculative_tokens=4: .*count_rule 'argmax'"):
            load(adapters["parallel"], backends[0])
        load(adapters["autoregressive"], backends[1])  # no count stage: nothing to refuse
        with pytest.raises(ConfigError, match="cannot score the count digits in one step"):
            backends[0].generate([[1, 2, 3]], 1, score_ids=(5, 6))
        with pytest.raises(ConfigError, match="without the logit bias"):
            backends[0].generate([[1, 2, 3]], 1, logit_bias={5: -1.0})
    finally:
        for backend in backends:
            backend.engine.close()


def test_a_gemma_adapter_on_vllm_equals_the_reference(tiny_gemma_dir, tmp_path, monkeypatch):
    """The Gemma family on vLLM (its sliding-window layers, head_dim 64 here, the BOS that padellm adds to every
    prompt): a label-wise adapter merged into a tiny Gemma 3 decodes the same entities, tokens and log-probabilities
    as the transformers reference."""
    from padellm.cli import load_finetune_config
    from padellm.training.lora import train

    monkeypatch.setenv("PADELLM_CACHE_DIR", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("EU B-ORG\nrejects O\nGerman B-MISC\n\nPeter B-PER\nBlackburn I-PER\n")
    train(load_finetune_config(None, {"output_dir": str(tmp_path / "gemma"), "base_model": str(tiny_gemma_dir),
                                      "data.dataset": str(corpus), "data.dev_split": "", "train.max_steps": "6",
                                      "train.lr": "0.05", "train.precision": "fp32", "lora.rank": "4"}),
          progress=False)
    adapter = tmp_path / "gemma"
    (backend,) = vllm_backends([adapter], VLLMConfig(lora="merged", dtype="float32", max_model_len=512))
    try:
        loaded, reference = _reference(adapter)
        prompts = [loaded.encoder.count_prompt(t, label) for t in TEXTS for label in loaded.encoder.label_set.labels]
        assert all(p[0] == 2 and p.count(2) == 1 for p in prompts)  # Gemma's <bos>, once
        _assert_same(backend.generate(prompts, 8), reference.generate(prompts, 8))
        assert load(adapter, backend).run(TEXTS).entities == load(adapter, backend="transformers").run(TEXTS).entities
    finally:
        backend.engine.close()
