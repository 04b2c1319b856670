"""``promptopt bench import``: how long a large CSV takes to preview and to import, and the memory
it needs. Writes a seeded CSV of the size asked (quoted cells with commas, doubled quotes, line
breaks and non-ASCII text, like spreadsheet exports), then runs the app's own import path: the
upload preview (``parse_inputs_file(..., preview=10)``) and the streaming import into SQLite
(``import_stream`` with the repositories' ``add_many``, as the Project tab does)."""

from __future__ import annotations

import argparse
import csv
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "the",
    "report",
    "shows",
    "revenue",
    "grew,",
    "while",
    "costs",
    '"fell"',
    "sharply;",
    "café",
    "naïve",
    "日本",
    "données",
    "résumé",
    "quarterly",
    "forecast",
    "customer",
    "churn",
    "remained",
    "flat",
    "across",
    "all",
    "regions",
]


def write_csv(path: Path, megabytes: float, seed: int) -> int:
    """A CSV of about ``megabytes`` MB with an id and a text column; returns its row count."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["id", "text"])
        while handle.tell() < target:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30)))
            if rng.random() < 0.1:
                text += "\nsecond line, with a comma"
            writer.writerow([rows, text])
            rows += 1
    return rows


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mb", type=float, default=10.0, help="size of the CSV (default 10)")
    parser.add_argument("--seed", type=int, default=0)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: argparse.Namespace) -> int:
    from promptopt.inputs_io import import_stream, parse_inputs_file
    from promptopt.projects import create_project
    from promptopt.storage import open_store

    with tempfile.TemporaryDirectory(prefix="promptopt-bench-import-") as folder:
        path = Path(folder) / "inputs.csv"
        rows = write_csv(path, args.mb, args.seed)
        size_mb = path.stat().st_size / 1_000_000
        rss_before = _rss_mb()
        started = time.perf_counter()
        preview = parse_inputs_file(path, preview=10)
        preview_s = time.perf_counter() - started
        store = open_store(Path(folder) / "bench.db")
        try:
            project = create_project(store, "bench import", "Summarize:\n{input}")
            started = time.perf_counter()
            added, report = import_stream(
                path,
                None,
                lambda texts: len(store.inputs.add_many(project.id, texts, source="bench")),
            )
            import_s = time.perf_counter() - started
        finally:
            store.database.close()
    ok = added == rows == preview.count and report.problem_count == 0
    print(f"file: {size_mb:.1f} MB CSV, {rows} rows (seed {args.seed})")
    print(f"preview (read every row, keep 10): {preview_s:.2f} s")
    print(f"import into SQLite: {import_s:.2f} s ({added / import_s:,.0f} rows/s)")
    print(f"peak RSS: {_rss_mb():.0f} MB (before reading: {rss_before:.0f} MB)")
    print(f"rows kept: {added} of {rows}, problems: {report.problem_count}")
    if not ok:
        print("MISMATCH: rows were lost or misreported", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promptopt bench import", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
