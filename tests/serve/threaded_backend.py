"""Test helper: the service on the transformers reference backend (fast, in-process), through an
asynchronous wrapper that runs one generate call at a time in a worker thread."""

from __future__ import annotations

import asyncio
import threading

from padellm.adapters import load_adapter
from padellm.engine.backend import TransformersBackend
from padellm.ner import load


class ThreadedBackend:
    """An asynchronous backend over a blocking one."""

    def __init__(self, backend, adapter, max_model_len: int = 256):
        self.backend, self.adapter, self.max_model_len = backend, adapter, max_model_len
        self.lock = threading.Lock()

    async def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=()):
        def run():
            with self.lock:
                return self.backend.generate(prompts, max_new_tokens, stop_ids, score_ids)

        return await asyncio.to_thread(run)


def transformers_loader(adapters, decode_config, vllm_config):
    ners = []
    for adapter in adapters:
        loaded = load_adapter(adapter)
        backend = ThreadedBackend(TransformersBackend(loaded.model, loaded.encoder.eos_id), adapter.resolve())
        ners.append(load(adapter, backend, decode_config=decode_config))
    return ners
