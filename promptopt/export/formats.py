"""The export formats: one function per format from ``ExportData`` to file text.

Static formats (Markdown, OpenAI messages, ``llm`` template, promptfoo) cannot look preferences up
per input, so they carry the pinned and best-supported learned preferences in the system text;
the JSON bundle keeps every preference with its context vectors for the runtime to retrieve.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from promptopt import __version__
from promptopt.export.checks import promptfoo_asserts
from promptopt.export.data import ExportData
from promptopt.export.targets import (
    ExportModel,
    export_model,
    llm_model,
    openai_model,
    promptfoo_provider,
)
from promptopt.generation import PLACEHOLDER, build_messages, render
from promptopt.storage import NotFoundError, Store

PROMPTFOO_PROMPTS = 3

# Verdicts that say which output was better; ties, "both bad" and skips make no pair.
_DECISIVE = ("a", "b")


def static_messages(data: ExportData, input_text: str = PLACEHOLDER) -> list[dict[str, str]]:
    """The messages the best prompt sends, with the static preferences in the system message."""
    return build_messages(data.best.text, input_text, preference=data.static_preference_text())


def single_prompt(data: ExportData, template: str | None = None) -> str:
    """System text and prompt in one block, for tools that take a single prompt string."""
    messages = build_messages(
        template if template is not None else data.best.text,
        PLACEHOLDER,
        preference=data.static_preference_text(),
    )
    return "\n\n".join(m["content"] for m in messages)


# -- Markdown ---------------------------------------------------------------------------------
def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _cell(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.replace("|", "\\|")


def to_markdown(data: ExportData, store: Store) -> str:
    prompt = single_prompt(data)
    fence = _fence(prompt)
    who = f" by {data.annotator}" if data.annotator else ""
    lines = [
        f"# {data.project.name}",
        "",
        f"Learned with promptopt {__version__} from {data.votes} votes and {len(data.edits)} "
        f"edits{who}; exported {data.exported_at}. `{PLACEHOLDER}` marks where the input goes.",
        "",
        "## Prompt",
        "",
        f"{fence}text",
        prompt,
        fence,
        "",
    ]
    if data.global_preferences():
        lines += ["## Learned preferences", ""]
        for p in data.global_preferences():
            tag = "**pinned** " if p.pinned else "verified: "
            support = p.evidence.get("text") or f"from {p.count} round(s)"
            lines.append(f"- {tag}{_cell(p.text, 300)} ({_cell(str(support), 120)})")
        lines.append("")
    if data.leaderboard:
        lines += ["## Leaderboard", "", "| Rank | Prompt | Win rate | Votes |", "|---|---|---|---|"]
        for rank, row in enumerate(data.leaderboard, start=1):
            rate = "–" if row.win_rate is None else f"{row.win_rate:.0%}"
            lines.append(f"| {rank} | {_cell(row.prompt.text)} | {rate} | {row.votes} |")
        lines.append("")
    return "\n".join(lines)


def read_markdown_prompt(text: str) -> str:
    """The prompt block of a Markdown export (for round trips and for scripts)."""
    match = re.search(r"^## Prompt\n\n(`{3,})text\n(.*?)\n\1$", text, re.DOTALL | re.MULTILINE)
    if match is None:
        raise ValueError("No prompt block found; is this a promptopt Markdown export?")
    return match.group(2)


# -- OpenAI chat messages ---------------------------------------------------------------------
def target_model(data: ExportData) -> ExportModel:
    """The model the OpenAI, llm and promptfoo exports are written for."""
    from promptopt.export.bundle import public_url
    from promptopt.generation import GenerationSettings

    settings = GenerationSettings.from_project(data.project)
    return export_model(data.model_override, settings.model, public_url(settings.api_base))


def to_openai(data: ExportData, store: Store) -> str:
    """A chat-completions request body; replace ``{input}`` in the user message and send it."""
    from promptopt.generation import GenerationSettings

    settings = GenerationSettings.from_project(data.project)
    body: dict[str, Any] = {
        "model": openai_model(target_model(data)),
        "messages": static_messages(data),
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
    }
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


# -- llm (simonw/llm) template ----------------------------------------------------------------
class _BlockDumper(yaml.SafeDumper):
    pass


def _str_block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_block)


def dump_yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)


def llm_template_text(template: str) -> str:
    """A promptopt template as an ``llm`` template string: ``$`` escaped, ``{input}`` -> $input.

    ``llm`` substitutes with ``string.Template``; ``${input}`` is used where a letter, digit or
    underscore follows, so that ``{input}s`` does not become the variable ``$inputs``.
    """
    parts = template.replace("$", "$$").split(PLACEHOLDER)
    out = parts[0]
    for part in parts[1:]:
        out += ("${input}" if re.match(r"\w", part) else "$input") + part
    return out


def to_llm(data: ExportData, store: Store) -> str:
    from promptopt.generation import GenerationSettings

    settings = GenerationSettings.from_project(data.project)
    messages = static_messages(data)
    model_id, option_names, note = llm_model(target_model(data))
    doc: dict[str, Any] = {"model": model_id}
    system = [m["content"] for m in messages if m["role"] == "system"]
    if system:
        doc["system"] = system[0].replace("$", "$$")
    doc["prompt"] = llm_template_text(data.best.text)
    values = {"temperature": settings.temperature, "max_tokens": settings.max_tokens}
    if option_names:
        doc["options"] = {name: values[ours] for name, ours in option_names.items()}
    header = (
        f"# promptopt {__version__}: learned prompt of {data.project.name!r}, "
        f"exported {data.exported_at}.\n"
        "# Save as ~/.config/io.datasette.llm/templates/NAME.yaml (see `llm templates path`), "
        "then: llm -t NAME 'your input'\n"
    )
    if note:
        header += f"# Model {model_id}: {note}.\n"
    return header + dump_yaml(doc)


# -- promptfoo --------------------------------------------------------------------------------
_NUNJUCKS = re.compile(r"\{[{%#]|[}%#]\}")


def nunjucks_text(template: str) -> str:
    """A promptopt template as a promptfoo (Nunjucks) prompt: ``{input}`` -> ``{{input}}``,
    literal text that Nunjucks would read as a tag wrapped in ``{% raw %}``."""

    return "{{input}}".join(nunjucks_literal(part) for part in template.split(PLACEHOLDER))


def nunjucks_literal(text: str) -> str:
    """Text that Nunjucks renders as itself."""
    return f"{{% raw %}}{text}{{% endraw %}}" if _NUNJUCKS.search(text) else text


def promptfoo_messages(data: ExportData, template: str) -> str:
    """One promptfoo prompt in its chat format: a JSON list of messages, the preferences in the
    system message. promptfoo renders the variables inside each JSON string (and escapes them),
    so inputs with quotes or new lines stay valid JSON."""
    messages = build_messages(template, PLACEHOLDER, preference=data.static_preference_text())
    chat = [
        {
            "role": m["role"],
            "content": nunjucks_text(m["content"])
            if m["role"] == "user"
            else nunjucks_literal(m["content"]),
        }
        for m in messages
    ]
    return json.dumps(chat, ensure_ascii=False, indent=2)


def to_promptfoo(data: ExportData, store: Store) -> str:
    from promptopt.generation import GenerationSettings

    settings = GenerationSettings.from_project(data.project)
    chosen = [data.best]
    for row in data.leaderboard:
        if len(chosen) >= PROMPTFOO_PROMPTS:
            break
        if row.prompt.text != data.best.text and all(row.prompt.text != p.text for p in chosen):
            chosen.append(row.prompt)
    prompts = [
        {
            "label": ("best" if i == 0 else f"runner-up {i}")
            + (f" (prompt {p.id})" if p.id else ""),
            "raw": promptfoo_messages(data, p.text),
        }
        for i, p in enumerate(chosen)
    ]
    model = target_model(data)
    provider, note = promptfoo_provider(model)
    config: dict[str, Any] = {
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
    }
    if model.api_base and provider.startswith("openai:"):
        config["apiBaseUrl"] = model.api_base  # the address only: credentials never leave
    doc: dict[str, Any] = {
        "description": f"promptopt export of {data.project.name}",
        "prompts": prompts,
        "providers": [{"id": provider, "config": config}],
        "tests": [{"vars": {"input": i.text}} for i in store.inputs.list(data.project.id)],
    }
    checks = promptfoo_asserts(data.global_preferences())
    if checks:  # the observable preferences, checked on every output
        doc["defaultTest"] = {"assert": checks}
    header = (
        f"# promptopt {__version__}: top prompts of {data.project.name!r} and its inputs, "
        f"exported {data.exported_at}. Run: promptfoo eval -c THIS_FILE\n"
    )
    if note:
        header += f"# Provider: {note}\n"
    return header + dump_yaml(doc)


# -- preference pairs -------------------------------------------------------------------------
def preference_pairs(data: ExportData, store: Store) -> Iterator[dict[str, str]]:
    """(prompt, chosen, rejected) from decisive votes and from edits (edited beats original).

    ``prompt`` is the exported best prompt rendered with the input, so every pair trains the
    same instruction; a vote's outputs came from two different prompts and an edit's from one.
    """
    inputs = _Lookup(store.inputs.get)
    edit_comparisons = {e.comparison_id for e in data.edits if e.comparison_id is not None}
    for c in data.comparisons:
        if c.verdict not in _DECISIVE or c.source == "edit" or c.id in edit_comparisons:
            continue
        text = inputs.text(c.input_id)
        if text is None or not c.output_a or not c.output_b or c.output_a == c.output_b:
            continue
        chosen, rejected = (
            (c.output_a, c.output_b) if c.verdict == "a" else (c.output_b, c.output_a)
        )
        yield {"prompt": render(data.best.text, text), "chosen": chosen, "rejected": rejected}
    for e in data.edits:
        text = inputs.text(e.input_id)
        if text is None or e.edited.strip() == e.output.strip():
            continue
        yield {"prompt": render(data.best.text, text), "chosen": e.edited, "rejected": e.output}


def to_pairs(data: ExportData, store: Store) -> str:
    return "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in preference_pairs(data, store))


# -- votes (every comparison and edit) --------------------------------------------------------
# One row per feedback event: a vote, or an edit (whose own "edited beats original" comparison
# is that edit, not a second event). ``id`` is unique across kinds ("vote-12", "edit-3"); the
# other id columns are integers, blank (CSV) or null (JSONL) where they do not apply.
VOTE_COLUMNS = (
    "id",
    "kind",
    "created_at",
    "annotator",
    "input_id",
    "input",
    "comparison_id",
    "verdict",
    "prompt_a_id",
    "prompt_a",
    "prompt_b_id",
    "prompt_b",
    "output_a",
    "output_b",
    "left",
    "comment",
    "source",
    "edit_id",
    "prompt_id",
    "prompt",
    "output",
    "edited",
    "word_distance",
    "char_distance",
    "applied_preference",
    "inferred_preference",
    "status",
)


class _Lookup:
    """Row text by id, each row read once, a missing row as None (deleted inputs/prompts)."""

    def __init__(self, getter: Callable[[int], Any]) -> None:
        self.getter = getter
        self.cache: dict[int, str | None] = {}

    def text(self, row_id: int | None) -> str | None:
        if row_id is None:
            return None
        if row_id not in self.cache:
            try:
                self.cache[row_id] = self.getter(row_id).text
            except NotFoundError:
                self.cache[row_id] = None
        return self.cache[row_id]


def vote_rows(data: ExportData, store: Store) -> list[dict[str, Any]]:
    inputs, prompts = _Lookup(store.inputs.get), _Lookup(store.prompts.get)
    of_edits = {e.comparison_id for e in data.edits if e.comparison_id is not None}
    rows: list[dict[str, Any]] = []
    for c in data.comparisons:
        if c.id in of_edits:
            continue  # the edit's own row below stands for it
        rows.append(
            {
                "id": f"vote-{c.id}",
                "kind": "vote",
                "created_at": c.created_at,
                "annotator": c.annotator,
                "input_id": c.input_id,
                "input": inputs.text(c.input_id),
                "comparison_id": c.id,
                "verdict": c.verdict,
                "prompt_a_id": c.prompt_a_id,
                "prompt_a": prompts.text(c.prompt_a_id),
                "prompt_b_id": c.prompt_b_id,
                "prompt_b": prompts.text(c.prompt_b_id),
                "output_a": c.output_a,
                "output_b": c.output_b,
                "left": c.left,
                "comment": c.comment,
                "source": c.source,
            }
        )
    for e in data.edits:
        rows.append(
            {
                "id": f"edit-{e.id}",
                "kind": "edit",
                "created_at": e.created_at,
                "annotator": e.annotator,
                "input_id": e.input_id,
                "input": inputs.text(e.input_id),
                "comparison_id": e.comparison_id,
                "source": "edit",
                "edit_id": e.id,
                "prompt_id": e.prompt_id,
                "prompt": prompts.text(e.prompt_id),
                "output": e.output,
                "edited": e.edited,
                "word_distance": e.word_distance,
                "char_distance": e.char_distance,
                "applied_preference": e.applied_preference,
                "inferred_preference": e.inferred_preference,
                "status": e.status,
            }
        )
    rows.sort(key=lambda r: (str(r["created_at"] or ""), r["kind"], r["id"]))
    return [{col: _integer_ids(col, row.get(col)) for col in VOTE_COLUMNS} for row in rows]


def _integer_ids(column: str, value: Any) -> Any:
    # SQLite may hand back a REAL for an id written by another tool; ids are whole numbers.
    if column.endswith("_id") and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A cell that starts with one of these is read as a formula by Excel, LibreOffice and Google
# Sheets (tab and carriage return as well: some import paths strip them and then see the rest).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading ``'`` (the OWASP
    convention: the spreadsheet shows the text, and the quote marks it as neutralised)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_votes_csv(data: ExportData, store: Store) -> str:
    buffer = io.StringIO()
    # CRLF as RFC 4180 says: the writer quotes a cell only when it holds a character of the
    # line terminator, so with "\n" alone a cell holding a bare "\r" broke every reader.
    writer = csv.DictWriter(buffer, fieldnames=list(VOTE_COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    for row in vote_rows(data, store):
        writer.writerow({k: "" if v is None else spreadsheet_safe(v) for k, v in row.items()})
    return buffer.getvalue()


def to_votes_jsonl(data: ExportData, store: Store) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in vote_rows(data, store))
