"""``padellm eval``: F1 and latency of the chosen systems on the same sentences, side by side."""

from __future__ import annotations

import argparse
import sys

from padellm.configargs import add_dataclass_arguments, dataclass_from_args, given_fields


def add_parser(commands) -> None:
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.evaluation.config import EvalConfig

    evaluation = commands.add_parser(
        "eval", help="F1 and latency of parallel decoding, the autoregressive baseline and FastNER side by side",
        description="Measure the chosen systems on the same sentences (single requests interleaved after a warm-up, "
                    "then batch mode) and write results.json, predictions.jsonl, report.md and PNG figures to --out.")
    evaluation.add_argument("--out", required=True, help="output folder")
    evaluation.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_dataclass_arguments(evaluation, EvalConfig)
    add_dataclass_arguments(evaluation, DecodeConfig, default_from="each adapter's decode.yaml")
    add_dataclass_arguments(evaluation, VLLMConfig)
    evaluation.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.evaluation.command import evaluate
    from padellm.evaluation.config import EvalConfig
    from padellm.evaluation.report import format_table

    config = dataclass_from_args(EvalConfig, args)
    command = " ".join(["padellm", *(args.argv if args.argv is not None else sys.argv[1:])])
    results = evaluate(config, args.out, given_fields(DecodeConfig, args), dataclass_from_args(VLLMConfig, args),
                       progress=not args.no_progress, command=command)
    print(format_table(results["summary"]), file=args.stdout)
    print(f"results.json, predictions.jsonl, report.md and figures in {args.out}", file=sys.stderr)
    return 0


