"""Test helper: the service on the transformers reference backend (fast, in-process), through an
asynchronous wrapper that runs one generate call at a time, in the order they come, in a worker thread."""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from padellm.adapters import load_adapter
from padellm.engine.backend import TransformersBackend
from padellm.ner import load

sys.path.insert(0, str(Path(__file__).parents[1] / "formats"))
from scripted import ScriptedBackend  # noqa: E402

SENTENCE = "Peter Blackburn went to Brussels ."
ANSWERS = {  # the tiny corpus names its labels by their tags; the counted format (padellm-en-v1)
    "PER\n\n<num>": ("1", 0.0), "LOC\n\n<num>": ("1", 0.0), "ORG\n\n<num>": ("0", 0.0), "MISC\n\n<num>": ("0", 0.0),
    "PER\n\n<num>1\n<mention 1>": ("Peter Blackburn", -0.05), "LOC\n\n<num>1\n<mention 1>": ("Brussels", -0.2)}
"""What ``scripted_loader``'s backend answers: for ``SENTENCE``, PER "Peter Blackburn" and LOC "Brussels"."""


class ThreadedBackend:
    """An asynchronous backend over a blocking one: calls run one at a time, first come first served (as an
    engine's scheduler would); a call cancelled before it starts never runs."""

    def __init__(self, backend, adapter, max_model_len: int = 256, delay_s: float = 0.0):
        """``delay_s``: each call also takes this long (a slow engine)."""
        self.backend, self.adapter, self.max_model_len, self.delay_s = backend, adapter, max_model_len, delay_s
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="threaded-backend")

    async def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=()):
        def run():
            time.sleep(self.delay_s)
            return self.backend.generate(prompts, max_new_tokens, stop_ids, score_ids)

        return await asyncio.get_running_loop().run_in_executor(self.worker, run)


def threaded_loader(backend_of, delay_s: float = 0.0):
    """A service loader: each adapter decoded on ``backend_of(loaded adapter)`` behind a ``ThreadedBackend``."""

    def loader(adapters, decode_config, vllm_config):
        return [load(adapter, ThreadedBackend(backend_of(load_adapter(adapter)), adapter.resolve(), delay_s=delay_s),
                     decode_config=decode_config) for adapter in adapters]

    return loader


def transformers_loader(adapters, decode_config, vllm_config, delay_s: float = 0.0):
    """The transformers reference backend (``delay_s``: each call also takes this long)."""
    reference = threaded_loader(lambda loaded: TransformersBackend(loaded.model, loaded.encoder.eos_id), delay_s)
    return reference(adapters, decode_config, vllm_config)


scripted_loader = threaded_loader(lambda loaded: ScriptedBackend(loaded.encoder, ANSWERS))
"""The tiny parallel adapter's real decoding path (template, count stage, branches, alignment, dedup) on a backend
that answers from ``ANSWERS``, so that the entities are known (a tiny random model finds none)."""
