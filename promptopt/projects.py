"""Project-level services: create with a validated template, resolve by name or id, samples."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.generation import validate_template
from promptopt.paths import ASSETS
from promptopt.storage import NotFoundError, Store, ValidationError
from promptopt.storage.models import Project

SAMPLES_DIR = ASSETS / "samples"


def create_project(
    store: Store,
    name: str,
    template: str,
    task: str = "",
    generator_model: str | None = None,
    optimizer_model: str | None = None,
    inputs: Iterable[str] = (),
    settings: dict[str, Any] | None = None,
    examples: list[dict[str, str]] | None = None,
) -> Project:
    """A project with its base prompt in the pool (origin "base") and promoted, in one step."""
    validate_template(template)
    merged = dict(settings or {})
    if examples:
        merged["examples"] = examples
    with store.transaction():
        project = store.projects.create(
            name,
            template,
            task=task,
            generator_model=generator_model,
            optimizer_model=optimizer_model,
            settings=merged,
        )
        base = store.prompts.add(project.id, template, "base")
        project = store.projects.update(project.id, prompt_id=base.id)
        store.inputs.add_many(project.id, list(inputs), source="created")
    return project


@dataclass
class InputsAdded:
    """What ``add_inputs`` did: the new row ids, and the texts it left out as duplicates."""

    ids: list[int] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


class NewTexts:
    """Filters batches of input texts down to the ones a project does not have yet (nor that
    came earlier in the same import), remembering what it left out. One set of the project's
    texts, built once, serves a whole streamed import."""

    def __init__(self, store: Store, project_id: int) -> None:
        self.seen = {i.text.strip() for i in store.inputs.list(project_id)}
        self.duplicates: list[str] = []

    def __call__(self, texts: Iterable[str]) -> list[str]:
        fresh: list[str] = []
        for text in texts:
            key = text.strip()
            if key in self.seen:
                self.duplicates.append(text)
            else:
                self.seen.add(key)
                fresh.append(text)
        return fresh


def add_inputs(
    store: Store,
    project_id: int,
    texts: Iterable[str],
    *,
    source: str = "typed",
    allow_duplicates: bool = False,
) -> InputsAdded:
    """Add inputs in order; blank ones are dropped. A text the project already has (or that
    appears earlier in ``texts``) is left out and reported, unless ``allow_duplicates``: the
    same file imported twice must not double every input's weight in the rotation."""
    wanted = [str(t) for t in texts if t is not None and str(t).strip()]
    if allow_duplicates:
        return InputsAdded(store.inputs.add_many(project_id, wanted, source=source))
    new = NewTexts(store, project_id)
    fresh = new(wanted)
    return InputsAdded(store.inputs.add_many(project_id, fresh, source=source), new.duplicates)


def resolve_project(store: Store, name_or_id: str | int) -> Project:
    """By exact name first, then by numeric id; a miss lists the projects that exist."""
    text = str(name_or_id).strip()
    project = store.projects.find(text)
    if project is not None:
        return project
    if text.isdigit():
        try:
            return store.projects.get(int(text))
        except NotFoundError:
            pass
    names = ", ".join(repr(p.name) for p in store.projects.list()) or "none yet"
    raise NotFoundError(
        f"No project {text!r}. Projects: {names}. Create one with `promptopt projects create` "
        "or in the app."
    )


def _sample_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SAMPLES_DIR.glob("*.json"))}


def samples() -> dict[str, str]:
    """Sample id -> one-line description."""
    out: dict[str, str] = {}
    for key, path in _sample_files().items():
        data = json.loads(path.read_text(encoding="utf-8"))
        out[key] = f"{data['name']}: {data.get('description', '')}"
    return out


SAMPLES = samples()


def load_sample(store: Store, sample: str) -> Project:
    """Create the sample project (or open it when it already exists)."""
    files = _sample_files()
    if sample not in files:
        raise ValidationError(f"No sample {sample!r}; choose one of {', '.join(files)}.")
    data = json.loads(files[sample].read_text(encoding="utf-8"))
    existing = store.projects.find(data["name"])
    if existing is not None:
        return existing
    return create_project(
        store,
        data["name"],
        data["template"],
        task=data.get("task", ""),
        inputs=data.get("inputs", []),
        examples=data.get("examples") or None,
        settings={"source": data.get("source", "")},
    )
