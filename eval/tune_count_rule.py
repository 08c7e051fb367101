"""Choose the stage-1 count rule of a parallel adapter on a dev split: F1 of greedy counting (the paper), the
most likely digit, and quantiles of the count distribution, on one seeded sample, decoded on vLLM.

    python eval/tune_count_rule.py --adapter adapters/conll2003-parallel --split dev --sample 500

A quantile above 0.5 asks for more mention branches than the most likely count: it helps a model that
under-counts (high precision, low recall) and hurts one that does not. Tune on dev, report on test.
"""

from __future__ import annotations

import argparse
import json
import random
import sys


def main(argv: list[str] | None = None) -> int:
    from padellm.adapters import shipped_adapter
    from padellm.configargs import add_dataclass_arguments, dataclass_from_args
    from padellm.data.datasets import load_dataset
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.errors import PadellmError
    from padellm.metrics import score
    from padellm.ner import load

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", help="a parallel adapter (default: the shipped CoNLL-2003 one)")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--sample", type=int, default=500, help="seeded sample of N sentences (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quantiles", default="0.5,0.6,0.65,0.7,0.75,0.8")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_dataclass_arguments(parser, VLLMConfig)
    args = parser.parse_args(argv)
    try:
        quantiles = [float(q) for q in args.quantiles.split(",")]
        rules = [DecodeConfig(count_rule="greedy"), DecodeConfig(count_rule="argmax")]
        rules += [DecodeConfig(count_rule="quantile", count_quantile=q) for q in quantiles]
        examples = load_dataset(args.dataset, [args.split]).split(args.split)
        if args.sample and args.sample < len(examples):
            examples = random.Random(args.seed).sample(examples, args.sample)
        ner = load(args.adapter or shipped_adapter("parallel", args.dataset),
                   vllm_config=dataclass_from_args(VLLMConfig, args))
        texts, gold = [e.text for e in examples], [e.entities for e in examples]
        rows = []
        for rule in rules:
            ner.decode_config = rule
            result = ner.run(texts)
            micro = score(texts, gold, result.entities, "span").micro
            rows.append({"count_rule": rule.count_rule,
                         "count_quantile": rule.count_quantile if rule.count_rule == "quantile" else None,
                         "f1": 100 * micro.f1, "precision": 100 * micro.precision, "recall": 100 * micro.recall,
                         "branches": result.stats["branches"], "gold": sum(len(g) for g in gold)})
    except (PadellmError, ValueError) as err:
        print(f"tune_count_rule: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"adapter": str(ner.name), "split": args.split, "sentences": len(examples), "rows": rows}, indent=2))
        return 0
    print(f"{ner.name} on {len(examples)} {args.dataset} {args.split} sentences "
          f"({rows[0]['gold']} gold entities)")
    print(f"{'rule':<16}{'F1':>7}{'P':>7}{'R':>7}{'branches':>10}")
    for row in rows:
        name = row["count_rule"] + (f" {row['count_quantile']}" if row["count_quantile"] is not None else "")
        print(f"{name:<16}{row['f1']:>7.2f}{row['precision']:>7.2f}{row['recall']:>7.2f}{row['branches']:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
