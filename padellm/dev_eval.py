"""The dev F1 that ``padellm finetune`` writes into metrics.json: greedy decoding of a dev sample."""

from __future__ import annotations

from padellm.encoding import PromptEncoder
from padellm.engine.backend import TransformersBackend
from padellm.engine.decoding import decode
from padellm.metrics import score
from padellm.types import Example


def dev_scores(model, encoder: PromptEncoder, examples: list[Example], batch_size: int = 64, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    backend = TransformersBackend(model, encoder.eos_id, batch_size=batch_size)
    predictions = []
    chunk = 32
    for start in tqdm(range(0, len(examples), chunk), desc="dev decoding", unit="batch", disable=not progress):
        texts = [ex.text for ex in examples[start : start + chunk]]
        predictions += decode(texts, encoder, backend).entities
    texts = [ex.text for ex in examples]
    gold = [ex.entities for ex in examples]
    span = score(texts, gold, predictions, "span")
    string = score(texts, gold, predictions, "string")
    return {"sentences": len(examples), "span": span.to_dict(), "string": string.to_dict()}
