"""Run a JSONL corpus (a "text" field per line) through Ray Data with padellm's ``NERPredictor`` and print the
throughput as one JSON object.

    python eval/ray_batch.py --input texts.jsonl --adapter adapters/conll2003-parallel --concurrency 1 \
        --output runs/ray-entities

With ``--compare``, the same texts also go through ``padellm.load(...).batch`` in this process, and the object says
whether both found the same spans. Ray starts locally unless ``RAY_ADDRESS`` names a cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="JSONL with a 'text' field per line")
    parser.add_argument("--adapter", default="adapters/conll2003-parallel")
    parser.add_argument("--backend", choices=("vllm", "transformers"), default="vllm")
    parser.add_argument("--concurrency", type=int, default=1, help="actors, each with its own engine")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per map_batches call")
    parser.add_argument("--output", help="write the rows with their entities here (a folder of JSON files)")
    parser.add_argument("--compare", action="store_true", help="also decode with padellm.load(...).batch")
    args = parser.parse_args(argv)

    import ray

    from padellm.errors import PadellmError
    from padellm.integrations.ray import NERPredictor
    from padellm.terminal.stdio import data_stdout, quiet_libraries

    quiet_libraries()
    if args.concurrency < 1 or args.batch_size < 1:
        print("ray_batch: error: --concurrency and --batch-size must be >= 1", file=sys.stderr)
        return 2
    try:
        with data_stdout() as stdout:
            ray.init(ignore_reinit_error=True, log_to_driver=False)
            dataset = ray.data.read_json(args.input)
            rows = dataset.count()
            started = time.perf_counter()
            tagged = dataset.map_batches(NERPredictor, fn_constructor_kwargs={"adapter": args.adapter,
                                                                              "backend": args.backend},
                                         concurrency=args.concurrency, batch_size=args.batch_size)
            out = tagged.materialize()
            seconds = time.perf_counter() - started
            report = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 2),
                      "actors": args.concurrency, "batch_size": args.batch_size, "adapter": args.adapter}
            if args.output:
                out.write_json(args.output)
            if args.compare:
                from padellm.ner import load

                found = out.take_all()
                with load(args.adapter, args.backend) as ner:
                    local = ner.batch([row["text"] for row in found])
                report["same_spans_as_load_batch"] = all(
                    [(e["start"], e["end"], e["label"]) for e in row["entities"]] ==
                    [(e.start, e.end, e.label) for e in entities] for row, entities in zip(found, local))
            print(json.dumps(report), file=stdout)
    except PadellmError as err:
        print(f"ray_batch: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
