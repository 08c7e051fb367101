"""Dev scores that ``padellm finetune`` writes into metrics.json: the F1 of an LLM adapter by greedy decoding on the
transformers backend (also ``eval/score_adapter.py``), and the F1 of every FastNER exit."""

from __future__ import annotations

from padellm.baselines.fastner import FastNER
from padellm.baselines.fastner_inference import predict_examples
from padellm.engine.backend import TransformersBackend
from padellm.formats import decode
from padellm.metrics import count_accuracy, gold_counts, score
from padellm.prompts.encoding import PromptEncoder
from padellm.types import Example


def dev_scores(model, encoder: PromptEncoder, examples: list[Example], batch_size: int = 64, progress: bool = True,
               desc: str = "dev decoding") -> dict:
    """Span and string-set scores of greedy decoding of ``model`` on ``examples``, with decoding statistics."""
    return backend_scores(TransformersBackend(model, encoder.eos_id, batch_size=batch_size), encoder, examples,
                          progress, desc)


def backend_scores(backend, encoder: PromptEncoder, examples: list[Example], progress: bool = True,
                   desc: str = "dev decoding") -> dict:
    """``dev_scores`` of any generation backend."""
    from collections import Counter

    from tqdm.auto import tqdm

    predictions, counts = [], []
    stats: Counter = Counter()
    seconds = 0.0
    chunk = 32
    for start in tqdm(range(0, len(examples), chunk), desc=desc, unit="chunk", disable=not progress):
        result = decode([ex.text for ex in examples[start : start + chunk]], encoder, backend)
        predictions += result.entities
        counts += result.counts
        stats.update(result.stats)
        seconds += result.timings["total_s"]
    texts = [ex.text for ex in examples]
    gold = [ex.entities for ex in examples]
    scores = {"sentences": len(examples), "span": score(texts, gold, predictions, "span").to_dict(),
              "string": score(texts, gold, predictions, "string").to_dict(), "decode_stats": dict(stats),
              "decode_s": seconds}
    if counts:
        scores["counts"] = count_accuracy(counts, gold_counts(examples, encoder.label_set.labels))
    return scores


def exit_f1(model: FastNER, tokenizer, examples: list[Example], progress: bool = False) -> list[float]:
    """Micro span F1 (%) of every exit without early exit, shallowest first."""
    from tqdm.auto import tqdm

    texts, gold = [ex.text for ex in examples], [list(ex.entities) for ex in examples]
    f1 = []
    for layers in tqdm(range(1, model.num_layers + 1), desc="dev F1 per exit", disable=not progress):
        predicted, _ = predict_examples(model, tokenizer, examples, layers=layers)
        f1.append(round(100 * score(texts, gold, predicted, "span").micro.f1, 2))
    return f1
