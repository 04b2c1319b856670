"""``promptopt export`` and ``promptopt votes export``."""

from __future__ import annotations

import argparse
import sys

from promptopt.export import FORMATS, export_project, write_export

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
        help="file to write, or a folder (an existing one, or a path ending in /, created if "
        "needed; the file is named after the project); '-' or nothing prints to stdout",
    )
    parser.add_argument(
        "--model",
        help="the model the openai, llm and promptfoo exports name (default: the project's)",
    )
    parser.add_argument("--annotator", help="only this annotator's votes, edits and profile")
    parser.add_argument(
        "--win-rates",
        action="store_true",
        help="rank prompts by plain win rates; by default, with --annotator, the Compare "
        "engine's model ranks them (it loads the embedding model, a few seconds)",
    )


def run_export(args: argparse.Namespace) -> int:
    engine = args.annotator is not None and not args.win_rates
    return _export(
        args.project, args.fmt, args.out, args.annotator, engine=engine, model=args.model
    )


def configure_votes_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project name or id")
    parser.add_argument(
        "--format", "-f", dest="fmt", choices=("csv", "jsonl"), default="csv", help="default csv"
    )
    parser.add_argument(
        "--out", "-o", help="file, or folder (existing, or ending in /); stdout when omitted"
    )
    parser.add_argument("--annotator", help="only this annotator's votes and edits")


def run_votes_export(args: argparse.Namespace) -> int:
    return _export(args.project, f"votes-{args.fmt}", args.out, args.annotator, engine=False)


def _export(
    project: str,
    fmt: str,
    out: str | None,
    annotator: str | None,
    *,
    engine: bool,
    model: str | None = None,
) -> int:
    from promptopt.projects import resolve_project
    from promptopt.storage import open_store

    store = open_store()
    try:
        found = resolve_project(store, project)
        compare = "auto" if engine else None
        filename, text = export_project(
            store, found.id, fmt, annotator, compare=compare, model=model
        )
        if out is None or out == "-":
            sys.stdout.write(text)
            return 0
        path = write_export(text, out, filename)
    finally:
        store.database.close()
    print(f"wrote {path}", file=sys.stderr)
    return 0
