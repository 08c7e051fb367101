"""The texts a command tags, read and checked before any engine starts.

Every input line becomes one ``InputLine`` (so that output line N answers input line N): plain text files hold one
text per line, ``.jsonl`` files one JSON object with a string field ``text`` per line. A line that is empty or
whitespace only is kept as ``blank`` (the caller answers it with no entities and says so); anything that cannot
be read is an error naming the source, the line and how to fix it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from padellm.errors import CorpusError, PadellmError
from padellm.types import surrogate_problem

STDIN = "<stdin>"


@dataclass(frozen=True)
class InputLine:
    source: str  # a file path, "<stdin>" or "<arguments>"
    number: int  # 1-based line (or argument) number
    text: str

    @property
    def blank(self) -> bool:
        return not self.text.strip()

    @property
    def where(self) -> str:
        return f"{self.source}:{self.number}"


def from_arguments(texts: list[str]) -> list[InputLine]:
    """Texts given on the command line (undecodable bytes there arrive as lone surrogates: an error)."""
    return [_line("<arguments>", number, text) for number, text in enumerate(texts, 1)]


def _line(source: str, number: int, text: str) -> InputLine:
    problem = surrogate_problem(text)
    if problem:
        raise CorpusError(source, number, f"{problem} (bytes that are not UTF-8 arrive so); remove it or re-encode "
                                          f"the input as UTF-8")
    return InputLine(source, number, text)


def read_lines(data: bytes, source: str, jsonl: bool = False) -> list[InputLine]:
    """Decode ``data`` (UTF-8; a leading byte-order mark and CRLF line ends are accepted) into one ``InputLine``
    per line. Non-UTF-8 bytes, invalid JSONL records and lone surrogates raise ``CorpusError`` naming the line."""
    lines, offset = [], 0
    if data.startswith(b"\xef\xbb\xbf"):
        offset = 3
    raw_lines = data[offset:].split(b"\n")
    if raw_lines and raw_lines[-1] == b"":  # the newline that ends the last line opens no new one
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            position = offset + err.start
            raise CorpusError(source, number, f"not UTF-8: byte 0x{raw[err.start]:02x} at byte offset {position} "
                                              f"of the input (column {err.start + 1} of the line); re-encode the "
                                              f"input as UTF-8, e.g. iconv -f latin1 -t utf-8") from None
        offset += len(raw) + 1
        text = text.removesuffix("\r")
        if jsonl and text.strip():
            text = _jsonl_text(text, source, number)
        lines.append(_line(source, number, text))
    return lines


def _jsonl_text(line: str, source: str, number: int) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise CorpusError(source, number, f"not JSON ({err.msg}, column {err.colno}); a .jsonl input holds one "
                                          f"object with a string field 'text' per line") from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise CorpusError(source, number, "a JSONL input line needs a string field 'text', e.g. {\"text\": \"...\"}")
    return record["text"]


def read_file(path: str | Path) -> list[InputLine]:
    """A text file, one text per line; ``.jsonl``: one ``{"text": ...}`` object per line."""
    path = Path(path)
    if not path.is_file():
        raise PadellmError(f"--file {path}: no such file")
    return read_lines(path.read_bytes(), str(path), jsonl=path.suffix == ".jsonl")


def read_stream(stream: BinaryIO, source: str = STDIN) -> list[InputLine]:
    return read_lines(stream.read(), source)
