"""Reading inputs from CSV, JSONL and TXT, streaming and row by row.

Whatever a file holds, reading it never raises past this module for a bad row: every bad row is
reported with its line number and the reason, and every good row is kept. Memory stays bounded
(one line, or one CSV record, at a time; a preview keeps only its first rows), so files of any
size up to ``MAX_FILE_BYTES`` import at disk speed.

The rules, each a failure seen with real and fuzzed files:
- Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only. ``str.splitlines`` also splits on U+2028,
  U+2029, U+0085, ``\\x0b``, ``\\x0c`` and ``\\x1c``-``\\x1e``, cutting rows in two.
- Bytes that are not UTF-8 are replaced with U+FFFD and reported per line, instead of the whole
  file being refused; so are lone surrogates (``"\\ud800"`` in JSON), which SQLite cannot store.
- CSV: ``"`` quotes and ``""`` inside quotes, always (Excel's convention). The delimiter is the
  one among ``,`` ``;`` and tab that the header line uses most; ``csv.Sniffer`` is not used, as
  it sometimes guessed ``doublequote=False`` and silently corrupted well-formed files. A cell
  may be up to ``MAX_FIELD_CHARS`` long.
- JSONL: a line nested too deeply for the parser is one bad row, not a crash.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

FORMATS = ("csv", "jsonl", "txt")
_TEXT_KEYS = ("input", "text", "prompt", "question", "content", "document", "article")

MAX_FIELD_CHARS = 16 * 1024 * 1024
MAX_FILE_BYTES = 100 * 1024 * 1024
# Problems kept as messages; beyond this they are counted only (a file of a million bad rows
# must not need a million messages in memory).
MAX_PROBLEMS = 10_000
PREVIEW_ROWS = 10
KEPT = " (row kept)"  # ends the report of a row that was repaired rather than skipped
_MAX_COLUMNS = 200
_SAMPLE_ROWS = 1000

_SURROGATE = re.compile("[\ud800-\udfff]")
_READ_BYTES = 1 << 20
_LINE_END = re.compile(rb"\r\n|\r|\n")

# The csv module's limit is process-wide; raised once, to a bound (not sys.maxsize, which
# overflows the C long on some platforms).
if csv.field_size_limit() < MAX_FIELD_CHARS:
    csv.field_size_limit(MAX_FIELD_CHARS)


class InputFormatError(ValueError):
    """A file that cannot be read as inputs at all; the message says what to do."""


@dataclass
class ParseResult:
    """Good rows and bad rows. With ``preview``, ``texts`` holds only the first rows; ``count``
    is always the number of good rows in the whole file."""

    texts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    column: str | None = None
    count: int = 0
    problem_count: int = 0

    def add_problem(self, line: int, reason: str, *, kept: bool = False) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"line {line}: {reason}{KEPT if kept else ''}")

    def summary(self) -> str:
        more = self.problem_count - len(self.problems)
        return f"… and {more} more problems" if more > 0 else ""


@dataclass
class Row:
    """One good row (``text``) or one bad row (``problem``), with its line number."""

    line: int
    text: str | None = None
    problem: str | None = None


def guess_format(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in ("csv", "tsv"):
        return "csv"
    return "txt"


def _pick_column(columns: list[str], column: str | None) -> str:
    if column:
        if column not in columns:
            raise InputFormatError(
                f"Column {column!r} is not in the file; choose one of: {', '.join(columns)}."
            )
        return column
    for key in _TEXT_KEYS:
        for c in columns:
            if c.strip().lower() == key:
                return c
    if not columns:
        raise InputFormatError("The file has no header row; add one naming the input column.")
    return columns[0]


# -- lines ------------------------------------------------------------------------------------
def _raw_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Byte lines, split on \\n, \\r\\n and \\r only, each with its end. Splitting bytes before
    decoding is what keeps U+2028 and friends inside their rows: no UTF-8 sequence of a
    character contains the bytes 0x0A or 0x0D."""
    pending = b""
    first = True
    while True:
        block = stream.read(_READ_BYTES)
        if not block:
            break
        if first:
            first = False
            if block.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise InputFormatError(
                    "This file is UTF-16 text; save it as UTF-8 (in Excel: CSV UTF-8) and retry."
                )
            if block.startswith(b"\xef\xbb\xbf"):
                block = block[3:]
        data = pending + block
        # A \r at the very end may be the first half of \r\n: wait for the next block.
        cut = len(data) - 1 if data.endswith(b"\r") else len(data)
        start = 0
        for match in _LINE_END.finditer(data, 0, cut):
            yield data[start : match.end()]
            start = match.end()
        pending = data[start:]
    if pending:
        yield pending


