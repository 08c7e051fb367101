"""``padellm finetune``: LoRA for PaDeLLM and the autoregressive baseline, or the encoder baselines (FastNER, BIO
taggers), from a YAML config with ``--field`` / ``--section.field`` overrides. Its flags depend on the mode, so it
parses its own command line (``run``) and its help lists the fields of that mode only."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from padellm.configargs import add_override_arguments, overrides_from_args
from padellm.errors import PadellmError
from padellm.training.modes import FINETUNE_MODES, finetune_config_class, load_finetune_config


def add_parser(commands) -> None:
    finetune = commands.add_parser(
        "finetune", add_help=False,
        help="fine-tuning: LoRA for PaDeLLM and the autoregressive baseline, or the FastNER baseline",
        description="Fine-tune from a YAML config; `padellm finetune [--config FILE | --mode MODE] --help` lists "
                    "the fields of that mode.")
    finetune.add_argument("-h", "--help", action="store_true", help="show the fields of this config's mode and exit")
    _add_finetune_base_arguments(finetune)
    finetune.set_defaults(run=run)


def _finetune_mode(args: argparse.Namespace) -> str:
    """The mode a finetune command line trains: ``--mode``, else its config file's ``mode``, else parallel."""
    from padellm.training.config_files import read_raw_config

    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--mode")
    mode = peek.parse_known_args(args.finetune_argv)[0].mode
    if mode is None and args.config:
        mode = read_raw_config(args.config)[0].get("mode")
    return str(mode or "parallel")


def _finetune_parser(mode: str) -> argparse.ArgumentParser:
    """``padellm finetune``'s full command line for one mode: its help lists that mode's fields only."""
    others = " or ".join(f"`--mode {m} --help`" for m in FINETUNE_MODES if m != mode)
    parser = argparse.ArgumentParser(
        prog="padellm finetune",
        description=f"Fine-tune from a YAML config (finetune/configs/) with --field / --section.field overrides. "
                    f"The config's mode ({', '.join(FINETUNE_MODES)}) says what is trained; these are the fields "
                    f"of mode {mode} ({others} for the others).")
    _add_finetune_base_arguments(parser)
    add_override_arguments(parser, finetune_config_class(mode))
    return parser


def _add_finetune_base_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a YAML config file")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--dataset", help="shorthand for --data.dataset; without a config file or --output_dir, the "
                                          "run goes to runs/DATASET-MODE")


def run(args: argparse.Namespace) -> int:
    from padellm.training.fastner import train_fastner
    from padellm.training.fastner_config import FastNERTrainingConfig
    from padellm.training.lora import train
    from padellm.training.tagger import train_tagger
    from padellm.training.tagger_config import TaggerTrainingConfig

    mode = _finetune_mode(args)
    parser = _finetune_parser(mode)
    if args.help:
        parser.print_help(args.stdout)
        raise SystemExit(0)
    parsed = parser.parse_args([*args.finetune_argv])
    overrides = overrides_from_args(parsed, finetune_config_class(mode))
    if parsed.dataset:
        if overrides.get("data.dataset", parsed.dataset) != parsed.dataset:
            raise PadellmError(f"--dataset {parsed.dataset!r} and --data.dataset {overrides['data.dataset']!r} "
                               "disagree; give one")
        overrides["data.dataset"] = parsed.dataset
        if not args.config and "output_dir" not in overrides:
            overrides["output_dir"] = f"runs/{Path(parsed.dataset).name}-{mode}"
            print(f"padellm finetune: output_dir {overrides['output_dir']} (set --output_dir to choose)",
                  file=sys.stderr)
    config = load_finetune_config(args.config, overrides)
    if isinstance(config, (TaggerTrainingConfig, FastNERTrainingConfig)):  # the encoder models
        tagger = isinstance(config, TaggerTrainingConfig)
        metrics = (train_tagger if tagger else train_fastner)(config, resume=args.resume, progress=not args.no_progress)
        keys = ("kind",) * tagger + ("steps", "final_loss", "sentences_per_s", "wall_time_s")
        summary = {k: metrics[k] for k in keys}
        if "dev" in metrics:
            per = "f1_per_layer" if tagger else "f1_per_exit"
            summary[f"dev_{per}"] = metrics["dev"][per]
        print(json.dumps(summary), file=args.stdout)
        print(f"model and metrics.json in {config.output_dir}", file=sys.stderr)
        return 0
    metrics = train(config, resume=args.resume, progress=not args.no_progress)
    if "process_index" in metrics:  # another process of a multi-process run: the main one reports
        return 0
    summary = {k: metrics[k] for k in ("steps", "final_loss", "tokens_per_s", "wall_time_s")}
    if "dev" in metrics:
        summary["dev_f1"] = metrics["dev"]["span"]["micro"]["f1"]
    print(json.dumps(summary), file=args.stdout)
    print(f"adapter and metrics.json in {config.output_dir}", file=sys.stderr)
    return 0


