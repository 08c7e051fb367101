"""Score a trained adapter on a dataset split with greedy decoding on the transformers (reference) backend.

    python eval/score_adapter.py --adapter adapters/conll2003-parallel --dataset conll2003 --split test

Prints one JSON object: micro/per-label P/R/F1 (exact spans, and the paper's string-set variant), the number of
sentences, decoding statistics and wall time. ``--sample N`` scores a seeded sample of N sentences.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from padellm.adapters import load_adapter
    from padellm.data.datasets import load_dataset
    from padellm.training.dev_scoring import dev_scores
    from padellm.errors import PadellmError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", required=True, help="an adapter folder written by padellm finetune")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sample", type=int, default=0, help="score a seeded sample of N sentences (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--summary", action="store_true", help="print one line instead of the JSON")
    args = parser.parse_args(argv)
    try:
        adapter = load_adapter(args.adapter)
        examples = load_dataset(args.dataset, [args.split]).split(args.split)
        if args.sample and args.sample < len(examples):
            examples = random.Random(args.seed).sample(examples, args.sample)
        started = time.perf_counter()
        scores = dev_scores(adapter.model, adapter.encoder, examples, batch_size=args.batch_size,
                            desc=f"{args.split} decoding")
    except PadellmError as err:
        print(f"score_adapter: error: {err}", file=sys.stderr)
        return 2
    result = {"adapter": args.adapter, "mode": adapter.mode, "dataset": args.dataset, "split": args.split,
              "sample": args.sample, "seed": args.seed, "wall_time_s": time.perf_counter() - started, **scores}
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    micro = result["span"]["micro"]
    print(f"{args.adapter}: {adapter.mode} decoding, F1 {100 * micro['f1']:.2f} (P {100 * micro['precision']:.2f}, "
          f"R {100 * micro['recall']:.2f}) on {result['sentences']} {args.split} sentences, "
          f"{1000 * result['decode_s'] / max(1, result['sentences']):.0f} ms/sentence" if args.summary else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
