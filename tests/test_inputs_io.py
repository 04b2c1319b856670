"""Imports keep every good row and report every bad one by line, whatever the file holds."""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from promptopt.inputs_io import (
    InputFormatError,
    import_stream,
    parse_inputs_file,
    parse_inputs_text,
    read_inputs,
)


def read(data: bytes, fmt: str, column: str | None = None) -> Any:
    return read_inputs(io.BytesIO(data), fmt, column)


# -- the failures of issue 9, item 3, one by one ------------------------------------------------
def test_a_csv_cell_longer_than_the_csv_module_default_is_kept() -> None:
    big = "x" * 200_000  # the csv module refuses fields over 131,072 characters by default
    result = read(f'id,text\n1,"{big}"\n2,after\n'.encode(), "csv")
    assert result.texts == [big, "after"] and result.problems == []


def test_deep_nesting_in_jsonl_is_one_bad_row() -> None:
    data = ('{"text": "before"}\n' + "[" * 10_000 + "\n" + '{"text": "after"}\n').encode()
    result = read(data, "jsonl")
    assert result.texts == ["before", "after"]
    assert result.problems == ["line 2: nested too deeply to read"]


def test_a_lone_surrogate_in_jsonl_is_replaced_and_reported(store: Any) -> None:
    result = read(b'{"text": "bad \\ud800 here"}\n{"text": "fine"}\n', "jsonl")
    assert result.texts == ["bad \ufffd here", "fine"]
    assert result.problems == [
        "line 1: lone surrogate characters were replaced with \ufffd (row kept)"
    ]
    project = store.projects.create("surrogates", "{input}")
    assert len(store.inputs.add_many(project.id, result.texts)) == 2  # storable now


def test_one_invalid_byte_costs_nothing_but_is_reported() -> None:
    result = read(b"text\ngood one\nbad \xff byte\nlast\n", "csv")
    assert result.texts == ["good one", "bad \ufffd byte", "last"]
    assert result.problems == [
        "line 3: bytes that are not UTF-8 were replaced with \ufffd (row kept)"
    ]
    assert read(b"a\nb\xc3\n", "txt").problems == [
        "line 2: bytes that are not UTF-8 were replaced with \ufffd (row kept)"
    ]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1e"])
def test_only_newlines_end_rows(separator: str) -> None:
    text = f"one{separator}still one\ntwo\r\nthree\rfour"
    assert parse_inputs_text(text, "txt").texts == [
        f"one{separator}still one",
        "two",
        "three",
        "four",
    ]
    body = f'text\n"a{separator}b"\nc\n'
    assert parse_inputs_text(body, "csv").texts == [f"a{separator}b", "c"]
    line = json.dumps({"text": f"x{separator}y"}, ensure_ascii=False)
    assert parse_inputs_text(line + "\n", "jsonl").texts == [f"x{separator}y"]


def test_excel_style_doubled_quotes_are_never_corrupted() -> None:
    # Files on which csv.Sniffer guessed doublequote=False.
    for body in (
        'text\n"He said ""hi"""\n"a ""b"" c"\n',
        'id;text\n1;"x ""y"""\n2;"z"\n',
        'text,n\n"""quoted"" start",1\n',
    ):
        result = parse_inputs_text(body, "csv")
        assert result.problems == []
        assert all('""' not in t for t in result.texts)
    assert parse_inputs_text('text\n"He said ""hi"""\n', "csv").texts == ['He said "hi"']
    assert parse_inputs_text('id;text\n1;"x ""y"""\n', "csv").texts == ['x "y"']


def test_line_breaks_inside_quoted_cells_are_kept_as_written() -> None:
    result = parse_inputs_text('text\r\n"a\rb\r\nc"\r\nnext\r\n', "csv")
    assert result.texts == ["a\rb\r\nc", "next"]


def test_nul_characters_and_utf16_files() -> None:
    result = read(b"text\nnul\x00here\nok\n", "csv")
    assert result.texts == ["nul\ufffdhere", "ok"] and "NUL" in result.problems[0]
    with pytest.raises(InputFormatError, match="UTF-8"):
        read(codecs.BOM_UTF16_LE + "text\n".encode("utf-16-le"), "csv")


def test_a_preview_keeps_ten_rows_but_counts_all(tmp_path: Path) -> None:
    path = tmp_path / "many.txt"
    path.write_text("\n".join(f"row {i}" for i in range(1000)), encoding="utf-8")
    result = parse_inputs_file(path, preview=10)
    assert result.count == 1000 and len(result.texts) == 10


def test_import_stream_stores_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"text": f"r{i}"}) + "\n" for i in range(25)) + "{bad\n")
    batches: list[list[str]] = []
    added, report = import_stream(
        path, None, lambda texts: batches.append(texts) or len(texts), batch=10
    )
    assert added == 25 and [len(b) for b in batches] == [10, 10, 5]
    assert report.problems == [
        "line 26: not valid JSON (Expecting property name enclosed in double quotes)"
    ]


