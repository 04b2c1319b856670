"""``promptopt db path`` and ``promptopt db metadata``."""

from __future__ import annotations

import argparse


def configure_db_path(parser: argparse.ArgumentParser) -> None:
    pass


def run_db_path(args: argparse.Namespace) -> int:
    from promptopt.storage import default_db_path

    print(default_db_path())
    return 0


def configure_db_metadata(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", help="write to this file instead of printing")
    parser.epilog = (
        "Browse your data with: promptopt db metadata --out metadata.json && "
        "datasette $(promptopt db path) -m metadata.json"
    )


def run_db_metadata(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from promptopt.storage import default_db_path
    from promptopt.storage.labels import datasette_metadata

    text = json.dumps(datasette_metadata(default_db_path()), indent=2) + "\n"
    if not args.out or args.out == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.out).expanduser()
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return 0
