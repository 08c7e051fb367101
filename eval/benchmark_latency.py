"""Latency (single-request mode) and throughput (batch mode) of PaDeLLM parallel decoding vs autoregressive
decoding on vLLM, with F1, on one seeded sample of a dataset split (``--lora`` says how adapters are served).

    python eval/benchmark_latency.py --sample 300 --out runs/benchmark.json

Prints a table, writes the full result (per-sentence latencies, settings, environment) as JSON (``--out``) and
the latency distributions as a PNG (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from padellm.adapters import shipped_adapter
    from padellm.benchmark import format_summary, run_benchmark, summarize
    from padellm.configargs import add_dataclass_arguments, dataclass_from_args
    from padellm.datasets import load_dataset
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig, vllm_backends
    from padellm.errors import ConfigError, PadellmError
    from padellm.ner import load

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", help="parallel adapter (default: the shipped CoNLL-2003 one)")
    parser.add_argument("--autoregressive", help="autoregressive adapter (default: the shipped CoNLL-2003 one)")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sample", type=int, default=300, help="seeded sample of N sentences (0: the whole split)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="sentences decoded first, from --warmup-split (never measured)")
    parser.add_argument("--warmup-split", default="dev")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-batch-mode", action="store_true", help="skip the batch throughput measurement")
    parser.add_argument("--out", help="write the JSON result here")
    parser.add_argument("--plot", help="write a PNG of the latency distributions here")
    parser.add_argument("--no-progress", action="store_true")
    add_dataclass_arguments(parser, DecodeConfig)
    add_dataclass_arguments(parser, VLLMConfig)
    args = parser.parse_args(argv)
    try:
        parallel = Path(args.parallel) if args.parallel else shipped_adapter("parallel", args.dataset)
        autoregressive = Path(args.autoregressive) if args.autoregressive else shipped_adapter("autoregressive", args.dataset)
        if args.warmup_split == args.split:
            raise ConfigError(f"--warmup-split {args.warmup_split}: warm-up sentences must not come from the measured split")
        dataset = load_dataset(args.dataset, [args.split, args.warmup_split])
        examples = dataset.split(args.split)
        size = args.sample or len(examples)
        if size > len(examples):
            raise ConfigError(f"--sample {size} exceeds the {len(examples)} sentences of {args.dataset} {args.split}")
        order = list(range(len(examples)))
        random.Random(args.seed).shuffle(order)
        sample = [examples[i] for i in order[:size]]
        pool = dataset.split(args.warmup_split)
        warmup = random.Random(args.seed).sample(pool, min(args.warmup, len(pool)))
        decode_config = dataclass_from_args(DecodeConfig, args)
        vllm_config = dataclass_from_args(VLLMConfig, args)
        backends = vllm_backends([parallel, autoregressive], vllm_config)
        decoders = {"parallel": load(parallel, backends[0], decode_config=decode_config),
                    "autoregressive": load(autoregressive, backends[1], decode_config=decode_config)}
        for name, ner in decoders.items():
            if ner.mode != name:
                raise ConfigError(f"--{name} {ner.name}: that adapter was trained for {ner.mode} decoding")
        runs = run_benchmark(decoders, sample, warmup, batch_mode=not args.no_batch_mode, progress=not args.no_progress)
    except PadellmError as err:
        print(f"benchmark_latency: error: {err}", file=sys.stderr)
        return 2
    summary = summarize(runs, sample)
    print(format_summary(summary))
    if args.plot:
        from padellm.plots import plot_latencies

        plot_latencies({name: [1000 * s for s in run.latencies_s] for name, run in runs.items()}, args.plot,
                       f"{args.dataset} {args.split}, {size} sentences, one at a time (vLLM)")
    if args.out:
        import vllm

        result = {
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "adapters": {"parallel": str(parallel), "autoregressive": str(autoregressive)},
            "dataset": args.dataset, "split": args.split, "sample": size, "warmup": args.warmup,
            "warmup_split": args.warmup_split, "seed": args.seed,
            "decode_config": vars(decode_config), "vllm_config": vars(vllm_config),
            "environment": {"vllm": vllm.__version__, "cpus": len(os.sched_getaffinity(0)),
                            "machine": platform.processor() or platform.machine()},
            **summary,
            "latencies_ms": {name: [1000 * s for s in run.latencies_s] for name, run in runs.items()},
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
