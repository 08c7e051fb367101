"""What a vLLM engine is started with, checked before it starts: ``VLLMConfig`` (threads, KV cache, block size,
LoRA mode, speculation, extra engine arguments), the CPU environment and the decode settings an engine can run.
``padellm.engine.vllm_backend`` starts and drives the engines.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

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
    in_process: bool = False
    """The blocking engine (``padellm.load``, extract, eval) runs its engine core and model worker in padellm's own
    process (vLLM's VLLM_ENABLE_V1_MULTIPROCESSING=0): a request's sequences are all scheduled before the first
    engine step (in vLLM's own processes the core starts stepping on the first one it receives, and the others
    join steps later), there is no inter-process hop per step, and an idle engine polls no core. Measured on the
    shipped SmolLM2 CoNLL-2003 adapters, 100 test sentences one at a time (eval/timeline.py, docs/speed.md): parallel
    mean 662 -> 511 ms, branches entering after the first step 2.26 -> 0 of 4, autoregressive 877 -> 863 ms.
    Not with speculative_tokens: vLLM's n-gram proposer loads numba, and a later in-process engine's start then
    fails in vLLM's scan of the process's modules (llvmlite's objects break it); an in-process engine shares the
    process with whatever else it imported. False: vLLM's default (on CPU, three processes: padellm, the engine
    core, the worker). The server's asynchronous engine always runs in its own process."""
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
        if self.speculative_tokens and self.in_process:
            problems.append("in_process: vLLM's n-gram speculation loads numba, after which an engine started in this "
                            "process fails in vLLM's kernel set-up; use speculative_tokens 0 or --no-in-process")
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


def on_cpu() -> bool:
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
    if on_cpu():
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


def check_decoding(decode_config, config: VLLMConfig, decoding_format) -> None:
    """Refuse, before any engine starts, a ``DecodeConfig`` this engine configuration cannot run for an adapter of
    ``decoding_format`` (``padellm.formats``; its count stage and logit biases are what matter). Measured: vLLM 0.32's n-gram speculation breaks on ``logprob_token_ids`` ("shape
    mismatch: value tensor of shape [11] cannot be broadcast to indexing result of shape [1, 49152]") and kills
    the engine, so a one-step count stage (count_rule argmax or quantile scores the digits) cannot run with it.
    And its rejection sampler verifies the speculated tokens on logits without the request's ``logit_bias`` (it
    applies min_tokens only, ``vllm/v1/sample/rejection_sampler.py``), so a count-free adapter's none or end bias
    would hold at some steps and not at others: greedy output would depend on what the n-gram proposer guessed."""
    if not config.speculative_tokens:
        return
    if decoding_format.count_stage and decode_config.count_rule != "greedy":
        raise ConfigError(f"speculative_tokens={config.speculative_tokens}: vLLM's n-gram speculation cannot score "
                          f"the count digits in one step (count_rule {decode_config.count_rule!r}); use count_rule "
                          "greedy, or speculative_tokens 0")
    biased = [f"{name} {getattr(decode_config, name):g}" for name in decoding_format.biases
              if getattr(decode_config, name)]
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
