"""The ``padellm`` command, one module per sub-command (``data``, ``models``, ``finetune``, ``extract``, ``eval``,
``tune``, ``serve``): each adds its parser and parses, validates and calls the library; this module assembles them
and keeps the contracts every command shares (stdout is data, logs go to stderr, a ``PadellmError`` exits 2)."""

from __future__ import annotations

import argparse
import sys

from padellm import __version__
from padellm.cli import data, eval as evaluation, extract, finetune, models, serve, tune
from padellm.errors import PadellmError
from padellm.terminal.stdio import data_stdout, quiet_libraries
from padellm.training.modes import load_finetune_config  # noqa: F401  (the Python way to a finetune config)

SUBCOMMANDS = (data, finetune, extract, evaluation, tune, serve, models)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="padellm", description="Fast named entity recognition with LLMs.")
    parser.add_argument("--version", action="version", version=f"padellm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="let vLLM, transformers and other libraries log their INFO lines and warnings (stderr)")
    commands = parser.add_subparsers(dest="command", required=True)
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "finetune":
        parser.parse_args(argv)  # argparse's own error for the unknown arguments (exit 2)
    args.argv = argv
    if args.command == "finetune":
        # The whole finetune command line (its flags depend on the mode), parsed again by ``finetune.run``.
        given = list(sys.argv[1:] if argv is None else argv)
        args.finetune_argv = [a for a in given[given.index("finetune") + 1 :] if a not in ("-h", "--help")]
    quiet_libraries(args.verbose)
    with data_stdout() as args.stdout:
        try:
            return args.run(args)
        except PadellmError as err:
            print(f"padellm: error: {err}", file=sys.stderr)
            return 2
