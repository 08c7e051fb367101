"""The ``padellm`` command: ``padellm data ...``, ``models ...``, ``finetune``, ``extract``, ``serve``, ``eval``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from padellm import __version__
from padellm.configargs import (add_dataclass_arguments, add_override_arguments, dataclass_from_args, given_fields,
                                overrides_from_args)
from padellm.data.corpus import ReadOptions, write_jsonl
from padellm.data.datasets import load_dataset
from padellm.errors import InvalidRequestError, PadellmError
from padellm.models import DTYPES, PACKAGED_MODELS, prepare_model
from padellm.data.stats import format_table, split_stats
from padellm.terminal.stdio import data_stdout, quiet_libraries
from padellm.terminal.text_input import InputLine, from_arguments, read_file, read_stream


def _data_stats(args: argparse.Namespace) -> int:
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


def _data_convert(args: argparse.Namespace) -> int:
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


def _models_prepare(args: argparse.Namespace) -> int:
    names = list(PACKAGED_MODELS) if args.name == "all" else [args.name]
    for name in names:
        print(f"{name}: {prepare_model(name, args.dtype)}", file=args.stdout)
    return 0


FINETUNE_MODES = ("parallel", "autoregressive", "fastner", "tagger")


def finetune_config_class(mode: str) -> type:
    """The config class that trains ``mode``: LoRA for the two LLM modes, FastNER's own for fastner, the BIO
    taggers' (early exit, CRF teacher, distilled student) for tagger."""
    from padellm.training.config import FinetuneConfig
    from padellm.training.fastner_config import FastNERTrainingConfig
    from padellm.training.tagger_config import TaggerTrainingConfig

    if mode not in FINETUNE_MODES:
        raise PadellmError(f"mode must be one of {', '.join(FINETUNE_MODES)}; got {mode!r}")
    return {"fastner": FastNERTrainingConfig, "tagger": TaggerTrainingConfig}.get(mode, FinetuneConfig)


def load_finetune_config(path: str | Path | None, overrides: dict[str, str] | None = None):
    """A fine-tuning config file (or none) with ``section.field`` overrides, as the class its ``mode`` names."""
    from padellm.training.config_files import config_from_dict, read_raw_config

    raw, source = read_raw_config(path, overrides)
    return config_from_dict(raw, source, finetune_config_class(str(raw.get("mode", "parallel"))))


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


def _finetune(args: argparse.Namespace) -> int:
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
    config = load_finetune_config(args.config, overrides_from_args(parsed, finetune_config_class(mode)))
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


def _read_input(args: argparse.Namespace) -> list[InputLine]:
    if args.text and args.file:
        raise PadellmError("give texts as arguments or --file, not both")
    if args.text:
        return from_arguments(args.text)
    if args.file:
        return read_file(args.file)
    return read_stream(sys.stdin.buffer)


