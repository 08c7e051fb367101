"""vLLM's asynchronous engine as a generation backend: the server's path.

Every prompt becomes its own engine request, so vLLM's continuous batching schedules the branches of all
concurrent callers together instead of one caller's batch at a time. ``generate`` is a coroutine; cancelling it
(a client that disconnects, a request that times out) aborts every engine request it started.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path

from padellm.engine.backend import Generation
from padellm.engine.vllm_backend import LoRARegistry, engine_plan, sampling_params, to_generation
from padellm.engine.vllm_config import (SHUTDOWN_TIMEOUT_S, VLLMConfig, check_call_with_speculation, engine_arguments,
                                        import_vllm)

logger = logging.getLogger(__name__)


class AsyncVLLMEngine:
    """One ``vllm`` ``AsyncLLM`` (its engine core runs in a child process) on a model folder."""

    def __init__(self, model_dir: str | Path, config: VLLMConfig = VLLMConfig(), enable_lora: bool = True):
        vllm = import_vllm()
        from vllm.v1.engine.async_llm import AsyncLLM

        self.model_dir = Path(model_dir)
        self.config = config
        self.loras = LoRARegistry(self.model_dir, enable_lora)
        arguments = engine_arguments(self.model_dir, config, enable_lora)
        self.llm = AsyncLLM.from_engine_args(vllm.AsyncEngineArgs(**arguments, disable_log_stats=True))
        self.eos_id = self.llm.get_tokenizer().eos_token_id
        self._ids = itertools.count()

    def next_request_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def num_unfinished_requests(self) -> int:
        """Engine requests (sequences) admitted and not yet finished: the engine's queue."""
        return self.llm.get_num_unfinished_requests()

    def close(self) -> None:
        self.llm.shutdown(timeout=SHUTDOWN_TIMEOUT_S)


def async_vllm_backends(adapters: list[str | Path], config: VLLMConfig = VLLMConfig()) -> list["AsyncVLLMBackend"]:
    """One asynchronous backend per adapter folder, in order, on as few engines as ``engine_plan`` allows.
    Blocking (engines take seconds to start): run it in a worker thread from async code."""
    backends = {}
    for model_dir, lora, folders in engine_plan(adapters, config):
        engine = AsyncVLLMEngine(model_dir, config, enable_lora=lora)
        for folder in folders:
            backends[folder] = AsyncVLLMBackend(engine, engine.loras.request(folder) if lora else None, folder)
    return [backends[Path(a).resolve()] for a in adapters]


class AsyncVLLMBackend:
    """The asynchronous counterpart of ``VLLMBackend``: ``await backend.generate(...)``."""

    def __init__(self, engine: AsyncVLLMEngine, lora_request=None, adapter: Path | None = None):
        self.engine = engine
        self.lora_request = lora_request
        self.adapter = adapter
        self.eos_id = engine.eos_id
        self.max_model_len = engine.config.max_model_len
        self.request_prefix = adapter.name if adapter else engine.model_dir.name

    async def generate(self, prompts: list[list[int]], max_new_tokens: int, stop_ids: tuple[int, ...] = (),
                       score_ids: tuple[int, ...] = (), logit_bias: dict[int, float] | None = None
                       ) -> list[Generation]:
        from vllm.inputs import TokensPrompt

        check_call_with_speculation(self.engine.config, score_ids, logit_bias)
        params = sampling_params(max_new_tokens, stop_ids, score_ids, logit_bias)
        stops = {self.eos_id, *stop_ids}

        async def one(prompt: list[int]) -> Generation:
            final = None
            request_id = self.engine.next_request_id(self.request_prefix)
            async for output in self.engine.llm.generate(TokensPrompt(prompt_token_ids=list(prompt)), params,
                                                         request_id, lora_request=self.lora_request):
                final = output
            return to_generation(final.outputs[0], stops, score_ids, getattr(final, "num_cached_tokens", 0))

        # A task group cancels the other prompts' requests when one fails or the caller is cancelled.
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(prompt)) for prompt in prompts]
        return [task.result() for task in tasks]
