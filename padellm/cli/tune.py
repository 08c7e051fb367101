"""``padellm tune``: choose a parallel adapter's count rule (or a count-free adapter's none and end biases) on dev
data and save it with the adapter (decode.yaml); the work is ``padellm.evaluation.tuning.tune_adapter``."""

from __future__ import annotations

import argparse
import json
import sys

from padellm.configargs import add_dataclass_arguments, dataclass_from_args
from padellm.errors import PadellmError


def add_parser(commands) -> None:
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.evaluation.tuning import NONE_BIASES, QUANTILES

    tune = commands.add_parser(
        "tune", help="choose a parallel adapter's count rule (or a count-free adapter's none bias) on dev data and "
                     "save it with the adapter (decode.yaml)",
        description="A count-stage adapter: run the count stage once on a dev sample and decode the counts every "
                    "candidate rule gives (argmax and each --quantiles value). A count-free adapter: decode the "
                    "sample at every --none-biases value (a label-wise one: with each --end-biases value). "
                    "Print their dev F1 as one JSON object and write the best "
                    "setting to ADAPTER/decode.yaml, which padellm load, extract, serve and eval then decode with.")
    tune.add_argument("--adapter", required=True, help="a parallel adapter folder")
    tune.add_argument("--dataset", default="conll2003", help="a shared dataset name, a folder or a file")
    tune.add_argument("--split", default="dev", help="the split to tune on (never the test split you report)")
    tune.add_argument("--sample", type=int, default=500,
                      help="a seeded sample of this many sentences (0 or more than the split has: all)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--quantiles", default=",".join(map(str, QUANTILES)),
                      help="comma-separated count quantiles to try next to argmax (count-stage adapters)")
    tune.add_argument("--none-biases", default=",".join(map(str, NONE_BIASES)),
                      help="comma-separated offsets to the none answer's logit to try (count-free adapters; "
                           "negative: fewer none answers, more recall; write --none-biases=-1,-2 since they start "
                           "with '-')")
    tune.add_argument("--end-biases", default="",
                      help="comma-separated offsets to EOS's logit to try with each none bias (label-wise adapters; "
                           "negative: longer lists of mentions, more recall; empty: keep the adapter's)")
    tune.add_argument("--backend", choices=("vllm", "transformers"), default="vllm")
    tune.add_argument("--dry-run", action="store_true", help="print the trials, write nothing")
    tune.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dataclass_arguments(tune, VLLMConfig)
    tune.set_defaults(run=run)



def numbers(flag: str, value: str, what: str, field: str) -> tuple[float, ...]:
    """``value``'s comma-separated numbers, each checked as DecodeConfig's ``field`` (which names one out of range)."""
    from padellm.engine.decoding import DecodeConfig

    try:
        parsed = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError as err:
        raise PadellmError(f"{flag}: comma-separated {what}; got {value!r}") from err
    for number in parsed:
        DecodeConfig(**{field: number})
    return parsed


def run(args: argparse.Namespace) -> int:
    from padellm.engine.decode_settings import DECODE_FILE
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.evaluation.tuning import tune_adapter

    tuning = tune_adapter(args.adapter, args.dataset, args.split, args.sample, args.seed,
                          quantiles=numbers("--quantiles", args.quantiles, "numbers in (0, 1)", "count_quantile"),
                          biases=numbers("--none-biases", args.none_biases, "logit offsets", "none_bias"),
                          end_biases=numbers("--end-biases", args.end_biases, "logit offsets", "end_bias"),
                          backend=args.backend, vllm_config=dataclass_from_args(VLLMConfig, args),
                          progress=not args.no_progress)
    print(json.dumps(tuning.record(), ensure_ascii=False), file=args.stdout)
    if args.dry_run:
        return 0
    path = tuning.save(" ".join(["padellm", *(args.argv if args.argv is not None else sys.argv[1:])]))
    best = tuning.best
    print(f"wrote {path}: {', '.join(f'{k}={v}' for k, v in best.settings.items())} (dev F1 {100 * best.f1:.2f}); "
          f"padellm load/extract/serve/eval decode {tuning.adapter.name} with it unless a flag overrides a field "
          f"({DECODE_FILE})", file=sys.stderr)
    return 0
