"""Live demo: entities that the shipped PaDeLLM adapters extract by parallel decoding on vLLM, each sentence with
its latency next to autoregressive decoding of it by the shipped baseline of the same corpus.

    python eval/demo.py                      # padellm's own example sentences (English and Chinese, eval/sentences/),
                                             # or, where a corpus folder is present, 8 seeded CoNLL-2003 test sentences
    python eval/demo.py "Text one." "Text two."   # your sentences (Chinese ones go to the Resume adapters)
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

SENTENCES = Path(__file__).resolve().parent / "sentences"
"""padellm's own example sentences, one a line, written for the demo (no corpus text): en.txt, zh.txt."""
DATASETS = {"en": "conll2003", "zh": "resume_zh"}
"""The shipped adapters' corpus for each language of sentences."""


def main(argv: list[str] | None = None) -> int:
    from padellm.terminal.stdio import data_stdout, quiet_libraries

    quiet_libraries()  # the demo's report is the point; vLLM's warnings are not
    with data_stdout() as out:
        return demo(argv, out)


def example_sets(texts: list[str], sample: int, seed: int) -> tuple[list[tuple[str, list[str], list[str]]], str]:
    """``([(dataset, sentences, warm-up sentences)], where the sentences came from)``: the user's texts (by their
    language), else CoNLL-2003 test sentences where the corpus is present, else the shipped example sentences."""
    from padellm.data.datasets import load_dataset, shared_data_dir
    from padellm.prompts.templates import text_language

    shipped = {language: (SENTENCES / f"{language}.txt").read_text(encoding="utf-8").splitlines()
               for language in DATASETS}
    if texts:
        language = text_language(texts)
        return [(DATASETS[language], texts, shipped[language][:2])], "your sentences"
    data = shared_data_dir()
    if data is not None and (data / "conll2003").is_dir():
        test = [example.text for example in load_dataset("conll2003", ["test"]).split("test")]
        pool = random.Random(seed).sample(test, sample + 3)
        return [("conll2003", pool[3:], pool[:3])], f"{sample} seeded CoNLL-2003 test sentences from {data}"
    return ([(DATASETS[language], lines, lines[:1]) for language, lines in shipped.items()],
            f"padellm's own example sentences ({SENTENCES.relative_to(SENTENCES.parents[1])}/); no corpus folder was "
            "found. To tag corpus sentences, put the shared data folder (conll2003/, genia/, resume_zh/) at ../shared/data "
            "or set PADELLM_DATA_DIR; to tag your own, pass them: bash scripts/run.sh \"Your sentence .\"")


def demo(argv: list[str] | None, out) -> int:
    from padellm.adapters import shipped_adapter
    from padellm.configargs import add_dataclass_arguments, dataclass_from_args, given_fields
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.errors import PadellmError
    from padellm.evaluation.runner import run_systems
    from padellm.evaluation.systems import close_engines, llm_systems
    from padellm.types import Example

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", nargs="*", help="sentences to tag (default: see above)")
    parser.add_argument("--sample", type=int, default=8, help="CoNLL-2003 test sentences, where the corpus is present")
    parser.add_argument("--seed", type=int, default=1)
    add_dataclass_arguments(parser, DecodeConfig, default_from="each adapter's decode.yaml")
    add_dataclass_arguments(parser, VLLMConfig)
    args = parser.parse_args(argv)
    try:
        sets, source = example_sets(args.text, args.sample, args.seed)
        print(f"PaDeLLM parallel decoding vs autoregressive decoding, one sentence at a time (vLLM): {source}",
              file=out)
        for dataset, sentences, warmup in sets:
            adapters = {mode: shipped_adapter(mode, dataset) for mode in ("parallel", "autoregressive")}
            systems = llm_systems(adapters, "vllm", given_fields(DecodeConfig, args),
                                  dataclass_from_args(VLLMConfig, args), texts=sentences + warmup)
            try:
                runs = run_systems(systems, [Example(t, (), ()) for t in sentences],
                                   [Example(t, (), ()) for t in warmup], batch_mode=False, progress=False)
            finally:
                close_engines(systems)
            report(runs, sentences, adapters, out)
    except PadellmError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    return 0


def report(runs: dict, sentences: list[str], adapters: dict[str, Path], out) -> None:
    parallel, autoregressive = runs["parallel"], runs["autoregressive"]
    print(f"\n{adapters['parallel'].name} vs {adapters['autoregressive'].name}:\n", file=out)
    for index, text in enumerate(sentences):
        found = ", ".join(f"{text[e.start:e.end]} [{e.label}]" for e in parallel.predictions[index]) or "(none)"
        print(f"  {text}\n    -> {found}\n       parallel {1000 * parallel.latencies_s[index]:.0f} ms, "
              f"autoregressive {1000 * autoregressive.latencies_s[index]:.0f} ms", file=out)
    mean_parallel = 1000 * sum(parallel.latencies_s) / len(sentences)
    mean_autoregressive = 1000 * sum(autoregressive.latencies_s) / len(sentences)
    print(f"\nmean latency: parallel {mean_parallel:.0f} ms, autoregressive {mean_autoregressive:.0f} ms "
          f"({mean_autoregressive / mean_parallel:.2f}x)", file=out)


if __name__ == "__main__":
    sys.exit(main())
