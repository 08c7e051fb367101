"""The vLLM generation backend: one ``vllm.LLM`` engine per base model, shared by every adapter trained on it.

Adapters are served either through ``LoRARequest`` on one engine over their shared base model (each adapter
folder gets one integer id for the engine's lifetime), or merged into a cached copy of the base model with one
engine per adapter: vLLM's CPU LoRA kernels make a step 3-19x slower than the merged model's (measured with
SmolLM2-135M on 2 cores), so ``lora="auto"`` merges on CPU and uses LoRA requests on GPUs. Prefix caching is
on, decoding is greedy, and each generated token comes back with its log-probability. What an engine is started
with, and the checks before it starts, are in ``padellm.engine.vllm_config``.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

from padellm.engine import vllm_config
from padellm.engine.backend import Generation
from padellm.engine.vllm_config import (SHUTDOWN_TIMEOUT_S, VLLMConfig, check_call_with_speculation, engine_arguments,
                                        import_vllm)
from padellm.errors import ConfigError

logger = logging.getLogger(__name__)


class LoRARegistry:
    """Integer ids for the adapter folders one engine serves through ``LoRARequest`` (stable for its lifetime)."""

    def __init__(self, model_dir: Path, enabled: bool):
        self.model_dir, self.enabled = model_dir, enabled
        self._ids: dict[Path, int] = {}

    def request(self, adapter_dir: str | Path):
        from vllm.lora.request import LoRARequest

        folder = Path(adapter_dir).resolve()
        if not self.enabled:
            raise ConfigError(f"the vLLM engine on {self.model_dir} was started without LoRA; it cannot serve {folder}")
        lora_id = self._ids.setdefault(folder, len(self._ids) + 1)
        return LoRARequest(f"{folder.name}-{lora_id}", lora_id, str(folder))


class VLLMEngine:
    """One ``vllm.LLM`` on a model folder: a base model whose adapters ``backend(adapter_dir)`` serves through LoRA
    requests, or an adapter merged into its base model (``backend()``)."""

    def __init__(self, model_dir: str | Path, config: VLLMConfig = VLLMConfig(), enable_lora: bool = True):
        vllm = import_vllm()
        self.model_dir = Path(model_dir)
        self.config = config
        self.loras = LoRARegistry(self.model_dir, enable_lora)
        with in_process(config.in_process):
            self.llm = vllm.LLM(**engine_arguments(self.model_dir, config, enable_lora))
        self.eos_id = self.llm.get_tokenizer().eos_token_id

    def backend(self, adapter_dir: str | Path | None = None) -> "VLLMBackend":
        """A backend that decodes with ``adapter_dir``'s LoRA weights (None: the base model)."""
        if adapter_dir is None:
            return VLLMBackend(self, None)
        return VLLMBackend(self, self.loras.request(adapter_dir), Path(adapter_dir).resolve())

    def close(self) -> None:
        """Stop the engine's processes now (they exit on their own; see ``SHUTDOWN_TIMEOUT_S``)."""
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if shutdown is not None:
            shutdown(timeout=SHUTDOWN_TIMEOUT_S)


@contextmanager
def in_process(enabled: bool):
    """With ``enabled``, VLLM_ENABLE_V1_MULTIPROCESSING=0 while an engine starts (vLLM reads it then), and as it
    was afterwards; otherwise the environment as it is. An engine core started in this process freezes vLLM's
    reading of the environment for the process (``vllm.envs.enable_envs_cache``): unfreeze it first, so that every
    engine starts with the environment as it is now (its own mode, KV-cache size, threads)."""
    from vllm import envs

    getattr(envs, "disable_envs_cache", lambda: None)()
    key, before = "VLLM_ENABLE_V1_MULTIPROCESSING", os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    if enabled:
        os.environ[key] = "0"
    try:
        yield
    finally:
        if enabled and before is None:
            del os.environ[key]
        elif enabled:
            os.environ[key] = before


def close_engines(engines) -> None:
    """Close engines (sync or async) side by side: each waits seconds for its processes, so one after the other
    costs their sum."""
    engines = list(engines)
    if len(engines) == 1:
        engines[0].close()
    elif engines:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(engines)) as pool:
            for future in [pool.submit(engine.close) for engine in engines]:
                future.result()


