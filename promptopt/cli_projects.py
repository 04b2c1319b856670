"""``promptopt projects create|show|set|list`` and ``promptopt inputs import|list``: everything
needed to start work without the browser."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from promptopt.storage import Store, ValidationError
from promptopt.storage.models import Project
from promptopt.wording import plural


def _open() -> Store:
    from promptopt.storage import open_store

    return open_store()


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", help="what the prompt is for, in a sentence")
    parser.add_argument(
        "--generator-model", help="model that writes the outputs (a litellm name, e.g. gpt-4o-mini)"
    )
    parser.add_argument(
        "--optimizer-model", help="model that proposes prompts and names preferences"
    )
    parser.add_argument(
        "--api-base", help="base URL of an OpenAI-compatible server (with openai/<model>)"
    )


def _template_of(args: argparse.Namespace) -> str | None:
    if args.template is not None and args.template_file is not None:
        raise ValidationError("Give either --template or --template-file, not both.")
    if args.template_file is not None:
        path = Path(args.template_file)
        if not path.is_file():
            raise ValidationError(f"No template file at {path}. Check the path.")
        return path.read_text(encoding="utf-8").rstrip("\n")
    return str(args.template) if args.template is not None else None


# -- projects create ----------------------------------------------------------------------------
def configure_projects_create(parser: argparse.ArgumentParser) -> None:
    from promptopt.projects import SAMPLES

    parser.add_argument("name", nargs="?", help="project name (not needed with --sample)")
    parser.add_argument("--template", help="the base prompt, with {input} where the input goes")
    parser.add_argument("--template-file", help="read the base prompt from this file")
    _model_options(parser)
    parser.add_argument("--inputs", help="import inputs from a .csv, .jsonl or .txt file")
    parser.add_argument("--column", help="CSV column or JSONL key of the inputs file")
    parser.add_argument(
        "--sample", choices=sorted(SAMPLES), help="open a sample project instead (ready to use)"
    )
    parser.add_argument("--json", action="store_true", help="print the project as JSON")


def run_projects_create(args: argparse.Namespace) -> int:
    from promptopt.projects import create_project, load_sample

    store = _open()
    if args.sample:
        project = load_sample(store, args.sample)
    else:
        template = _template_of(args)
        if not args.name or template is None:
            raise ValidationError(
                "Give a name and a base prompt: promptopt projects create NAME --template "
                "'Summarize: {input}' (or --template-file FILE, or --sample NAME)."
            )
        settings = {"api_base": args.api_base.strip()} if args.api_base else {}
        project = create_project(
            store,
            args.name,
            template,
            task=args.task or "",
            generator_model=args.generator_model or None,
            optimizer_model=args.optimizer_model or None,
            settings=settings,
        )
    if args.inputs:
        _import(store, project, args.inputs, args.column, None, allow_duplicates=False)
    _print_project(store, project, args.json)
    return 0


# -- projects show / set / list -----------------------------------------------------------------
def configure_projects_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project name or id")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run_projects_show(args: argparse.Namespace) -> int:
    from promptopt.projects import resolve_project

    store = _open()
    _print_project(store, resolve_project(store, args.project), args.json)
    return 0


def configure_projects_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project name or id")
    parser.add_argument("--name", help="rename the project")
    parser.add_argument(
        "--template", help="a new base prompt (joins the pool and becomes the project's prompt)"
    )
    parser.add_argument("--template-file", help="read the new base prompt from this file")
    _model_options(parser)
    parser.add_argument("--temperature", type=float, help="sampling temperature of outputs")
    parser.add_argument("--max-tokens", type=int, help="longest output, in tokens")
    parser.add_argument(
        "--stop",
        action="append",
        metavar="TEXT",
        help="end each output before this text (repeatable; --stop '' clears them)",
    )
    parser.add_argument("--json", action="store_true", help="print the project as JSON")
    parser.epilog = "An empty value (e.g. --api-base '') clears that setting."


def run_projects_set(args: argparse.Namespace) -> int:
    from promptopt.generation import validate_template
    from promptopt.projects import resolve_project

    store = _open()
    project = resolve_project(store, args.project)
    updates: dict[str, Any] = {}
    if args.name is not None:
        updates["name"] = args.name
    if args.task is not None:
        updates["task"] = args.task
    for key in ("generator_model", "optimizer_model"):
        value = getattr(args, key)
        if value is not None:
            updates[key] = value.strip() or None
    settings = dict(project.settings or {})
    if args.api_base is not None:
        settings["api_base"] = args.api_base.strip()
        if not settings["api_base"]:
            settings.pop("api_base")
    if args.temperature is not None:
        if not 0.0 <= args.temperature <= 2.0:
            raise ValidationError("--temperature must be between 0 and 2.")
        settings["temperature"] = args.temperature
    if args.max_tokens is not None:
        if args.max_tokens < 1:
            raise ValidationError("--max-tokens must be at least 1.")
        settings["max_tokens"] = args.max_tokens
    if args.stop is not None:
        stops = [text for text in args.stop if text]
        if stops:
            settings["stop"] = stops
        else:
            settings.pop("stop", None)
    if settings != (project.settings or {}):
        updates["settings"] = settings
    template = _template_of(args)
    if not updates and template is None:
        raise ValidationError("Nothing to change: give at least one option (see --help).")
    if template is not None and template != project.template:
        validate_template(template)
        # As in the app: the new base prompt joins the pool through the Compare engine (which
        # checks it and merges a near-duplicate) and becomes the project's prompt, so the votes
        # already cast for the old one keep their meaning.
        prompt = _compare_engine(store).add_candidate(project.id, template, origin="user")
        updates.update(template=template, prompt_id=prompt.id)
    if updates:
        project = store.projects.update(project.id, **updates)
    _print_project(store, project, args.json)
    return 0


def _compare_engine(store: Store) -> Any:
    import os

    from promptopt.compare.service import CompareService
    from promptopt.embeddings import create_embedder
    from promptopt.llm import create_client

    embedder = create_embedder(os.environ.get("PROMPTOPT_EMBEDDER", "default"))
    return CompareService(store, create_client(store), embedder)


def configure_projects_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")


def run_projects_list(args: argparse.Namespace) -> int:
    store = _open()
    projects = store.projects.list()
    if not projects:
        print(
            "No projects yet; create one with `promptopt projects create` or in the app "
            "(promptopt serve).",
            file=sys.stderr,
        )
    for p in projects:
        row = project_summary(store, p)
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(
                f"{p.id}\t{p.name}\t{plural(row['inputs'], 'input')}\t"
                f"{plural(row['votes'], 'vote')}\t{plural(row['edits'], 'edit')}"
            )
    return 0


def project_summary(store: Store, project: Project) -> dict[str, Any]:
    """One project with its counts. Votes are comparisons the user cast; the "edited beats
    original" comparison each edit also records is counted as that edit, not as a vote."""
    comparisons = store.comparisons.list(project.id)
    return {
        "id": project.id,
        "name": project.name,
        "inputs": len(store.inputs.list(project.id)),
        "votes": sum(1 for c in comparisons if c.source != "edit"),
        "edits": len(store.edits.list(project.id)),
    }


