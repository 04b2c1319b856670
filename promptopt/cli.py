"""The ``promptopt`` command. Each subcommand group lives with the code it drives; this file only
composes them. Errors print as one line on stderr with a non-zero exit status."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

# (command path, module, help). Each module defines configure(parser) and run(args) -> int.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("serve",), "promptopt.ui.serve_cli", "start the web app"),
    (("db", "path"), "promptopt.cli_basic", "print the database path"),
    (("projects", "list"), "promptopt.cli_basic", "list projects"),
    (("inputs", "import"), "promptopt.cli_basic", "import inputs from CSV, JSONL or TXT"),
    (("export",), "promptopt.export.cli", "export a project's learned prompt"),
    (("votes", "export"), "promptopt.export.cli", "export all comparisons and edits"),
    (("bench", "services"), "promptopt.bench_services", "benchmark the LLM, embedder and FAISS"),
    (("bench", "compare"), "promptopt.compare.bench", "benchmark the Compare engine"),
    (("bench", "edit"), "promptopt.edit.bench", "benchmark the Edit engine"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptopt",
        description="Interactive prompt optimization from human feedback.",
    )
    groups: dict[tuple[str, ...], Any] = {(): parser.add_subparsers(dest="command")}
    for path, module_name, help_text in COMMANDS:
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in groups:
                sub = groups[path[: depth - 1]].add_parser(prefix[-1], help=f"{prefix[-1]} ...")
                groups[prefix] = sub.add_subparsers(dest=f"cmd_{depth}")
                sub.set_defaults(_group=sub)
        leaf = groups[path[:-1]].add_parser(path[-1], help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # a command whose module is not built yet is simply not offered
        configure: Callable[..., None] = getattr(module, f"configure_{'_'.join(path)}", None) or (
            module.configure
        )
        runner: Callable[..., int] = getattr(module, f"run_{'_'.join(path)}", None) or module.run
        configure(leaf)
        leaf.set_defaults(_run=runner)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        group = getattr(args, "_group", parser)
        group.print_help()
        return 2
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, no traceback, for every error a user can cause
        if getattr(args, "debug", False):
            raise
        print(f"promptopt: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