def engine_plan(adapters: list[str | Path], config: VLLMConfig) -> list[tuple[Path, bool, list[Path]]]:
    """Which engines serve ``adapters``: (model folder, LoRA enabled, adapter folders it serves) per engine.
    LoRA requests: one engine over the adapters' shared base model. Merged: one engine per adapter, on its merged
    copy of the base model (built once into the cache)."""
    from padellm.adapters import base_model_of, merged_model

    folders = [Path(a).resolve() for a in adapters]
    mode = config.lora
    if mode == "auto":
        mode = "merged" if vllm_config.on_cpu() else "request"
    if mode == "merged":
        return [(merged_model(folder), False, [folder]) for folder in folders]
    bases = {base_model_of(f).resolve() for f in folders}
    if len(bases) > 1:
        raise ConfigError(f"LoRA requests share one engine, but the adapters have different base models: "
                          f"{', '.join(map(str, sorted(bases)))}; use lora=merged")
    return [(bases.pop(), True, folders)]


def vllm_backends(adapters: list[str | Path], config: VLLMConfig = VLLMConfig()) -> list["VLLMBackend"]:
    """One backend per adapter folder, in order (see ``engine_plan`` for how engines are shared)."""
    backends = {}
    for model_dir, lora, folders in engine_plan(adapters, config):
        engine = VLLMEngine(model_dir, config, enable_lora=lora)
        for folder in folders:
            backends[folder] = engine.backend(folder) if lora else VLLMBackend(engine, None, folder)
    return [backends[Path(a).resolve()] for a in adapters]


def sampling_params(max_new_tokens: int, stop_ids: tuple[int, ...], score_ids: tuple[int, ...],
                    logit_bias: dict[int, float] | None = None):
    """Greedy decoding returning each generated token's log-probability (and, with ``score_ids``, those tokens'
    log-probabilities at the first step); token ids only, no detokenisation. ``logit_bias`` moves the greedy
    choice; vLLM's log-probabilities stay the model's own (its default logprobs_mode, raw_logprobs)."""
    from vllm import SamplingParams

    return SamplingParams(
        temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=list(stop_ids) or None,
        logprobs=len(score_ids),  # vLLM wants them equal when logprob_token_ids is set
        logprob_token_ids=list(score_ids) or None, detokenize=False,
        logit_bias=dict(logit_bias) if logit_bias else None,
    )


def to_generation(completion, stops: set[int], score_ids: tuple[int, ...], cached_tokens: int | None = 0) -> Generation:
    """A vLLM ``CompletionOutput`` as a ``Generation`` (the ending EOS or stop token removed); ``cached_tokens``:
    the request's ``num_cached_tokens`` (prompt tokens served from the prefix cache)."""
    token_ids = list(completion.token_ids)
    steps = list(completion.logprobs or [])
    logprobs = [step[token].logprob for step, token in zip(steps, token_ids)]
    finished = completion.finish_reason == "stop" and bool(token_ids) and token_ids[-1] in stops
    if finished:
        token_ids, logprobs = token_ids[:-1], logprobs[:-1]
    first_scores = None
    if score_ids and steps:
        first_scores = tuple(steps[0][i].logprob if i in steps[0] else float("-inf") for i in score_ids)
    return Generation(tuple(token_ids), tuple(logprobs), finished, first_scores, int(cached_tokens or 0))


class VLLMBackend:
    """``GenerationBackend`` on a shared ``VLLMEngine``, optionally with one LoRA adapter."""

    def __init__(self, engine: VLLMEngine, lora_request=None, adapter: Path | None = None):
        self.engine = engine
        self.lora_request = lora_request
        self.adapter = adapter
        """The adapter folder this backend decodes with (None: the engine's model as it is)."""
        self.eos_id = engine.eos_id
        self.max_model_len = engine.config.max_model_len

    def generate(self, prompts: list[list[int]], max_new_tokens: int, stop_ids: tuple[int, ...] = (),
                 score_ids: tuple[int, ...] = (), logit_bias: dict[int, float] | None = None) -> list[Generation]:
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        check_call_with_speculation(self.engine.config, score_ids, logit_bias)
        outputs = self.engine.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
                                           sampling_params(max_new_tokens, stop_ids, score_ids, logit_bias),
                                           use_tqdm=False, lora_request=self.lora_request)
        stops = {self.eos_id, *stop_ids}
        return [to_generation(output.outputs[0], stops, score_ids, getattr(output, "num_cached_tokens", 0))
                for output in outputs]
