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
    (("setup",), "promptopt.setup_cli", "check the install and add the offline model"),
    (("projects", "create"), "promptopt.cli_projects", "create a project (or open a sample)"),
    (("projects", "show"), "promptopt.cli_projects", "show a project's settings and counts"),
    (("projects", "set"), "promptopt.cli_projects", "change a project's name, prompt or models"),
    (("projects", "list"), "promptopt.cli_projects", "list projects with their counts"),
    (("inputs", "import"), "promptopt.cli_projects", "import inputs from CSV, JSONL, TXT or stdin"),
    (("inputs", "list"), "promptopt.cli_projects", "list a project's inputs"),
    (("export",), "promptopt.export.cli", "export a project's learned prompt"),
    (("votes", "export"), "promptopt.export.cli", "export every vote and edit, one row each"),
    (("bench", "services"), "promptopt.bench_services", "benchmark the LLM, embedder and FAISS"),
    (("bench", "compare"), "promptopt.compare.bench_cli", "benchmark the Compare engine"),
    (("bench", "edit"), "promptopt.edit.bench", "benchmark the Edit engine"),
    (("bench", "import"), "promptopt.bench_import", "time a large CSV's preview and import"),
    (("db", "path"), "promptopt.cli_basic", "print the database path"),
    (("db", "metadata"), "promptopt.cli_basic", "print or write Datasette metadata (labels)"),
    (("bench", "pair"), "promptopt.llm.bench_pair", "time a Compare pair: batched vs one by one"),
]

GROUP_HELP = {
    "projects": "create, show, change and list projects",
    "inputs": "import and list a project's inputs",
    "votes": "export every vote and edit",
    "bench": "benchmarks that print their numbers",
    "db": "where the database is, and how to browse it",
}


def _epilog() -> str:
    width = max(len(" ".join(path)) for path, _, _ in COMMANDS)
    lines = [f"  {' '.join(path):<{width}}  {text}" for path, _, text in COMMANDS]
    return "commands:\n" + "\n".join(lines) + "\n\nEvery command has --help."


def _add_debug(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a sub-command's parser must not reset --debug given before the sub-command.
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command tree. With ``argv``, only the module of the command it names is
    imported (the others may load Gradio, torch or a model), so every command starts fast."""
    words = [a for a in argv if not a.startswith("-")] if argv is not None else None
    from promptopt import __version__

    parser = argparse.ArgumentParser(
        prog="promptopt",
        description="Interactive prompt optimization from human feedback.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"promptopt {__version__}")
    _add_debug(parser)
    groups: dict[tuple[str, ...], Any] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND")
    }
    for path, module_name, help_text in COMMANDS:
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in groups:
                text = GROUP_HELP.get(prefix[-1], " ".join(prefix))
                sub = groups[path[: depth - 1]].add_parser(prefix[-1], help=text, description=text)
                _add_debug(sub)
                groups[prefix] = sub.add_subparsers(dest=f"cmd_{depth}", metavar="COMMAND")
                sub.set_defaults(_group=sub)
        leaf = groups[path[:-1]].add_parser(path[-1], help=help_text, description=help_text)
        if words is not None and tuple(words[: len(path)]) != path:
            _add_debug(leaf)
            continue  # argparse never reaches this leaf for these arguments
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            # --help still works for every command; running one whose module cannot be
            # imported says why in one line instead of printing usage.
            leaf.set_defaults(_run=_unavailable(path, exc))
            _add_debug(leaf)
            continue
        configure: Callable[..., None] = getattr(module, f"configure_{'_'.join(path)}", None) or (
            module.configure
        )
        runner: Callable[..., int] = getattr(module, f"run_{'_'.join(path)}", None) or module.run
        configure(leaf)
        if "--debug" not in leaf._option_string_actions:  # a command may define its own
            _add_debug(leaf)
        leaf.set_defaults(_run=runner)
    return parser


def _unavailable(path: tuple[str, ...], exc: ImportError) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        raise RuntimeError(
            f"'promptopt {' '.join(path)}' is not available in this install ({exc}). "
            "Reinstall promptopt (make install) or run with --debug for details."
        ) from exc

    return run


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
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
