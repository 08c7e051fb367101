"""F1 of a model by greedy decoding on the transformers backend: the dev F1 that ``padellm finetune`` writes
into metrics.json, and ``eval/score_adapter.py``."""

from __future__ import annotations

from padellm.encoding import PromptEncoder
from padellm.engine.backend import TransformersBackend
from padellm.engine.decoding import decode
from padellm.metrics import score
from padellm.types import Example


def dev_scores(model, encoder: PromptEncoder, examples: list[Example], batch_size: int = 64, progress: bool = True,
               desc: str = "dev decoding") -> dict:
    """Span and string-set scores of greedy decoding on ``examples``, with decoding statistics."""
    from collections import Counter

    from tqdm.auto import tqdm

    backend = TransformersBackend(model, encoder.eos_id, batch_size=batch_size)
    predictions = []
    stats: Counter = Counter()
    seconds = 0.0
    chunk = 32
    for start in tqdm(range(0, len(examples), chunk), desc=desc, unit="chunk", disable=not progress):
        result = decode([ex.text for ex in examples[start : start + chunk]], encoder, backend)
        predictions += result.entities
        stats.update(result.stats)
        seconds += result.timings["total_s"]
    texts = [ex.text for ex in examples]
    gold = [ex.entities for ex in examples]
    return {"sentences": len(examples), "span": score(texts, gold, predictions, "span").to_dict(),
            "string": score(texts, gold, predictions, "string").to_dict(), "decode_stats": dict(stats),
            "decode_s": seconds}
