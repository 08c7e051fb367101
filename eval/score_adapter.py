"""Score a trained adapter on a dataset split with greedy decoding on the transformers (reference) backend.

    python eval/score_adapter.py --adapter adapters/conll2003-parallel --dataset conll2003 --split test

Prints one JSON object: micro/per-label P/R/F1 (exact spans, and the paper's string-set variant), the number of
sentences, decoding statistics and wall time. ``--sample N`` scores a seeded sample of N sentences. ``--record``
writes the scores of a whole split into the adapter's metrics.json under the split's name, as ``padellm finetune``
does for its dev split (for an adapter trained without one; tests/test_shipped_adapters.py reads it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from padellm import load
    from padellm.data.datasets import load_dataset
    from padellm.engine.vllm_config import VLLMConfig
    from padellm.errors import PadellmError
    from padellm.training.dev_scoring import backend_scores

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", required=True, help="an adapter folder written by padellm finetune")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sample", type=int, default=0, help="score a seeded sample of N sentences (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64, help="transformers backend: sequences per forward pass")
    parser.add_argument("--backend", choices=("transformers", "vllm"), default="transformers",
                        help="transformers (the reference, as padellm finetune scores dev) or vllm (float32; much "
                             "faster on a CPU, the same entities in nearly every sentence)")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--summary", action="store_true", help="print one line instead of the JSON")
    parser.add_argument("--record", action="store_true",
                        help="write the scores into the adapter's metrics.json under the split's name")
    args = parser.parse_args(argv)
    if args.record and args.sample:
        parser.error("--record writes the scores of a whole split: drop --sample")
    try:
        examples = load_dataset(args.dataset, [args.split]).split(args.split)
        if args.sample and args.sample < len(examples):
            examples = random.Random(args.seed).sample(examples, args.sample)
        options = {"vllm_config": VLLMConfig(dtype="float32")} if args.backend == "vllm" else {}
        with load(args.adapter, args.backend, **options) as ner:  # decoded with the defaults, as in training
            if args.backend == "transformers":
                ner.backend.batch_size = args.batch_size
            started = time.perf_counter()
            scores = backend_scores(ner.backend, ner.encoder, examples, desc=f"{args.split} decoding")
            mode = ner.mode
    except PadellmError as err:
        print(f"score_adapter: error: {err}", file=sys.stderr)
        return 2
    result = {"adapter": args.adapter, "mode": mode, "backend": args.backend, "dataset": args.dataset,
              "split": args.split, "sample": args.sample, "seed": args.seed,
              "wall_time_s": time.perf_counter() - started, **scores}
    text = json.dumps(result, indent=2)
    if args.record:
        metrics_path = Path(args.adapter) / "metrics.json"
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        command = " ".join(argv if argv is not None else sys.argv[1:])
        metrics[args.split] = {**scores, "backend": args.backend,
                               "recorded_by": f"python eval/score_adapter.py {command}"}
        metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    micro = result["span"]["micro"]
    print(f"{args.adapter}: {mode} decoding, F1 {100 * micro['f1']:.2f} (P {100 * micro['precision']:.2f}, "
          f"R {100 * micro['recall']:.2f}) on {result['sentences']} {args.split} sentences, "
          f"{1000 * result['decode_s'] / max(1, result['sentences']):.0f} ms/sentence" if args.summary else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