def _decode(raw: bytes) -> tuple[str, str | None]:
    """(text, problem): invalid bytes become U+FFFD and are reported; NUL characters (which the
    csv module refuses and many tools truncate at) likewise."""
    problem = None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        problem = "bytes that are not UTF-8 were replaced with \ufffd"
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
        problem = (problem + "; " if problem else "") + "NUL characters were replaced with \ufffd"
    return text, problem


def _lines(stream: IO[bytes], keep_ends: bool = False) -> Iterator[tuple[int, str, str | None]]:
    for number, raw in enumerate(_raw_lines(stream), start=1):
        text, problem = _decode(raw if keep_ends else raw.rstrip(b"\r\n"))
        yield number, text, problem


def _no_surrogates(text: str) -> tuple[str, bool]:
    if _SURROGATE.search(text):
        return _SURROGATE.sub("\ufffd", text), True
    return text, False


# -- formats ----------------------------------------------------------------------------------
def _txt_rows(stream: IO[bytes]) -> Iterator[Row]:
    for number, line, problem in _lines(stream):
        text = line.strip()
        if text:
            yield Row(number, text, problem)  # kept, with the replacement reported
        elif problem:
            yield Row(number, None, problem)


class _JsonlReader:
    def __init__(self, column: str | None) -> None:
        self.column = column
        self.chosen: str | None = column
        self.columns: list[str] = []

    def rows(self, stream: IO[bytes]) -> Iterator[Row]:
        # The column is chosen from the keys of the first objects (up to _SAMPLE_ROWS of them,
        # so memory stays bounded), not of the first one alone: one odd first row must not send
        # every other row to "no text".
        sample: list[Row | tuple[int, object, str | None]] = []
        parsed = self._parsed(stream)
        for item in parsed:
            sample.append(item)  # kept in file order, bad rows included
            if not isinstance(item, Row) and isinstance(item[1], dict):
                self._note_keys(item[1])
            if len(sample) >= _SAMPLE_ROWS:
                break
        if self.chosen is None and self.columns:
            self.chosen = _pick_column(self.columns, None)
        for item in sample:
            yield item if isinstance(item, Row) else self._row(*item)
        for item in parsed:
            yield item if isinstance(item, Row) else self._row(*item)

    def _parsed(self, stream: IO[bytes]) -> Iterator[Row | tuple[int, object, str | None]]:
        for number, line, problem in _lines(stream):
            if not line.strip():
                if problem:
                    yield Row(number, None, problem)
                continue
            try:
                value = json.loads(line)
            except RecursionError:
                yield Row(number, None, "nested too deeply to read")
                continue
            except ValueError as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                yield Row(number, None, f"not valid JSON ({reason})")
                continue
            yield number, value, problem

    def _note_keys(self, value: dict[Any, Any]) -> None:
        for key in value:
            if str(key) not in self.columns and len(self.columns) < _MAX_COLUMNS:
                self.columns.append(str(key))

    def _row(self, number: int, value: object, problem: str | None) -> Row:
        if isinstance(value, dict):
            self._note_keys(value)
            if self.chosen is None:
                if not value:
                    return Row(number, None, "an empty object, no text")
                self.chosen = _pick_column(self.columns, None)
            item = value.get(self.chosen)
            if not (isinstance(item, str) and item.strip()):
                return Row(number, None, f"no text under {self.chosen!r}")
            value = item
        elif not (isinstance(value, str) and value.strip()):
            return Row(number, None, "expected an object or a string")
        assert isinstance(value, str)
        text, replaced = _no_surrogates(value)
        if replaced:
            note = "lone surrogate characters were replaced with \ufffd"
            problem = f"{problem}; {note}" if problem else note
        return Row(number, text, problem)


def _delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class _CsvReader:
    def __init__(self, column: str | None) -> None:
        self.column = column
        self.chosen: str | None = None
        self.columns: list[str] = []
        self._problems: dict[int, str] = {}

    def _text_lines(self, stream: IO[bytes]) -> Iterator[str]:
        # With their ends: a quoted cell keeps the line breaks it holds, \r and \r\n included.
        for number, line, problem in _lines(stream, keep_ends=True):
            if problem:
                self._problems[number] = problem
            yield line

    def rows(self, stream: IO[bytes]) -> Iterator[Row]:
        lines = self._text_lines(stream)
        first = next(lines, None)
        if first is None:
            return
        header_lines = [first]
        reader = csv.reader(
            _chain(header_lines, lines),
            delimiter=_delimiter(first),
            quotechar='"',
            doublequote=True,
            skipinitialspace=False,
            strict=False,
        )
        try:
            header = next(reader)
        except (csv.Error, StopIteration) as exc:
            raise InputFormatError(f"The header row cannot be read ({exc}).") from exc
        self.columns = [h.strip() for h in header]
        self.chosen = _pick_column(self.columns, self.column)
        index = self.columns.index(self.chosen)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Row(start, None, f"not a readable CSV row ({exc})")
                continue
            problem = self._take_problems(start, reader.line_num)
            if not row or not any(cell.strip() for cell in row):
                if problem:
                    yield Row(start, None, problem)
                continue
            if index >= len(row):
                yield Row(start, None, f"only {len(row)} columns, no {self.chosen!r}")
            elif not row[index].strip():
                yield Row(start, None, f"empty {self.chosen!r}")
            else:
                yield Row(start, row[index], problem)

    def _take_problems(self, first: int, last: int) -> str | None:
        found = [self._problems.pop(n) for n in range(first, last + 1) if n in self._problems]
        return "; ".join(dict.fromkeys(found)) or None