def _print_project(store: Store, project: Project, as_json: bool) -> None:
    settings = project.settings or {}
    doc = {
        **project_summary(store, project),
        "task": project.task,
        "template": project.template,
        "generator_model": project.generator_model,
        "optimizer_model": project.optimizer_model,
        "api_base": settings.get("api_base"),
        "temperature": settings.get("temperature"),
        "max_tokens": settings.get("max_tokens"),
        "stop": settings.get("stop"),
        "prompts": len(store.prompts.list(project.id)),
        "prompt_id": project.prompt_id,
    }
    if as_json:
        print(json.dumps(doc, ensure_ascii=False))
        return
    for key, value in doc.items():
        text = "" if value is None else str(value)
        if "\n" in text:
            text = "\n  " + text.replace("\n", "\n  ")
        print(f"{key}: {text}")


# -- inputs import / list -----------------------------------------------------------------------
def configure_inputs_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project name or id")
    parser.add_argument("file", help="a .csv, .jsonl or .txt file, or - to read standard input")
    parser.add_argument("--column", help="CSV column or JSONL key holding the input text")
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("csv", "jsonl", "txt"),
        help="the file's format (default: from its extension; txt for standard input)",
    )
    parser.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="import inputs the project already has (skipped and reported by default)",
    )


def run_inputs_import(args: argparse.Namespace) -> int:
    from promptopt.projects import resolve_project

    store = _open()
    project = resolve_project(store, args.project)
    _import(
        store, project, args.file, args.column, args.fmt, allow_duplicates=args.allow_duplicates
    )
    return 0


def _import(
    store: Store,
    project: Project,
    file: str,
    column: str | None,
    fmt: str | None,
    *,
    allow_duplicates: bool,
) -> None:
    from promptopt.inputs_io import KEPT, import_stream, parse_inputs_text
    from promptopt.projects import add_inputs

    duplicates = 0

    def store_batch(texts: list[str]) -> int:
        nonlocal duplicates
        added = add_inputs(
            store, project.id, texts, source=source, allow_duplicates=allow_duplicates
        )
        duplicates += len(added.duplicates)
        return len(added.ids)

    if file == "-":
        source = "stdin"
        result = parse_inputs_text(sys.stdin.read(), fmt or "txt", column)
        count = store_batch(result.texts)
    else:
        # Streamed: rows are stored in batches as they are read, never the whole file at once.
        source = Path(file).name
        count, result = import_stream(file, column, store_batch, fmt=fmt)
    print(f"imported {plural(count, 'input')} into {project.name!r}")
    if duplicates:
        print(
            f"skipped {plural(duplicates, 'input')} already in the project "
            "(--allow-duplicates imports them again)",
            file=sys.stderr,
        )
    for problem in result.problems:
        verb = "repaired" if problem.endswith(KEPT) else "skipped"
        print(f"{verb} {problem}", file=sys.stderr)
    if result.summary():
        print(result.summary(), file=sys.stderr)


def configure_inputs_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project name or id")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")


def run_inputs_list(args: argparse.Namespace) -> int:
    from promptopt.projects import resolve_project

    store = _open()
    project = resolve_project(store, args.project)
    for item in store.inputs.list(project.id):
        if args.json:
            row = {"id": item.id, "text": item.text, "source": item.source}
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(f"{item.id}\t{' '.join(item.text.split())[:100]}")
    return 0
