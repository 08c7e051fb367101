"""Corpus readers and writers: CoNLL-style BIO files, span-JSON files and padellm's canonical JSONL.

Every reader returns ``list[Example]`` and a :class:`ReadReport`. Bad input raises
:class:`~padellm.errors.CorpusError` naming the file and line; nothing is skipped silently. With
``ReadOptions(lenient=True)`` the readers repair what they can instead, and count every repair in the report.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from padellm.data.bio import (
    SCHEMES,
    TagError,
    detect_joiner,
    detect_scheme,
    join_tokens,
    split_tag,
    tags_to_spans,
    tokenize,
    tokens_to_entities,
)
from padellm.errors import ConfigError, CorpusError, one_of_problem
from padellm.types import Entity, Example

FORMATS = ("auto", "conll", "spanjson", "jsonl")
JOINERS = {"auto": None, "space": " ", "none": ""}


@dataclass(frozen=True)
class ReadOptions:
    """How to read a corpus file."""

    format: str = "auto"
    """``conll``, ``spanjson``, ``jsonl``, or ``auto`` (detected from the file's first non-blank character)."""
    scheme: str = "auto"
    """Tag scheme of CoNLL files: ``iob2``, ``iob1`` (normalised to IOB2), or ``auto`` (detected per file)."""
    joiner: str = "auto"
    """How tokens are joined into text: ``space``, ``none`` (Chinese), or ``auto`` (by script, per file)."""
    lenient: bool = False
    """Repair what can be repaired (an opening ``I-`` read as ``B-``, a line without a token dropped, a
    duplicate mention dropped, ...) instead of raising; every repair is counted in the report."""

    def __post_init__(self) -> None:
        problems = []
        if self.format not in FORMATS:
            problems.append(one_of_problem("format", FORMATS, self.format))
        if self.scheme not in SCHEMES:
            problems.append(one_of_problem("scheme", SCHEMES, self.scheme))
        if self.joiner not in JOINERS:
            problems.append(one_of_problem("joiner", JOINERS, self.joiner))
        if problems:
            raise ConfigError(problems)


@dataclass
class ReadReport:
    """What a reader did: the detected format and scheme, and every lenient repair (kind -> count)."""

    path: str
    format: str
    scheme: str | None = None
    repairs: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    """Up to ten ``file:line: what was repaired`` lines, to show the user what lenient mode changed."""

    def repair(self, kind: str, line: int, what: str) -> None:
        self.repairs[kind] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{self.path}:{line}: {what}")


def detect_format(path: Path) -> str:
    """``spanjson`` for a file that starts with ``[``, ``jsonl`` for ``{``, ``conll`` otherwise."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            stripped = line.strip()
            if stripped:
                return {"[": "spanjson", "{": "jsonl"}.get(stripped[0], "conll")
    raise CorpusError(path, None, "the file is empty")


def read_corpus(path: str | Path, options: ReadOptions = ReadOptions()) -> tuple[list[Example], ReadReport]:
    """Read one corpus file in any supported format."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(path, None, "no such file")
    fmt = detect_format(path) if options.format == "auto" else options.format
    reader = {"conll": read_conll, "spanjson": read_spanjson, "jsonl": read_jsonl}[fmt]
    return reader(path, options)


# ---------------------------------------------------------------------------------------------- CoNLL


def lenient_hint(repair: str) -> str:
    """How a strict-reader error continues: the way out, and what it changes."""
    return f"; --lenient (ReadOptions(lenient=True)) {repair}, and counts each repair"


def _conll_sentences(path: Path, report: ReadReport, lenient: bool) -> Iterator[list[tuple[int, str, str]]]:
    """Yield sentences as ``[(line number, token, tag), ...]``; blank lines separate sentences."""
    sentence: list[tuple[int, str, str]] = []
    with open(path, encoding="utf-8", newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if sentence:
                    yield sentence
                sentence = []
                continue
            fields = line.split() if "\t" not in line else [f for f in line.split("\t") if f.strip()]
            fields = [f.strip() for f in fields]
            if fields[0] == "-DOCSTART-":
                continue
            if len(fields) < 2:
                if not lenient:
                    raise CorpusError(path, number, f"a tag without a token (one column: {line.strip()!r})"
                                      + lenient_hint("drops such lines"))
                report.repair("line without token dropped", number, f"dropped {line.strip()!r}")
                continue
            # Four-column CoNLL-2003 (token POS chunk NER) and two-column files alike: first and last column.
            sentence.append((number, fields[0], fields[-1]))
    if sentence:
        yield sentence


def read_conll(path: str | Path, options: ReadOptions = ReadOptions()) -> tuple[list[Example], ReadReport]:
    path = Path(path)
    report = ReadReport(str(path), "conll")
    sentences = list(_conll_sentences(path, report, options.lenient))
    return tagged_examples(sentences, path, options, report), report


def tagged_examples(sentences: list[list[tuple[int, str, str]]], path: Path, options: ReadOptions,
                    report: ReadReport, unit: str = "line") -> list[Example]:
    """Sentences of ``(position, token, BIO tag)`` -> examples; ``report.scheme`` is set. A position is a line
    of ``path`` (``unit="line"``) or a row of a table (``unit="row"``); errors name it."""

    def error(number: int, reason: str) -> CorpusError:
        return CorpusError(path, number, reason) if unit == "line" else CorpusError(path, None, f"{unit} {number}: {reason}")

    for sentence in sentences:
        for number, _, tag in sentence:
            try:
                split_tag(tag)
            except ValueError as err:
                raise error(number, str(err)) from None
    if options.scheme == "auto":
        report.scheme = detect_scheme([[tag for _, _, tag in s] for s in sentences])
    else:
        report.scheme = options.scheme
    joiner = JOINERS[options.joiner]
    if joiner is None:
        joiner = detect_joiner([token for s in sentences[:200] for _, token, _ in s])

    examples = []
    for sentence in sentences:
        numbers = [n for n, _, _ in sentence]
        tokens = [t for _, t, _ in sentence]
        try:
            decoded = tags_to_spans([tag for _, _, tag in sentence], report.scheme, strict=not options.lenient)
        except TagError as err:
            raise error(numbers[err.index], err.reason
                        + lenient_hint("reads an I- tag that opens a chunk as B-")) from None
        for i in decoded.repaired:
            report.repair("opening I- read as B-", numbers[i], f"{sentence[i][2]} read as B-{sentence[i][2][2:]}")
        text, token_spans = join_tokens(tokens, joiner)
        entities = tokens_to_entities(token_spans, decoded.spans)
        examples.append(
            Example(text, tuple(tokens), tuple(token_spans), tuple(entities), id=f"{path.stem}:{numbers[0]}")
        )
    return examples


def _drop_duplicates(items: list, path: Path, line: int, where: str, report: ReadReport, lenient: bool) -> list:
    """``items`` without repeats: an error naming the first repeat, or (lenient) each repeat dropped and counted."""
    kept, seen = [], set()
    for item in items:
        if item in seen:
            if not lenient:
                raise CorpusError(path, line, f"{where}duplicate mention {item}" + lenient_hint("drops repeats"))
            report.repair("duplicate mention dropped", line, f"{where}dropped duplicate {item}")
            continue
        seen.add(item)
        kept.append(item)
    return kept


# ------------------------------------------------------------------------------------------ span-JSON


def _json_array_items(path: Path) -> Iterator[tuple[int, int, object]]:
    """Yield ``(index, line number, item)`` for each element of a top-level JSON array, with line numbers."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()

    def line_of(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    def skip_space(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def decode(i: int) -> tuple[object, int]:
        try:
            return decoder.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise CorpusError(path, err.lineno, f"invalid JSON: {err.msg} (column {err.colno})") from None

    i = skip_space(0)
    if i >= len(text) or text[i] != "[":
        raise CorpusError(path, line_of(i), "a span-JSON file must hold one JSON array of sentences")
    i = skip_space(i + 1)
    index = 0
    if i < len(text) and text[i] == "]":
        i += 1
    else:
        while True:
            line = line_of(i)
            item, i = decode(i)
            yield index, line, item
            index += 1
            i = skip_space(i)
            if i < len(text) and text[i] == ",":
                i = skip_space(i + 1)
                continue
            if i < len(text) and text[i] == "]":
                i += 1
                break
            raise CorpusError(path, line_of(i), "invalid JSON: expected ',' or ']' after an array element")
    if skip_space(i) != len(text):
        raise CorpusError(path, line_of(skip_space(i)), "invalid JSON: extra data after the array")


def _span_from_index(
    path: Path, line: int, number: int, mention: object, n_tokens: int, report: ReadReport, lenient: bool
) -> tuple[int, int, str] | None:
    where = f"sentence {number}"
    if not isinstance(mention, dict) or "index" not in mention or "type" not in mention:
        raise CorpusError(path, line, f"{where}: each 'ner' item needs 'index' and 'type', got {mention!r}")
    index, label = mention["index"], mention["type"]
    if not isinstance(label, str) or not label:
        raise CorpusError(path, line, f"{where}: 'type' must be a non-empty string, got {label!r}")
    if not isinstance(index, list) or not index or not all(isinstance(i, int) for i in index):
        raise CorpusError(path, line, f"{where}: 'index' must be a non-empty list of token positions, got {index!r}")
    bad = [i for i in index if not 0 <= i < n_tokens]
    if bad:
        raise CorpusError(
            path, line, f"{where}: index {bad[0]} out of range for a sentence of {n_tokens} tokens ({label})"
        )
    ordered = sorted(set(index))
    if ordered != list(range(ordered[0], ordered[-1] + 1)):
        if not lenient:
            raise CorpusError(path, line, f"{where}: discontinuous mention {index} ({label}) is not supported"
                              + lenient_hint("reads it as the span from its first to its last token"))
        report.repair("discontinuous mention spanned", line, f"{where}: {index} read as {ordered[0]}..{ordered[-1]}")
    return ordered[0], ordered[-1] + 1, label


def read_spanjson(path: str | Path, options: ReadOptions = ReadOptions()) -> tuple[list[Example], ReadReport]:
    path = Path(path)
    report = ReadReport(str(path), "spanjson")
    raw: list[tuple[int, int, list[str], list]] = []
    for number, line, item in _json_array_items(path):
        if not isinstance(item, dict) or not isinstance(item.get("sentence"), list):
            raise CorpusError(path, line, f"sentence {number}: expected an object with a 'sentence' token list")
        tokens = item["sentence"]
        if not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
            raise CorpusError(path, line, f"sentence {number}: every token must be a non-blank string")
        mentions = item.get("ner", [])
        if not isinstance(mentions, list):
            raise CorpusError(path, line, f"sentence {number}: 'ner' must be a list, got {type(mentions).__name__}")
        raw.append((number, line, tokens, mentions))
    joiner = JOINERS[options.joiner]
    if joiner is None:
        joiner = detect_joiner([t for _, _, tokens, _ in raw[:200] for t in tokens])

    examples = []
    for number, line, tokens, mentions in raw:
        spans = _drop_duplicates(
            [_span_from_index(path, line, number, m, len(tokens), report, options.lenient) for m in mentions],
            path, line, f"sentence {number}: ", report, options.lenient,
        )
        text, token_spans = join_tokens(tokens, joiner)
        entities = tokens_to_entities(token_spans, spans)
        examples.append(Example(text, tuple(tokens), tuple(token_spans), tuple(entities), id=f"{path.stem}:{number}"))
    return examples, report


# -------------------------------------------------------------------------------------- canonical JSONL


def _entity_from_json(path: Path, line: int, item: object, text: str) -> Entity:
    if not isinstance(item, dict) or not {"start", "end", "label"} <= item.keys():
        raise CorpusError(path, line, f"each entity needs 'start', 'end' and 'label', got {item!r}")
    start, end, label = item["start"], item["end"], item["label"]
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
        raise CorpusError(path, line, f"entity offsets must be integers, got start={start!r}, end={end!r}")
    if not 0 <= start < end <= len(text):
        raise CorpusError(
            path, line, f"entity span [{start}, {end}) out of range for a text of {len(text)} characters"
        )
    if not isinstance(label, str) or not label:
        raise CorpusError(path, line, f"entity label must be a non-empty string, got {label!r}")
    if "text" in item and item["text"] != text[start:end]:
        raise CorpusError(
            path, line, f"entity text {item['text']!r} does not match text[{start}:{end}]={text[start:end]!r}"
        )
    return Entity(start, end, label)


def read_jsonl(path: str | Path, options: ReadOptions = ReadOptions()) -> tuple[list[Example], ReadReport]:
    """One JSON object a line: ``{"text": ..., "entities": [{"start", "end", "label"}], "id"?: ...}``.

    Offsets are half-open character offsets. Optional ``"tokens"`` (a list of strings that appear in order
    in the text) fix the tokenisation; without it the text is tokenised by :func:`padellm.data.bio.tokenize`.
    """
    path = Path(path)
    report = ReadReport(str(path), "jsonl")
    examples = []
    with open(path, encoding="utf-8") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as err:
                raise CorpusError(path, line, f"invalid JSON: {err.msg} (column {err.colno})") from None
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise CorpusError(path, line, "expected an object with a string 'text'")
            text = item["text"]
            entities_json = item.get("entities", [])
            if not isinstance(entities_json, list):
                raise CorpusError(path, line, f"'entities' must be a list, got {type(entities_json).__name__}")
            entities = _drop_duplicates(
                [_entity_from_json(path, line, e, text) for e in entities_json], path, line, "", report, options.lenient
            )
            tokens, token_spans = _jsonl_tokens(path, line, item, text)
            examples.append(
                Example(text, tuple(tokens), tuple(token_spans), tuple(entities), id=str(item.get("id", f"{path.stem}:{line}")))
            )
    return examples, report


def _jsonl_tokens(path: Path, line: int, item: dict, text: str) -> tuple[list[str], list[tuple[int, int]]]:
    if "tokens" not in item:
        return tokenize(text)
    tokens = item["tokens"]
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise CorpusError(path, line, "'tokens' must be a list of non-empty strings")
    spans = []
    position = 0
    for token in tokens:
        start = text.find(token, position)
        if start < 0:
            raise CorpusError(path, line, f"token {token!r} not found in the text after character {position}")
        spans.append((start, start + len(token)))
        position = start + len(token)
    return tokens, spans


def write_jsonl(path: str | Path, examples: Sequence[Example], predictions: Sequence[Sequence[Entity]] | None = None) -> None:
    """Write examples (or, when given, ``predictions`` for them) in the canonical JSONL format."""
    if predictions is not None and len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    with open(path, "w", encoding="utf-8") as handle:
        for i, example in enumerate(examples):
            entities = example.entities if predictions is None else predictions[i]
            record = {
                "id": example.id,
                "text": example.text,
                "tokens": list(example.tokens),
                "entities": [
                    {"start": e.start, "end": e.end, "label": e.label, "text": e.mention(example.text)}
                    | ({} if e.score is None else {"score": e.score})
                    for e in entities
                ],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
