"""Where a single request's time goes, for each adapter given: padellm's own work and, per engine call, vLLM's input
handling, prefill step, decode steps (with how many sequences each advanced) and output conversion.

    python eval/timeline.py --adapter adapters/conll2003-parallel --adapter adapters/conll2003-autoregressive \
        --dataset conll2003 --split test --sample 200

One engine is live at a time: each adapter is loaded with its own decode settings, warmed up, timed on the same
seeded sentences one request at a time, and closed before the next starts. The engine flags are padellm
extract's (``--in-process``, ``--speculative-tokens``, ...). Prints a Markdown table (milliseconds
per request, means unless marked p50) and the mean decode-step time by the number of sequences it advanced, or
JSON with ``--json``. Run it alone on the machine: it is a benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys

ROWS = [("total_ms", "request, mean"), ("total_ms_p50", "request, p50"), ("padellm_ms", "padellm: prompts, reading, dedup, align"),
        ("engine_calls", "engine calls"), ("sequences", "sequences"), ("submit_ms", "vLLM input handling (all calls)"),
        ("prefill_ms", "prefill steps (all calls)"), ("decode_steps", "decode steps"), ("decode_ms", "decode steps' time"),
        ("between_steps_ms", "between steps"), ("collect_ms", "output conversion"),
        ("late_sequences", "sequences that entered after their call's first step")]


def table(summaries: dict[str, dict]) -> str:
    names = list(summaries)
    lines = ["| per request | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {label} | " + " | ".join(f"{summaries[n][key]:g}" for n in names) + " |" for key, label in ROWS]
    sizes = sorted({size for s in summaries.values() for size in s["decode_step_ms_by_sequences"]})
    lines += ["", "| decode step, sequences advanced | " + " | ".join(f"{n} ms (steps)" for n in names) + " |",
              "|---:|" + "---:|" * len(names)]
    for size in sizes:
        cells = []
        for n in names:
            ms = summaries[n]["decode_step_ms_by_sequences"].get(size)
            cells.append(f"{ms:g} ({summaries[n]['decode_steps_by_sequences'][size]})" if ms is not None else "")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", action="append", required=True, help="an adapter folder (repeatable)")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sample", type=int, default=200, help="seeded sentences, one request each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=5, help="requests run before timing starts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("-v", "--verbose", action="store_true", help="let vLLM and other libraries log their INFO lines")
    from padellm.configargs import add_dataclass_arguments, dataclass_from_args
    from padellm.engine.vllm_config import VLLMConfig

    add_dataclass_arguments(parser.add_argument_group("vLLM engine"), VLLMConfig)
    args = parser.parse_args(argv)

    from padellm.data.datasets import load_dataset
    from padellm.errors import PadellmError
    from padellm.evaluation.command import sample_indices
    from padellm.evaluation.timeline import TimelineRecorder, summarize
    from padellm.ner import load
    from padellm.terminal.stdio import data_stdout, quiet_libraries

    quiet_libraries(args.verbose)

    try:
        if args.sample < 1 or args.warmup < 0:
            raise PadellmError(f"--sample must be >= 1 and --warmup >= 0; got {args.sample} and {args.warmup}")
        vllm_config = dataclass_from_args(VLLMConfig, args)
        split = load_dataset(args.dataset, [args.split]).split(args.split)
        texts = [split[i].text for i in sample_indices(len(split), args.sample, args.seed)]
        summaries = {}
        with data_stdout() as stdout:
            for adapter in args.adapter:
                ner = load(adapter, vllm_config=vllm_config, texts=texts)
                try:
                    with TimelineRecorder(ner) as recorder:
                        for text in texts[: args.warmup]:
                            recorder.request(text)
                        summaries[adapter] = summarize([recorder.request(text) for text in texts])
                finally:
                    ner.close()
            print(json.dumps(summaries, indent=2) if args.json else table(summaries), file=stdout)
    except PadellmError as err:
        print(f"timeline: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
