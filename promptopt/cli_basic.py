"""Small CLI commands over storage: db path, projects list, inputs import."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure_db_path(parser: argparse.ArgumentParser) -> None:
    pass


def run_db_path(args: argparse.Namespace) -> int:
    from promptopt.storage import default_db_path

    print(default_db_path())
    return 0


def configure_projects_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON lines")


def run_projects_list(args: argparse.Namespace) -> int:
    import json
    import sys

    from promptopt.storage import open_store

    store = open_store()
    projects = store.projects.list()
    if not projects:
        print("No projects yet; create one in the app (promptopt serve).", file=sys.stderr)
    for p in projects:
        n_inputs = len(store.inputs.list(p.id))
        n_votes = store.comparisons.count(p.id)
        if args.json:
            print(json.dumps({"id": p.id, "name": p.name, "inputs": n_inputs, "votes": n_votes}))
        else:
            print(f"{p.id}\t{p.name}\t{n_inputs} inputs\t{n_votes} votes")
    return 0


def configure_inputs_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project name or id")
    parser.add_argument("file", type=Path, help="a .csv, .jsonl or .txt file")
    parser.add_argument("--column", help="CSV column or JSONL key holding the input text")


def run_inputs_import(args: argparse.Namespace) -> int:
    import sys

    from promptopt.inputs_io import parse_inputs_file
    from promptopt.projects import resolve_project
    from promptopt.storage import open_store

    store = open_store()
    project = resolve_project(store, args.project)
    result = parse_inputs_file(args.file, column=args.column)
    ids = store.inputs.add_many(project.id, result.texts, source=args.file.name)
    print(f"imported {len(ids)} inputs into {project.name!r}")
    for problem in result.problems:
        print(f"skipped {problem}", file=sys.stderr)
    return 0