def _extract(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    if args.batch_size < 1:
        raise PadellmError(f"--batch-size must be >= 1; got {args.batch_size}")
    lines = _read_input(args)
    if not lines:
        print("padellm extract: no texts given (arguments, --file or stdin); nothing to do", file=sys.stderr)
        return 0
    tagged = [line for line in lines if not line.blank]
    blank = len(lines) - len(tagged)
    if blank:
        print(f"padellm extract: {blank} blank line{'s' if blank > 1 else ''} answered with no entities "
              f'("skipped": "blank")', file=sys.stderr)
    decode, close = (_remote_decoder(args) if args.server else _local_decoder(args, tagged)) if tagged else (None, None)
    answers = {line.number: {"text": line.text, "entities": [], "skipped": "blank"} for line in lines if line.blank}
    out = open(args.out, "w", encoding="utf-8") if args.out else args.stdout
    try:
        written = 0
        for start in tqdm(range(0, len(tagged), args.batch_size), desc="extracting", unit="batch",
                          disable=len(tagged) <= args.batch_size or args.no_progress):
            chunk = tagged[start : start + args.batch_size]
            records, seconds = decode([line.text for line in chunk])
            for line, entities in zip(chunk, records):
                answers[line.number] = {"text": line.text, "entities": entities}
                if args.timings:
                    answers[line.number]["ms"] = round(1000 * seconds / len(chunk), 2)
            # Output line N answers input line N: write every line answered so far, in input order.
            while written < len(lines) and lines[written].number in answers:
                print(json.dumps(answers.pop(lines[written].number), ensure_ascii=False), file=out, flush=True)
                written += 1
        for line in lines[written:]:  # blank lines after the last text (or every line, when all are blank)
            print(json.dumps(answers.pop(line.number), ensure_ascii=False), file=out, flush=True)
    finally:
        if args.out:
            out.close()
        if close is not None:
            close()
    return 0


def _local_decoder(args: argparse.Namespace, lines: list[InputLine]):
    """Decode in this process: ``(decode, close)``, where ``decode(chunk) -> (entity records per text, decoding
    seconds)`` and ``close()`` stops the engine."""
    from padellm.adapters import shipped_adapter
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.ner import entity_record, load
    from padellm.prompts.templates import load_prompt

    adapter = Path(args.adapter) if args.adapter else shipped_adapter(args.mode or "parallel")
    mode = load_prompt(adapter)[0].mode
    if args.mode and args.mode != mode:
        raise PadellmError(f"--mode {args.mode}: adapter {adapter} was trained for {mode} decoding")
    try:
        ner = load(adapter, args.backend, decode_config=given_fields(DecodeConfig, args),
                   vllm_config=dataclass_from_args(VLLMConfig, args),
                   dtype="float32" if args.dtype == "auto" else args.dtype, texts=[line.text for line in lines])
    except InvalidRequestError as err:
        if err.index is None:
            raise
        raise PadellmError(f"{lines[err.index].where}: {err.reason}") from None

    def decode(chunk: list[str]):
        result = ner.run(chunk)
        records = [[entity_record(text, e) for e in entities] for text, entities in zip(chunk, result.entities)]
        return records, result.timings["total_s"]

    return decode, ner.close


REMOTE_OPTIONS = ("dedup", "max_count")


def _remote_decoder(args: argparse.Namespace):
    """Decode on a running ``padellm serve``: ``(decode, close)`` as ``_local_decoder``'s."""
    from padellm.client import NERClient
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig

    if args.adapter or args.backend != "vllm":
        raise PadellmError("--server: the server decides the adapter and the backend; drop --adapter / --backend")
    decode_given = given_fields(DecodeConfig, args)
    local_only = [f"--{name.replace('_', '-')}" for name in decode_given if name not in REMOTE_OPTIONS]
    engine = dataclass_from_args(VLLMConfig, args)
    local_only += [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(VLLMConfig)
                   if getattr(engine, f.name) != f.default]
    if local_only:
        raise PadellmError(f"--server: {', '.join(local_only)} are set when the server starts (padellm serve), "
                           f"not per request; per request: --dedup, --max-count")
    options = {"return_timings": args.timings}
    if args.mode:
        options["mode"] = args.mode
    for name in REMOTE_OPTIONS:
        if name in decode_given:
            options[name] = decode_given[name]
    client = NERClient(args.server)

    def decode(chunk: list[str]):
        response = client.request(chunk, **options)
        records = [[{k: v for k, v in e.items() if v is not None} for e in r["entities"]] for r in response["results"]]
        return records, (response.get("timings_ms") or {}).get("total", 0.0) / 1000

    return decode, lambda: None


def _eval(args: argparse.Namespace) -> int:
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


def _tune(args: argparse.Namespace) -> int:
    from padellm.data.datasets import available_splits, load_dataset
    from padellm.engine.decode_settings import DECODE_FILE, read_decode_settings, write_decode_settings
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.evaluation.command import sample_indices
    from padellm.evaluation.tuning import best_trial, tune_biases, tune_count_rule
    from padellm.ner import load

    adapter = Path(args.adapter)
    def numbers(flag: str, value: str, what: str, field: str) -> tuple[float, ...]:
        """``value``'s comma-separated numbers, each checked as DecodeConfig's ``field`` (which names one out of
        range)."""
        try:
            parsed = tuple(float(v) for v in value.split(",") if v.strip())
        except ValueError as err:
            raise PadellmError(f"{flag}: comma-separated {what}; got {value!r}") from err
        for number in parsed:
            DecodeConfig(**{field: number})
        return parsed

    quantiles = numbers("--quantiles", args.quantiles, "numbers in (0, 1)", "count_quantile")
    biases = numbers("--none-biases", args.none_biases, "logit offsets", "none_bias")
    end_biases = numbers("--end-biases", args.end_biases, "logit offsets", "end_bias")
    if args.split not in available_splits(args.dataset):
        raise PadellmError(f"--split: {args.dataset} has no {args.split!r} split "
                           f"(it has: {', '.join(available_splits(args.dataset))})")
    from padellm.prompts.templates import load_prompt

    template = load_prompt(adapter)[0]
    if template.mode != "parallel":
        raise PadellmError(f"--adapter {adapter}: tuning chooses how parallel decoding trades precision for recall; "
                           f"this adapter decodes {template.mode}")
    tuned = (("count_rule", "count_quantile") if template.has_count_stage
             else ("none_bias", "end_bias") if end_biases else ("none_bias",))
    split = load_dataset(args.dataset, [args.split]).split(args.split)
    examples = [split[i] for i in sample_indices(len(split), min(args.sample, len(split)), args.seed)]
    kept = {k: v for k, v in read_decode_settings(adapter).items() if k not in tuned}
    ner = load(adapter, args.backend, decode_config=DecodeConfig(**kept),
               vllm_config=dataclass_from_args(VLLMConfig, args))
    try:
        if template.has_count_stage:
            trials = tune_count_rule(ner, examples, quantiles, progress=not args.no_progress)
        else:
            trials = tune_biases(ner, examples, biases, end_biases, progress=not args.no_progress)
    finally:
        ner.close()
    best = best_trial(trials)
    record = {"adapter": str(adapter), "dataset": args.dataset, "split": args.split, "sentences": len(examples),
              "seed": args.seed, "chosen": best.settings,
              "trials": [{**t.settings, "f1": round(100 * t.f1, 2), "precision": round(100 * t.precision, 2),
                          "recall": round(100 * t.recall, 2), "mentions_stated": t.mentions_stated} for t in trials]}
    print(json.dumps(record, ensure_ascii=False), file=args.stdout)
    if args.dry_run:
        return 0
    command = " ".join(["padellm", *(args.argv if args.argv is not None else sys.argv[1:])])
    lines = [f"Chosen by `{command}`:", f"dev F1 (exact spans) on {len(examples)} {args.dataset} {args.split} "
             f"sentences (seed {args.seed}) per {'count rule' if template.has_count_stage else 'bias'}:"]
    lines += [f"  {', '.join(f'{k}={v}' for k, v in t.settings.items())}: F1 {100 * t.f1:.2f} "
              f"(P {100 * t.precision:.2f} / R {100 * t.recall:.2f}, {t.mentions_stated} mentions stated)"
              for t in trials]
    path = write_decode_settings(adapter, {**kept, **best.settings}, "\n".join(lines))
    print(f"wrote {path}: {', '.join(f'{k}={v}' for k, v in best.settings.items())} "
          f"(dev F1 {100 * best.f1:.2f}); padellm load/extract/serve/eval decode {adapter.name} with it "
          f"unless a flag overrides a field ({DECODE_FILE})", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from padellm_serve.cli import serve

    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="padellm", description="Fast named entity recognition with LLMs.")
    parser.add_argument("--version", action="version", version=f"padellm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="let vLLM, transformers and other libraries log their INFO lines and warnings (stderr)")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="inspect and convert corpora").add_subparsers(dest="data_command", required=True)
    stats = data.add_parser("stats", help="per-split sentence, token and entity counts")
    stats.add_argument("dataset", help="a shared dataset name (conll2003, genia, resume_zh), a folder or a file")
    stats.add_argument("--split", action="append", help="only this split (repeatable; default: all)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_dataclass_arguments(stats, ReadOptions)
    stats.set_defaults(run=_data_stats)

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
    convert.set_defaults(run=_data_convert)

    # Fields differ by mode: the finetune command parses them itself (``_finetune``), so that its help lists only
    # the fields of the mode being trained.
    finetune = commands.add_parser(
        "finetune", add_help=False,
        help="fine-tuning: LoRA for PaDeLLM and the autoregressive baseline, or the FastNER baseline",
        description="Fine-tune from a YAML config; `padellm finetune [--config FILE | --mode MODE] --help` lists "
                    "the fields of that mode.")
    finetune.add_argument("-h", "--help", action="store_true", help="show the fields of this config's mode and exit")
    _add_finetune_base_arguments(finetune)
    finetune.set_defaults(run=_finetune)

    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig

    extract = commands.add_parser(
        "extract", help="extract entities from texts (arguments, --file or stdin) as JSONL",
        description="Extract entities with a fine-tuned adapter; one JSON line per text: "
                    '{"text", "entities": [{"start", "end", "label", "text", "score"}]}.')
    extract.add_argument("text", nargs="*", help="texts to tag (default: one per line from --file or stdin)")
    extract.add_argument("--file", help="a text file (one text per line) or JSONL with a 'text' field")
    extract.add_argument("--server", metavar="URL", help="decode on a running `padellm serve` (e.g. "
                         "http://127.0.0.1:8000) instead of starting an engine here")
    extract.add_argument("--adapter", help="an adapter folder (default: the shipped CoNLL-2003 adapter of --mode)")
    extract.add_argument("--mode", choices=("parallel", "autoregressive"),
                         help="which shipped adapter to use; with --adapter, checked against it")
    extract.add_argument("--backend", choices=("vllm", "transformers"), default="vllm")
    extract.add_argument("--batch-size", type=int, default=64, help="texts per decoding call")
    extract.add_argument("--timings", action="store_true", help="add each text's share of the decoding time (ms)")
    extract.add_argument("--out", help="write JSONL here instead of stdout")
    extract.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dataclass_arguments(extract, DecodeConfig, default_from="the adapter's decode.yaml")
    add_dataclass_arguments(extract, VLLMConfig)
    extract.set_defaults(run=_extract)

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
    evaluation.set_defaults(run=_eval)

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
    tune.set_defaults(run=_tune)

    from padellm_serve.cli import add_arguments as add_serve_arguments

    serve = commands.add_parser(
        "serve", help="the HTTP service (FastAPI on vLLM's asynchronous engine)",
        description="Serve NER over HTTP: POST /v1/ner, GET /health, /v1/models, /metrics, /docs.")
    add_serve_arguments(serve)
    serve.set_defaults(run=_serve)

    models = commands.add_parser("models", help="the packaged base models").add_subparsers(dest="models_command", required=True)
    prepare = models.add_parser("prepare", help="convert a packaged model into the local cache (once) and print its folder")
    prepare.add_argument("name", choices=[*PACKAGED_MODELS, "all"])
    prepare.add_argument("--dtype", default="bfloat16", choices=DTYPES,
                         help="weight dtype of converted GGUF models (default: bfloat16)")
    prepare.set_defaults(run=_models_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "finetune":
        parser.parse_args(argv)  # argparse's own error for the unknown arguments (exit 2)
    args.argv = argv
    if args.command == "finetune":
        # The whole finetune command line (its flags depend on the mode), parsed again by ``_finetune``.
        given = list(sys.argv[1:] if argv is None else argv)
        args.finetune_argv = [a for a in given[given.index("finetune") + 1 :] if a not in ("-h", "--help")]
    quiet_libraries(args.verbose)
    with data_stdout() as args.stdout:
        try:
            return args.run(args)
        except PadellmError as err:
            print(f"padellm: error: {err}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
