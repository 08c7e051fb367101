"""Live demo: entities that the shipped PaDeLLM adapter extracts from sample sentences by parallel decoding on
vLLM, each with its latency next to autoregressive decoding of the same sentence by the shipped baseline.

    python eval/demo.py                      # 8 seeded CoNLL-2003 test sentences
    python eval/demo.py "Text one." "Text two."
"""

from __future__ import annotations

import argparse
import random
import sys


def main(argv: list[str] | None = None) -> int:
    from padellm.terminal.stdio import data_stdout, quiet_libraries

    quiet_libraries()  # the demo's report is the point; vLLM's warnings are not
    with data_stdout() as out:
        return demo(argv, out)


def demo(argv: list[str] | None, out) -> int:
    from padellm.adapters import shipped_adapter
    from padellm.configargs import add_dataclass_arguments, dataclass_from_args, given_fields
    from padellm.data.datasets import load_dataset
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.errors import PadellmError
    from padellm.evaluation.runner import run_systems
    from padellm.evaluation.systems import close_engines, llm_systems
    from padellm.types import Example

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", nargs="*", help="sentences to tag (default: a seeded sample of CoNLL-2003 test)")
    parser.add_argument("--sample", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    add_dataclass_arguments(parser, DecodeConfig, default_from="each adapter's decode.yaml")
    add_dataclass_arguments(parser, VLLMConfig)
    args = parser.parse_args(argv)
    try:
        test = load_dataset("conll2003", ["test"]).split("test")
        pool = random.Random(args.seed).sample(test, args.sample + 3)
        warmup = pool[:3]
        sentences = [Example(t, (), ()) for t in args.text] if args.text else pool[3:]
        adapters = {mode: shipped_adapter(mode) for mode in ("parallel", "autoregressive")}
        systems = llm_systems(adapters, "vllm", given_fields(DecodeConfig, args),
                              dataclass_from_args(VLLMConfig, args))
        try:
            runs = run_systems(systems, sentences, warmup, batch_mode=False, progress=False)
        finally:
            close_engines(systems)
    except PadellmError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    parallel, autoregressive = runs["parallel"], runs["autoregressive"]
    print(f"\nPaDeLLM parallel decoding vs autoregressive decoding, one sentence at a time (vLLM, "
          f"{len(sentences)} sentences):\n", file=out)
    for index, example in enumerate(sentences):
        text = example.text
        found = ", ".join(f"{text[e.start:e.end]} [{e.label}]" for e in parallel.predictions[index]) or "(none)"
        print(f"  {text}\n    -> {found}\n       parallel {1000 * parallel.latencies_s[index]:.0f} ms, "
              f"autoregressive {1000 * autoregressive.latencies_s[index]:.0f} ms", file=out)
    mean_parallel = 1000 * sum(parallel.latencies_s) / len(sentences)
    mean_autoregressive = 1000 * sum(autoregressive.latencies_s) / len(sentences)
    print(f"\nmean latency: parallel {mean_parallel:.0f} ms, autoregressive {mean_autoregressive:.0f} ms "
          f"({mean_autoregressive / mean_parallel:.2f}x)", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
