"""Documents longer than the engine's context: seeded corpus sentences joined into one document, decoded in windows,
against the same sentences decoded one by one. Prints one JSON object: both F1s (exact spans), the document's
length in characters and windows, both decoding times, and whether every entity's text is the document's.

    python eval/long_document.py --adapter adapters/conll2003-parallel --dataset conll2003 --split test --sample 150
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default="adapters/conll2003-parallel")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sample", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--joiner", default=" ", help="what goes between two sentences of the document")
    parser.add_argument("--max-model-len", type=int, default=1024, help="the engine's context, in tokens")
    parser.add_argument("--window-tokens", type=int, help="DecodeConfig.window_tokens (default: the adapter's)")
    args = parser.parse_args(argv)

    from padellm.data.datasets import load_dataset
    from padellm.engine.vllm_config import VLLMConfig
    from padellm.errors import PadellmError
    from padellm.evaluation.command import sample_indices
    from padellm.metrics import score
    from padellm.ner import load
    from padellm.terminal.stdio import data_stdout, quiet_libraries
    from padellm.types import Entity

    quiet_libraries()
    try:
        with data_stdout() as stdout:
            split = load_dataset(args.dataset, [args.split]).split(args.split)
            examples = [split[i] for i in sample_indices(len(split), args.sample, args.seed)]
            document, gold, offset = "", [], 0
            for example in examples:
                if document:
                    document += args.joiner
                offset = len(document)
                document += example.text
                gold += [Entity(offset + e.start, offset + e.end, e.label) for e in example.entities]
            settings = {"window_tokens": args.window_tokens} if args.window_tokens else None
            with load(args.adapter, decode_config=settings,
                      vllm_config=VLLMConfig(max_model_len=args.max_model_len)) as ner:
                ner.run([examples[0].text])  # warm-up
                started = time.perf_counter()
                whole = ner.run([document])
                document_s = time.perf_counter() - started
                started = time.perf_counter()
                apart = ner.run([ex.text for ex in examples])
                sentences_s = time.perf_counter() - started
            labels = set(ner.labels)
            found = whole.entities[0]
            report = {
                "adapter": args.adapter, "sentences": len(examples), "document_chars": len(document),
                "windows": whole.stats["windows"] + 1,
                "document_f1": round(100 * score([document], [[e for e in gold if e.label in labels]], [found]).micro.f1, 2),
                "sentences_f1": round(100 * score([ex.text for ex in examples],
                                                  [[e for e in ex.entities if e.label in labels] for ex in examples],
                                                  apart.entities).micro.f1, 2),
                "entities_match_text": all(0 <= e.start < e.end <= len(document) for e in found),
                "document_s": round(document_s, 2), "sentences_s": round(sentences_s, 2),
                "max_model_len": args.max_model_len, "window_tokens": ner.decode_config.window_tokens}
            print(json.dumps(report), file=stdout)
    except PadellmError as err:
        print(f"long_document: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