# -- the seeded fuzz test ---------------------------------------------------------------------
ALPHABET = "abcdefghij XYZ 0123456789 ,;\t\"'éü日本🙂\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e{}[]<>\\/"
BAD_BYTE = "\ue000"  # stands for an invalid byte, written as 0xFF


@dataclass
class Case:
    fmt: str
    data: bytes
    good: list[str] = field(default_factory=list)
    bad_lines: set[int] = field(default_factory=set)
    # Good rows kept with a repair that is reported (invalid bytes, lone surrogates).
    repaired_lines: set[int] = field(default_factory=set)


def _text(rng: random.Random, fmt: str) -> str:
    size = rng.choice([1, 3, 10, 40, 200]) if rng.random() > 0.01 else 140_000
    text = "".join(rng.choices(ALPHABET, k=size))
    if fmt == "csv" and rng.random() < 0.2:
        text += rng.choice(["\n", "\r\n", "\r"]) + "next line"
    return text


def _kept(text: str, fmt: str) -> str:
    """What a good row reads back as: invalid bytes become U+FFFD; TXT rows are stripped."""
    text = text.replace(BAD_BYTE, "\ufffd")
    return text.strip() if fmt == "txt" else text


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass").replace(BAD_BYTE.encode(), b"\xff")


def _lines_in(serialized: str) -> int:
    return len(io.StringIO(serialized, newline="").readlines()) or 1


def make_case(rng: random.Random) -> Case:
    fmt = rng.choice(["csv", "jsonl", "txt"])
    end = rng.choice(["\n", "\r\n", "\r"])
    case = Case(fmt, b"")
    parts: list[str] = []
    line = 1
    if fmt == "csv":
        delimiter = rng.choice([",", ";", "\t"])
        parts.append(f"id{delimiter}text{end}")
        line += 1
    for n in range(rng.randint(0, 60)):
        kind = rng.random()
        text = _text(rng, fmt)
        if not _kept(text, fmt).strip():  # whitespace only is an empty row, not a good one
            text = "x" + text + "y"
        if kind < 0.08:
            text = text[:3] + BAD_BYTE + text[3:]
        serialized, good, repaired = _row(rng, fmt, text, n, kind, end, parts, delimiter_of(parts))
        if good is not None:
            case.good.append(good)
            if repaired or BAD_BYTE in text:
                case.repaired_lines.add(line)
        elif serialized.strip(" \t\r\n") or fmt != "txt":
            case.bad_lines.add(line)
        parts.append(serialized)
        line += _lines_in(serialized)
    case.data = _encode("".join(parts))
    return case


def delimiter_of(parts: list[str]) -> str:
    return parts[0][2] if parts and parts[0].startswith("id") else ","


def _row(
    rng: random.Random,
    fmt: str,
    text: str,
    n: int,
    kind: float,
    end: str,
    parts: list[str],
    delimiter: str,
) -> tuple[str, str | None, bool]:
    """(serialized row, the text it must read back as or None for a bad row, repaired)."""
    if fmt == "txt":
        return text.replace("\n", " ").replace("\r", " ") + end, _kept(text, fmt), False
    if fmt == "jsonl":
        if kind > 0.9:
            bad = rng.choice(["{bad", "[" * 5000, "42", '{"other": "x"}', '""', "[1, 2"])
            return bad + end, None, False
        if kind > 0.85:
            raw = json.dumps({"text": text}, ensure_ascii=False)[:-2] + '\\ud800"}'
            return raw + end, _kept(text, fmt) + "\ufffd", True
        obj: Any = {"text": text, "n": n} if rng.random() < 0.8 else text
        ascii_only = BAD_BYTE not in text and rng.random() < 0.5  # the byte must stay raw
        return json.dumps(obj, ensure_ascii=ascii_only) + end, _kept(text, fmt), False
    buffer = io.StringIO(newline="")
    # The csv writer quotes a cell only for the characters of its own line terminator, so a
    # cell with another line break is quoted explicitly (as spreadsheets do).
    breaks = "\r" in text or "\n" in text or rng.random() < 0.3
    quoting = csv.QUOTE_ALL if breaks else csv.QUOTE_MINIMAL
    writer = csv.writer(
        buffer, delimiter=delimiter, lineterminator=end, doublequote=True, quoting=quoting
    )
    if kind > 0.92:
        writer.writerow([n])  # no text column
        return buffer.getvalue(), None, False
    if kind > 0.88:
        writer.writerow([n, "  "])  # empty text
        return buffer.getvalue(), None, False
    writer.writerow([n, text])
    return buffer.getvalue(), _kept(text, fmt), False


def test_fuzzed_files_lose_no_good_row_and_report_every_bad_one() -> None:
    rng = random.Random(9)
    started = time.perf_counter()
    files = rows = 0
    for _ in range(400):
        case = make_case(rng)
        result = read(case.data, case.fmt)  # an uncaught exception fails the test here
        assert result.texts == case.good, case.fmt
        reported = {int(p.split(":")[0].split()[1]) for p in result.problems}
        assert reported == case.bad_lines | case.repaired_lines, (case.fmt, result.problems)
        files += 1
        rows += len(case.good)
    assert files >= 300 and rows > 5000
    assert time.perf_counter() - started < 30
