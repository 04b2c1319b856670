"""``promptopt export`` and ``promptopt votes export``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from promptopt.export import FORMATS, ExportError, export_project, write_export

log = logging.getLogger("promptopt.export")

_PROMPT_FORMATS = [f for f in FORMATS if not f.startswith("votes-")]


def configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project name or id")
    parser.add_argument(
        "--format",
        "-f",
        dest="fmt",
        required=True,
        choices=_PROMPT_FORMATS,
        help="; ".join(f"{key}: {FORMATS[key][0]}" for key in _PROMPT_FORMATS),
    )
    parser.add_argument(
        "--out",
        "-o",
        help="file to write, or an existing folder (the file is named after the project); "
        "'-' or nothing prints to stdout",
    )
    parser.add_argument("--annotator", help="only this annotator's votes, edits and profile")
    parser.add_argument(
        "--engine",
        action="store_true",
        help="rank prompts with the Compare engine's model (loads the embedding model) instead "
        "of win rates; needs --annotator",
    )


def run_export(args: argparse.Namespace) -> int:
    return _export(args.project, args.fmt, args.out, args.annotator, engine=args.engine)


def configure_votes_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project name or id")
    parser.add_argument(
        "--format", "-f", dest="fmt", choices=("csv", "jsonl"), default="csv", help="default csv"
    )
    parser.add_argument("--out", "-o", help="file or existing folder; stdout when omitted")
    parser.add_argument("--annotator", help="only this annotator's votes and edits")


def run_votes_export(args: argparse.Namespace) -> int:
    return _export(args.project, f"votes-{args.fmt}", args.out, args.annotator, engine=False)


def _export(project: str, fmt: str, out: str | None, annotator: str | None, *, engine: bool) -> int:
    from promptopt.projects import resolve_project
    from storage import open_store

    store = open_store()
    try:
        found = resolve_project(store, project)
        if engine and annotator is None:
            raise ExportError("--engine ranks one annotator's votes; add --annotator NAME.")
        compare = _compare_service(store) if engine else None
        filename, text = export_project(store, found.id, fmt, annotator, compare=compare)
        if out is None or out == "-":
            sys.stdout.write(text)
            return 0
        path = write_export(text, out, filename)
    finally:
        store.database.close()
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _compare_service(store: Any) -> Any:
    """The Compare engine, when it is installed; its ranking replaces plain win rates."""
    try:
        from promptopt.compare.service import CompareService
    except ImportError as exc:
        raise ExportError("The Compare engine is not available in this install.") from exc
    from promptopt.embeddings import create_embedder
    from promptopt.llm import create_client

    return CompareService(store, create_client(store), create_embedder("default"))
