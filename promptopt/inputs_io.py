"""Reading inputs from CSV, JSONL and TXT. Bad rows are reported with their line numbers; good
rows are kept, so one broken line never costs the user the rest of the file."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("csv", "jsonl", "txt")
_TEXT_KEYS = ("input", "text", "prompt", "question", "content", "document", "article")


@dataclass
class ParseResult:
    texts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    column: str | None = None


class InputFormatError(ValueError):
    """A file that cannot be read as inputs at all; the message says what to do."""


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


def parse_inputs_text(text: str, fmt: str, column: str | None = None) -> ParseResult:
    if fmt not in FORMATS:
        raise InputFormatError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    text = text.lstrip("\ufeff")
    result = ParseResult()
    if fmt == "txt":
        # One input per line; a blank line is skipped, not an error.
        result.texts = [line.strip() for line in text.splitlines() if line.strip()]
        return result
    if fmt == "jsonl":
        keys: list[str] = []
        rows: list[tuple[int, object]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                result.problems.append(f"line {number}: not valid JSON ({exc.msg})")
                continue
            value = rows[-1][1]
            if isinstance(value, dict):
                keys.extend(k for k in value if k not in keys)
        result.columns = keys
        chosen = _pick_column(keys, column) if keys else None
        result.column = chosen
        for number, value in rows:
            if isinstance(value, str) and value.strip():
                result.texts.append(value)
            elif isinstance(value, dict) and chosen is not None:
                item = value.get(chosen)
                if isinstance(item, str) and item.strip():
                    result.texts.append(item)
                else:
                    result.problems.append(f"line {number}: no text under {chosen!r}")
            else:
                result.problems.append(f"line {number}: expected an object or a string")
        # JSON errors were found on the first pass, missing keys on the second: report both in
        # the file's order.
        result.problems.sort(key=lambda problem: int(problem.split(":")[0].split()[1]))
        return result
    dialect: type[csv.Dialect] | csv.Dialect = csv.excel
    with contextlib.suppress(csv.Error):
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except StopIteration:
        return result
    result.columns = [h.strip() for h in header]
    chosen = _pick_column(result.columns, column)
    result.column = chosen
    index = result.columns.index(chosen)
    for row in reader:
        number = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        if index >= len(row):
            result.problems.append(f"line {number}: only {len(row)} columns, no {chosen!r}")
        elif not row[index].strip():
            result.problems.append(f"line {number}: empty {chosen!r}")
        else:
            result.texts.append(row[index])
    return result


def parse_inputs_file(
    path: Path | str, column: str | None = None, fmt: str | None = None
) -> ParseResult:
    """Inputs from a file; ``fmt`` overrides the format its extension suggests."""
    path = Path(path)
    if not path.exists():
        raise InputFormatError(f"No file at {path}. Check the path.")
    if path.is_dir():
        raise InputFormatError(f"{path} is a folder; give a .csv, .jsonl or .txt file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{path} is not UTF-8 text; save it as UTF-8 and retry.") from exc
    return parse_inputs_text(text, fmt or guess_format(path.name), column)
