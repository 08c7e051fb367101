"""padellm on Ray Data: one engine per actor, batches of rows decoded through ``ner.batch``.

    import ray
    from padellm.integrations.ray import NERPredictor

    ds = ray.data.read_json("texts.jsonl")                     # rows with a "text" column
    ds = ds.map_batches(NERPredictor, fn_constructor_kwargs={"adapter": "adapters/conll2003-parallel"},
                        concurrency=2, batch_size=64)
    ds.write_json("entities/")                                 # each row gains "entities"

Each actor loads the adapter once (its own vLLM engine), then decodes every batch it is given in one call. On a
cluster, start Ray there (``ray start --address ...``) and give each actor its accelerator
(``map_batches(..., num_gpus=1)``). Ray is an optional extra (``pip install -e .[ray]``); this module imports
nothing of Ray's, so ``NERPredictor`` also works on a plain dict of columns.
"""

from __future__ import annotations

from padellm.errors import InvalidRequestError


class NERPredictor:
    """A callable class for ``Dataset.map_batches``: ``batch[text_column]`` in, the batch with an ``entities``
    column out (per row a list of ``{"start", "end", "label", "text"}``, plus ``score`` and ``probability`` where the
    decoder gives them)."""

    def __init__(self, adapter: str, backend: str = "vllm", text_column: str = "text", decode: dict | None = None,
                 engine: dict | None = None):
        from padellm.engine.vllm_config import VLLMConfig
        from padellm.ner import load

        self.text_column = text_column
        self.ner = load(adapter, backend, decode_config=dict(decode or {}) or None,
                        vllm_config=VLLMConfig(**(engine or {})) if backend == "vllm" else None)

    def __call__(self, batch: dict) -> dict:
        from padellm.ner import entity_record

        if self.text_column not in batch:
            raise InvalidRequestError(self.text_column, sorted(batch), "no such column in the batch; pass "
                                      "text_column=... in fn_constructor_kwargs")
        texts = [str(text) for text in batch[self.text_column]]
        found = self.ner.batch(texts)
        records = [[entity_record(text, e) for e in entities] for text, entities in zip(texts, found)]
        if hasattr(batch, "assign"):  # batch_format="pandas"
            return batch.assign(entities=records)
        return {**batch, "entities": records}
