"""``padellm data stats`` and ``padellm data convert``: inspect and convert corpora."""

from __future__ import annotations

import argparse
import json
import sys

from padellm.configargs import add_dataclass_arguments, dataclass_from_args
from padellm.data.corpus import ReadOptions, write_jsonl
from padellm.data.datasets import load_dataset
from padellm.data.stats import format_table, split_stats
from padellm.errors import PadellmError


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="inspect and convert corpora").add_subparsers(dest="data_command", required=True)
    stats = data.add_parser("stats", help="per-split sentence, token and entity counts")
    stats.add_argument("dataset", help="a shared dataset name (conll2003, genia, resume_zh), a folder or a file")
    stats.add_argument("--split", action="append", help="only this split (repeatable; default: all)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_dataclass_arguments(stats, ReadOptions)
    stats.set_defaults(run=run_stats)

    convert = data.add_parser("convert", help="write a split in padellm's canonical JSONL, or every split as a "
                                              "Hugging Face dataset")
    convert.add_argument("dataset", help="a shared dataset name, a folder (split files or a Hugging Face "
                                         "save_to_disk folder) or a file")
    convert.add_argument("--split", help="which split (JSONL: needed when the dataset has several)")
    convert.add_argument("--to", choices=("jsonl", "hf"), default="jsonl",
                         help="jsonl: one split, one file; hf: a folder for datasets.load_from_disk (tokens and "
                              "ner_tags as ClassLabel BIO tags, dev as validation)")
    convert.add_argument("--out", required=True, help="the JSONL file (or, with --to hf, the folder) to write")
    convert.add_argument("--max-entities", type=int, metavar="N",
                         help="keep only sentences with at most N entities (e.g. 1: a sparse corpus, where most labels "
                              "of a sentence have no mention)")
    add_dataclass_arguments(convert, ReadOptions)
    convert.set_defaults(run=run_convert)


def run_stats(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.split, dataclass_from_args(ReadOptions, args))
    stats = {split: split_stats(examples) for split, examples in dataset.splits.items()}
    repairs = {split: dict(r.repairs) for split, r in dataset.reports.items() if r.repairs}
    if args.json:
        payload = {"dataset": dataset.name, "splits": {s: st.to_dict() for s, st in stats.items()}}
        if repairs:
            payload["repairs"] = repairs
        print(json.dumps(payload, indent=2, ensure_ascii=False), file=args.stdout)
    else:
        print(f"{dataset.name}", file=args.stdout)
        print(format_table(stats), file=args.stdout)
    for split, report in dataset.reports.items():
        for kind, count in report.repairs.items():
            print(f"{split}: lenient repair '{kind}' applied {count} times", file=sys.stderr)
        for line in report.examples:
            print(f"  {line}", file=sys.stderr)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    if args.max_entities is not None and args.max_entities < 0:
        raise PadellmError(f"--max-entities must be >= 0; got {args.max_entities}")
    dataset = load_dataset(args.dataset, [args.split] if args.split else None, dataclass_from_args(ReadOptions, args))
    if args.to == "jsonl" and len(dataset.splits) != 1:
        raise PadellmError(f"{dataset.name} has splits {', '.join(dataset.splits)}: choose one with --split "
                           f"(or write them all with --to hf)")
    kept = {split: [ex for ex in examples if args.max_entities is None or len(ex.entities) <= args.max_entities]
            for split, examples in dataset.splits.items()}
    if args.to == "hf":
        from padellm.data.hf import write_saved

        names = write_saved(kept, args.out)
        print(f"wrote {dataset.name} ({', '.join(f'{s}: {len(e)}' for s, e in kept.items())} sentences) to "
              f"{args.out} with datasets' save_to_disk; ner_tags names: {', '.join(names)}", file=sys.stderr)
        return 0
    (split, examples), = dataset.splits.items()
    write_jsonl(args.out, kept[split])
    dropped = f" (dropped {len(examples) - len(kept[split])} with more than {args.max_entities} entities)" \
        if len(kept[split]) < len(examples) else ""
    print(f"wrote {len(kept[split])} sentences of {dataset.name} ({split}) to {args.out}{dropped}", file=sys.stderr)
    return 0


