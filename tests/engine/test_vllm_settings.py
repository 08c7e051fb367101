"""VLLMConfig's CPU runtime settings, checked without starting an engine."""

import pytest
from conftest import require

from padellm.engine.decoding import DecodeConfig
from padellm.engine.vllm_backend import VLLMEngine, close_engines
from padellm.engine.vllm_config import SHUTDOWN_TIMEOUT_S, VLLMConfig, _cpu_environment, check_decoding, library_path
from padellm.errors import ConfigError


def test_preloaded_libraries_go_first_into_ld_preload(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libiomp5.so").write_bytes(b"")
    monkeypatch.setattr("sys.prefix", str(tmp_path))
    monkeypatch.setenv("LD_PRELOAD", "/opt/other.so")
    assert library_path("iomp") == str(tmp_path / "lib" / "libiomp5.so")
    env = _cpu_environment(VLLMConfig(preload="iomp", kv_cache_gib=2))
    assert env["LD_PRELOAD"] == f"{tmp_path / 'lib' / 'libiomp5.so'}:/opt/other.so"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert "LD_PRELOAD" not in _cpu_environment(VLLMConfig())


def test_unknown_or_missing_libraries_are_named(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="preload must be a comma-separated subset of tcmalloc, iomp; got 'jemalloc'"):
        VLLMConfig(preload="jemalloc")
    monkeypatch.setattr("sys.prefix", str(tmp_path))
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    with pytest.raises(ConfigError, match="iomp .* is not installed .*pip install intel-openmp"):
        library_path("iomp")


def test_speculative_decoding_settings_are_checked():
    with pytest.raises(ConfigError, match="speculative_tokens must be >= 0"):
        VLLMConfig(speculative_tokens=-1)
    with pytest.raises(ConfigError, match="prompt_lookup_max must be >= 1"):
        VLLMConfig(speculative_tokens=4, prompt_lookup_max=0)


def test_speculation_with_a_one_step_count_stage_is_refused_before_an_engine_starts():
    from padellm.formats import format_of
    from padellm.prompts.templates import load_template

    speculative = VLLMConfig(speculative_tokens=4)
    counting = format_of(load_template("padellm-en-v1"))
    for rule in ("argmax", "quantile"):
        with pytest.raises(ConfigError, match=f"speculative_tokens=4: .*count_rule '{rule}'.*use count_rule greedy"):
            check_decoding(DecodeConfig(count_rule=rule), speculative, counting)
    check_decoding(DecodeConfig(count_rule="greedy"), speculative, counting)
    for template in ("autoregressive-en-v1", "padellm-en-branches-v1"):  # no count stage
        check_decoding(DecodeConfig(), speculative, format_of(load_template(template)))
    check_decoding(DecodeConfig(), VLLMConfig(), counting)


def test_speculation_with_a_logit_bias_is_refused_before_an_engine_starts():
    """vLLM 0.32 verifies speculated tokens on logits without the request's logit bias."""
    from padellm.formats import format_of
    from padellm.prompts.templates import load_template

    speculative = VLLMConfig(speculative_tokens=4)
    labelwise = format_of(load_template("padellm-en-labelwise-v1"))
    with pytest.raises(ConfigError, match=r"speculative_tokens=4: .*none_bias -1 and end_bias -1 set.*"
                                          r"--none-bias 0 --end-bias 0, or speculative_tokens 0"):
        check_decoding(DecodeConfig(none_bias=-1, end_bias=-1), speculative, labelwise)
    branches = format_of(load_template("padellm-en-branches-v1"))
    with pytest.raises(ConfigError, match=r"without the logit bias that none_bias -0.5 set"):
        check_decoding(DecodeConfig(none_bias=-0.5, end_bias=-1), speculative, branches)
    check_decoding(DecodeConfig(end_bias=-1), speculative, branches)  # the branches do not use end_bias
    check_decoding(DecodeConfig(), speculative, labelwise)  # no bias: nothing to refuse
    check_decoding(DecodeConfig(none_bias=-1, end_bias=-1), VLLMConfig(), labelwise)  # no speculation


def test_auto_dtype_is_float32_on_a_cpu_without_native_bf16(monkeypatch):
    from padellm.engine.vllm_config import cpu_dtype

    monkeypatch.setattr("padellm.models.cpu_has_native_bf16", lambda: False)
    assert cpu_dtype("auto") == "float32" and cpu_dtype("bfloat16") == "bfloat16"
    monkeypatch.setattr("padellm.models.cpu_has_native_bf16", lambda: True)
    assert cpu_dtype("auto") == "auto" and cpu_dtype("float32") == "float32"


def test_engines_close_with_time_to_exit_and_side_by_side():
    class EngineCore:
        def __init__(self):
            self.timeouts = []

        def shutdown(self, timeout=None):
            self.timeouts.append(timeout)

    engine = object.__new__(VLLMEngine)
    engine.llm = type("LLM", (), {})()
    engine.llm.llm_engine = type("LLMEngine", (), {})()
    engine.llm.llm_engine.engine_core = core = EngineCore()
    engine.close()
    assert core.timeouts == [SHUTDOWN_TIMEOUT_S] and SHUTDOWN_TIMEOUT_S > 5

    import threading

    barrier = threading.Barrier(3, timeout=10)  # passes only if all three closes run at once

    class Slow:
        closed = False

        def close(self):
            barrier.wait()
            self.closed = True

    engines = [Slow(), Slow(), Slow()]
    close_engines(engines)
    assert all(e.closed for e in engines)
    close_engines([])


def test_parallelism_and_any_engine_argument_reach_the_engine(monkeypatch, tmp_path):
    require("vllm")
    from padellm.cli import build_parser
    from padellm.configargs import dataclass_from_args, dataclass_to_argv
    from padellm.engine.vllm_config import engine_arguments

    monkeypatch.setattr("padellm.engine.vllm_config.on_cpu", lambda: False)  # as on a GPU machine
    args = build_parser().parse_args(["extract", "x", "--tensor-parallel-size", "4", "--data-parallel-size", "2",
                                      "--engine-arg", "seed=7", "--engine-arg", "tokenizer_mode=slow",
                                      "--engine-arg", 'hf_overrides={"a": 1}'])
    config = dataclass_from_args(VLLMConfig, args)
    assert config.engine_arg == ("seed=7", "tokenizer_mode=slow", 'hf_overrides={"a": 1}')
    again = build_parser().parse_args(["extract", *dataclass_to_argv(config)])  # as a child process gets it
    assert dataclass_from_args(VLLMConfig, again) == config
    kwargs = engine_arguments(tmp_path, config, enable_lora=False)
    assert kwargs["tensor_parallel_size"] == 4 and kwargs["data_parallel_size"] == 2
    assert "pipeline_parallel_size" not in kwargs  # 1: vLLM's own default, left to it
    assert kwargs["seed"] == 7 and kwargs["tokenizer_mode"] == "slow" and kwargs["hf_overrides"] == {"a": 1}
    import vllm

    vllm.EngineArgs(**kwargs)  # vLLM accepts them all
    with pytest.raises(ConfigError, match="engine_arg 'sead' is not a field of vLLM's EngineArgs"):
        engine_arguments(tmp_path, VLLMConfig(engine_arg=("sead=1",)), enable_lora=False)
    with pytest.raises(ConfigError, match="engine_arg 'max_model_len': padellm sets it; use --max-model-len"):
        engine_arguments(tmp_path, VLLMConfig(engine_arg=("max_model_len=9",)), enable_lora=False)
    with pytest.raises(ConfigError, match="engine_arg must be KEY=VALUE; got 'seed'"):
        VLLMConfig(engine_arg=("seed",))
    with pytest.raises(ConfigError, match="tensor_parallel_size must be >= 1; got 0"):
        VLLMConfig(tensor_parallel_size=0)
