"""What each text of a corpus costs each decoding format (PaDeLLM's and the baselines'), from the gold answers.

    python eval/decode_costs.py --dataset genia --split test
    python eval/decode_costs.py --dataset resume_zh --split test --template padellm-zh-labelwise-v1 \
        --template autoregressive-zh-v1

Per template: sequences, prompt tokens (and those left to compute when a text's prompts share whole 32-token KV
blocks), generated tokens (EOS included) and the sequential steps of a single request (per backend call, its
prefill and its longest sequence's tokens), all per text, if the model wrote the gold answer; then each
template's bound on its speed-up over the first: the ratio of sequential steps (latency) and of computed tokens
(batch throughput). Prints a Markdown table,
or JSON with ``--json``. No model runs; the base model's tokenizer is all it needs.
"""

from __future__ import annotations

import argparse
import json
import sys

DEFAULT_TEMPLATES = {"en": ("autoregressive-en-v1", "padellm-en-labelwise-v1"),
                     "zh": ("autoregressive-zh-v1", "padellm-zh-labelwise-v1")}


def label_set_for(dataset: str, examples):
    """The dataset's labels (sorted, as ``padellm finetune`` orders them) with its shipped label names, if any."""
    from padellm.prompts.labels import LabelSet, load_label_names, shipped_label_names

    labels = sorted({e.label for ex in examples for e in ex.entities})
    spec = shipped_label_names(dataset)
    names = load_label_names(spec) if spec else {}
    return LabelSet.for_labels(labels, {k: v for k, v in names.items() if k in labels})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--template", action="append",
                        help="a template name or file (repeatable; the first is the reference); default: the "
                             "compact baseline and the label-wise branches of the corpus's language")
    parser.add_argument("--base-model", default="smollm2-135m-instruct", help="whose tokenizer counts the tokens")
    parser.add_argument("--block", type=int, default=32, help="KV-cache block size in tokens (vLLM on CPU: 32)")
    parser.add_argument("--speculative-tokens", type=int, default=0,
                        help="count forward passes under prompt-lookup (n-gram) speculation with this many draft "
                             "tokens, every draft that matches the gold answer accepted (0: none)")
    parser.add_argument("--prompt-lookup-max", type=int, default=4, help="with --speculative-tokens: longest n-gram")
    parser.add_argument("--sample", type=int, default=0, help="a seeded sample of this many texts (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    from padellm.data.bio import is_cjk
    from padellm.data.datasets import load_dataset
    from padellm.errors import PadellmError
    from padellm.evaluation.command import sample_indices
    from padellm.evaluation.decode_costs import Speculation, cost_ratios, summarize_costs, text_cost
    from padellm.model_families import load_tokenizer
    from padellm.models import resolve_model
    from padellm.prompts.encoding import PromptEncoder
    from padellm.prompts.templates import load_template

    try:
        if args.block < 1:
            raise ValueError(f"--block must be >= 1; got {args.block}")
        speculation = Speculation(args.speculative_tokens, args.prompt_lookup_max)
        split = load_dataset(args.dataset, [args.split]).split(args.split)
        examples = [split[i] for i in sample_indices(len(split), args.sample, args.seed)]  # padellm eval's sample
        label_set = label_set_for(args.dataset, examples)
        templates = [load_template(t) for t in args.template] if args.template else None
        if templates is None:
            chinese = any(is_cjk(ch) for ex in examples[:50] for ch in ex.text)
            templates = [load_template(t) for t in DEFAULT_TEMPLATES["zh" if chinese else "en"]]
        tokenizer, bos_ids = load_tokenizer(resolve_model(args.base_model, "--base-model"))  # Gemma: its BOS
        summaries = {}
        for template in templates:
            encoder = PromptEncoder(tokenizer, template, label_set, bos_ids)
            summaries[template.name] = summarize_costs([text_cost(ex, encoder, args.block, speculation) for ex in examples])
    except (PadellmError, ValueError) as err:
        print(f"decode_costs: error: {err}", file=sys.stderr)
        return 2
    reference = next(iter(summaries.values()))
    for summary in summaries.values():
        summary["bound_over_reference"] = cost_ratios(reference, summary)
    if args.json:
        print(json.dumps({"dataset": args.dataset, "split": args.split, "texts": len(examples),
                          "base_model": args.base_model, "block": args.block,
                          "speculative_tokens": args.speculative_tokens, "prompt_lookup_max": args.prompt_lookup_max,
                          "templates": summaries}, indent=2))
        return 0
    spec = (f", n-gram speculation {args.speculative_tokens} tokens (n <= {args.prompt_lookup_max})"
            if args.speculative_tokens else "")
    print(f"{args.dataset} {args.split}, {len(examples)} texts, {args.base_model} tokens, {args.block}-token blocks"
          f"{spec} (means per text; gold answers)\n")
    print("| template | sequences | prompt tokens | computed prompt tokens | generated tokens | sequential steps "
          "(mean / p50 / p95) | computed tokens | bound over the first: latency / batch |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, s in summaries.items():
        bound = s["bound_over_reference"]
        print(f"| {name} | {s['mean_sequences']:g} | {s['mean_prompt_tokens']:.1f} | "
              f"{s['mean_computed_prompt_tokens']:.1f} | {s['mean_generated_tokens']:.1f} | "
              f"{s['mean_sequential_steps']:.1f} / {s['sequential_steps_p50']:g} / {s['sequential_steps_p95']:g} | "
              f"{s['mean_computed_tokens']:.1f} | {bound['sequential_steps']:.2f}x / {bound['computed_tokens']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
