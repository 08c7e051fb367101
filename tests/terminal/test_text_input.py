import pytest

from padellm.errors import CorpusError
from padellm.terminal.text_input import from_arguments, read_file, read_lines


def test_one_input_line_per_line_blank_ones_kept():
    lines = read_lines(b"\xef\xbb\xbfEU rejects\r\n\n  \nGerman call.", "<stdin>")
    assert [(line.number, line.text, line.blank) for line in lines] == [
        (1, "EU rejects", False), (2, "", True), (3, "  ", True), (4, "German call.", False)]
    assert lines[3].where == "<stdin>:4"
    assert read_lines(b"", "<stdin>") == [] and len(read_lines(b"\n", "<stdin>")) == 1


def test_bytes_that_are_not_utf8_name_line_and_offset():
    with pytest.raises(CorpusError) as info:
        read_lines("ok\nna\u00efve\n".encode("latin-1"), "in.txt")
    assert info.value.line == 2
    assert "not UTF-8: byte 0xef at byte offset 5 of the input (column 3 of the line)" in str(info.value)
    assert "iconv" in str(info.value)


def test_jsonl_lines_need_a_text_field(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "Paris"}\n\n{"text": "Rome", "id": 7}\n')
    assert [line.text for line in read_file(path)] == ["Paris", "", "Rome"]
    path.write_text('{"text": "Paris"}\n{"text": 3}\n')
    with pytest.raises(CorpusError, match=r"in.jsonl:2: a JSONL input line needs a string field 'text'"):
        read_file(path)
    path.write_text('{"text": "Paris"\n')
    with pytest.raises(CorpusError, match=r"in.jsonl:1: not JSON"):
        read_file(path)


def test_lone_surrogates_are_named():
    with pytest.raises(CorpusError, match=r"<arguments>:2: an unpaired UTF-16 surrogate \(\\udcff\) at character 3"):
        from_arguments(["fine", "caf\udcff"])
    with pytest.raises(CorpusError, match=r"x.jsonl:1: an unpaired UTF-16 surrogate \(\\ud800\)"):
        read_lines(b'{"text": "a\\ud800"}\n', "x.jsonl", jsonl=True)