def _chain(head: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from rest


# -- the public API ---------------------------------------------------------------------------
class InputReader:
    """Reads one file's rows lazily; ``columns`` and ``column`` are known once reading began."""

    def __init__(self, fmt: str, column: str | None = None) -> None:
        if fmt not in FORMATS:
            raise InputFormatError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
        self.fmt = fmt
        self._impl: _CsvReader | _JsonlReader | None = None
        if fmt == "csv":
            self._impl = _CsvReader(column)
        elif fmt == "jsonl":
            self._impl = _JsonlReader(column)

    @property
    def columns(self) -> list[str]:
        return list(self._impl.columns) if self._impl is not None else []

    @property
    def column(self) -> str | None:
        return self._impl.chosen if self._impl is not None else None

    def rows(self, stream: IO[bytes]) -> Iterator[Row]:
        if self._impl is None:
            return _txt_rows(stream)
        return self._impl.rows(stream)


def read_inputs(
    stream: IO[bytes], fmt: str, column: str | None = None, *, preview: int | None = None
) -> ParseResult:
    """Every row of ``stream``: good ones in ``texts`` (only the first ``preview`` of them when
    given), bad ones in ``problems``."""
    reader = InputReader(fmt, column)
    result = ParseResult()
    for row in reader.rows(stream):
        if row.problem is not None:
            result.add_problem(row.line, row.problem, kept=row.text is not None)
        if row.text is not None:
            result.count += 1
            if preview is None or len(result.texts) < preview:
                result.texts.append(row.text)
    result.columns, result.column = reader.columns, reader.column
    return result


def iter_batches(
    stream: IO[bytes],
    reader: InputReader,
    result: ParseResult,
    size: int = 2000,
) -> Iterator[list[str]]:
    """Good rows in batches of ``size`` for storing as they come; problems go to ``result``."""
    batch: list[str] = []
    for row in reader.rows(stream):
        if row.problem is not None:
            result.add_problem(row.line, row.problem, kept=row.text is not None)
        if row.text is not None:
            result.count += 1
            batch.append(row.text)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch
    result.columns, result.column = reader.columns, reader.column


def import_stream(
    path: Path | str,
    column: str | None,
    add_batch: Callable[[list[str]], int],
    *,
    fmt: str | None = None,
    batch: int = 5000,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[int, ParseResult]:
    """Read ``path`` and hand its good rows to ``add_batch`` as they come (it stores them and
    returns how many it added): never the whole file in memory. Returns (added, report)."""
    file = check_file(path)
    total = max(1, file.stat().st_size)
    reader = InputReader(fmt or guess_format(file.name), column)
    report = ParseResult()
    added = 0
    with file.open("rb") as stream:
        for texts in iter_batches(stream, reader, report, batch):
            added += add_batch(texts)
            if progress is not None:
                progress(min(1.0, stream.tell() / total), f"Imported {added} inputs")
    return added, report


def parse_inputs_text(text: str, fmt: str, column: str | None = None) -> ParseResult:
    """``read_inputs`` over a string (typed text, standard input). Lone surrogates in it (from
    a decoder's surrogateescape) reach the byte reader as invalid UTF-8 and are reported."""
    data = text.encode("utf-8", errors="surrogatepass")
    return read_inputs(io.BytesIO(data), fmt, column)


def check_file(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFormatError(f"No file at {path}. Check the path.")
    if path.is_dir():
        raise InputFormatError(f"{path} is a folder; give a .csv, .jsonl or .txt file.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputFormatError(
            f"{path.name} is {size / 1e6:.0f} MB; files up to {MAX_FILE_BYTES // 2**20} MB "
            "are imported. Split it into smaller files."
        )
    return path


def parse_inputs_file(
    path: Path | str,
    column: str | None = None,
    fmt: str | None = None,
    *,
    preview: int | None = None,
) -> ParseResult:
    """Inputs from a file; ``fmt`` overrides the format its extension suggests."""
    path = check_file(path)
    with path.open("rb") as stream:
        return read_inputs(stream, fmt or guess_format(path.name), column, preview=preview)
