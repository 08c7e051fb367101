"""``padellm extract``: entities of texts (arguments, ``--file`` or stdin) as JSON lines (or CoNLL, or Label Studio
tasks), decoded here or on a running ``padellm serve``. Output N answers input line N; blank lines are answered with
no entities."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from padellm.configargs import add_dataclass_arguments, dataclass_from_args, given_fields
from padellm.data.export import EXPORT_FORMATS
from padellm.errors import InvalidRequestError, PadellmError
from padellm.terminal.text_input import InputLine, from_arguments, read_file, read_stream


def add_parser(commands) -> None:
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
    extract.add_argument("--api-key-file", metavar="FILE", help="with --server: a file whose first key is sent "
                         "(default: $PADELLM_API_KEY, when it is set)")
    extract.add_argument("--adapter", help="an adapter folder (default: the shipped CoNLL-2003 adapter of --mode)")
    extract.add_argument("--mode", choices=("parallel", "autoregressive"),
                         help="which shipped adapter to use; with --adapter, checked against it")
    extract.add_argument("--backend", choices=("vllm", "transformers"), default="vllm")
    extract.add_argument("--batch-size", type=int, default=64, help="texts per decoding call")
    extract.add_argument("--timings", action="store_true", help="add each text's share of the decoding time (ms)")
    extract.add_argument("--out", help="write the output here instead of stdout")
    extract.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl",
                         help="jsonl: one JSON line per text (default); conll: one 'token TAG' line per token (BIO), "
                              "a blank line after each text (blank input lines and nested mentions cannot be "
                              "written: stderr says how many); labelstudio: a JSON list of Label Studio tasks with "
                              "the entities as pre-annotations")
    extract.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dataclass_arguments(extract, DecodeConfig, default_from="the adapter's decode.yaml")
    add_dataclass_arguments(extract, VLLMConfig)
    extract.set_defaults(run=run)


def read_input(args: argparse.Namespace) -> list[InputLine]:
    if args.text and args.file:
        raise PadellmError("give texts as arguments or --file, not both")
    if args.text:
        return from_arguments(args.text)
    if args.file:
        return read_file(args.file)
    return read_stream(sys.stdin.buffer)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    if args.batch_size < 1:
        raise PadellmError(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.api_key_file and not args.server:
        raise PadellmError("--api-key-file is the key for --server URL; without --server nothing asks for a key")
    lines = read_input(args)
    if not lines:
        print("padellm extract: no texts given (arguments, --file or stdin); nothing to do", file=sys.stderr)
        return 0
    tagged = [line for line in lines if not line.blank]
    blank = len(lines) - len(tagged)
    if blank:
        print(f"padellm extract: {blank} blank line{'s' if blank > 1 else ''} answered with no entities "
              f'("skipped": "blank")', file=sys.stderr)
    decode, close = (remote_decoder(args) if args.server else local_decoder(args, tagged)) if tagged else (None, None)
    answers = {line.number: {"text": line.text, "entities": [], "skipped": "blank"} for line in lines if line.blank}
    out = open(args.out, "w", encoding="utf-8") if args.out else args.stdout
    writer = Writer(args.format, out, model_version(args))
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
            # Output N answers input line N: write every line answered so far, in input order.
            while written < len(lines) and lines[written].number in answers:
                writer.write(answers.pop(lines[written].number))
                written += 1
        for line in lines[written:]:  # blank lines after the last text (or every line, when all are blank)
            writer.write(answers.pop(line.number))
        writer.close()
    finally:
        if args.out:
            out.close()
        if close is not None:
            close()
    return 0


def model_version(args: argparse.Namespace) -> str:
    """What Label Studio records as the predictions' source: the adapter folder's name, or the server's URL."""
    if args.server:
        return args.server
    return Path(args.adapter).name if args.adapter else f"conll2003-{args.mode or 'parallel'}"


class Writer:
    """Writes answers in one of ``EXPORT_FORMATS``, each as soon as it is given, in the order given."""

    def __init__(self, form: str, out, version: str):
        self.form, self.out, self.version = form, out, version
        self.count = self.blank = self.nested = 0

    def write(self, answer: dict) -> None:
        from padellm.data.export import conll_lines, labelstudio_task
        from padellm.types import Entity

        if self.form == "jsonl":
            print(json.dumps(answer, ensure_ascii=False), file=self.out, flush=True)
        elif self.form == "conll":
            if answer.get("skipped"):
                self.blank += 1
                return
            entities = [Entity(e["start"], e["end"], e["label"]) for e in answer["entities"]]
            rows, dropped = conll_lines(answer["text"], entities)
            self.nested += dropped
            print("\n".join(rows) + "\n", file=self.out, flush=True)
        else:
            task = json.dumps(labelstudio_task(answer["text"], answer["entities"], self.version), ensure_ascii=False)
            print(("[\n" if not self.count else ",\n") + task, end="", file=self.out, flush=True)
        self.count += 1

    def close(self) -> None:
        if self.form == "labelstudio":
            print("[\n]" if not self.count else "\n]", file=self.out, flush=True)
        if self.blank:
            print(f"padellm extract: --format conll: {self.blank} blank line(s) have no tokens and are not written; "
                  f"block N of the output answers the N-th non-blank line", file=sys.stderr)
        if self.nested:
            print(f"padellm extract: --format conll: {self.nested} nested or overlapping mention(s) left out (BIO "
                  f"cannot nest; the longest of overlapping mentions is kept); --format jsonl keeps them all",
                  file=sys.stderr)


def local_decoder(args: argparse.Namespace, lines: list[InputLine]):
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


def remote_decoder(args: argparse.Namespace):
    """Decode on a running ``padellm serve``: ``(decode, close)`` as ``local_decoder``'s."""
    from padellm.client import NERClient, client_key
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
    client = NERClient(args.server, api_key=client_key(args.api_key_file))

    def decode(chunk: list[str]):
        response = client.request(chunk, **options)
        records = [[{k: v for k, v in e.items() if v is not None} for e in r["entities"]] for r in response["results"]]
        return records, (response.get("timings_ms") or {}).get("total", 0.0) / 1000

    return decode, lambda: None


