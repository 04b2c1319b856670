"""The Python API: open a store, create or open a project, add inputs, run Compare and Edit
rounds from code, export, and load an export. ``import promptopt`` gives these names; see the
README's "Python API" for a tour.

A ``Studio`` holds one database and the parts that work on it (the LLM client and the
embedder, the real ones unless you pass others). Its methods take a project (a ``Project`` row,
a name or an id) and an annotator (the studio's ``annotator=`` unless given), and every vote
and edit is committed to SQLite before the method returns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptopt.projects import InputsAdded
from promptopt.storage import Store
from promptopt.storage.models import Comparison, Input, Project, Prompt

if TYPE_CHECKING:
    from promptopt.compare.service import BestReport, CompareService, Duel
    from promptopt.edit.service import Draft, EditResult, EditService
    from promptopt.embeddings.base import Embedder
    from promptopt.llm.client import LLMClient

ProjectRef = Project | str | int


@dataclass
class Pair:
    """Two prompts' outputs for one input, ready for a vote: ``output_a`` came from
    ``prompt_a``, ``output_b`` from ``prompt_b``."""

    duel: Duel
    input: str
    prompt_a: str
    prompt_b: str
    output_a: str
    output_b: str


@dataclass
class EditRound:
    """An output written for one input with the preferences learned so far; edit
    ``output`` and pass the result to ``Studio.edit``."""

    draft: Draft
    input: str
    output: str
    preferences: str


class Studio:
    """One promptopt database with the models that work on it."""

    def __init__(
        self,
        store: Store,
        *,
        annotator: str = "me",
        client: LLMClient | None = None,
        embedder: Embedder | None = None,
        seed: int = 0,
    ) -> None:
        self.store = store
        self.annotator = annotator
        self.seed = seed
        self._client = client
        self._embedder = embedder
        self._compare: CompareService | None = None
        self._edit: EditService | None = None

    # -- parts, made when first needed (the embedder takes seconds to load) --------------------
    @property
    def client(self) -> LLMClient:
        if self._client is None:
            from promptopt.llm import create_client

            self._client = create_client(self.store)
        return self._client

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from promptopt.embeddings import create_embedder

            self._embedder = create_embedder(os.environ.get("PROMPTOPT_EMBEDDER", "default"))
        return self._embedder

    @property
    def compare(self) -> CompareService:
        """The Compare engine (``promptopt.compare.CompareService``) for lower-level work."""
        if self._compare is None:
            from promptopt.compare.service import CompareService

            self._compare = CompareService(self.store, self.client, self.embedder, seed=self.seed)
        return self._compare

    @property
    def edits(self) -> EditService:
        """The Edit engine (``promptopt.edit.EditService``) for lower-level work."""
        if self._edit is None:
            from promptopt.edit.service import EditService

            self._edit = EditService(self.store, self.client, self.embedder)
        return self._edit

    # -- projects and inputs -------------------------------------------------------------------
    def create_project(
        self,
        name: str,
        template: str,
        *,
        task: str = "",
        inputs: list[str] | tuple[str, ...] = (),
        generator_model: str | None = None,
        optimizer_model: str | None = None,
        api_base: str | None = None,
    ) -> Project:
        """A new project whose base prompt ``template`` has ``{input}`` where an input goes."""
        from promptopt.projects import create_project

        settings = {"api_base": api_base} if api_base else {}
        return create_project(
            self.store,
            name,
            template,
            task=task,
            inputs=inputs,
            generator_model=generator_model,
            optimizer_model=optimizer_model,
            settings=settings,
        )

    def project(self, ref: ProjectRef) -> Project:
        """A project by its row, name or id (the row is read again, so it is current)."""
        from promptopt.projects import resolve_project

        return resolve_project(self.store, ref.id if isinstance(ref, Project) else ref)

    def projects(self) -> list[Project]:
        return self.store.projects.list()

    def open_sample(self, sample: str = "news-summaries") -> Project:
        """A sample project, created the first time (``promptopt.projects.SAMPLES`` lists them)."""
        from promptopt.projects import load_sample

        return load_sample(self.store, sample)

    def add_inputs(
        self, project: ProjectRef, texts: list[str], *, allow_duplicates: bool = False
    ) -> InputsAdded:
        """Add inputs; ones the project already has are skipped (``.duplicates``) unless
        ``allow_duplicates``."""
        from promptopt.projects import add_inputs

        found = self.project(project)
        return add_inputs(
            self.store, found.id, texts, source="api", allow_duplicates=allow_duplicates
        )

    def inputs(self, project: ProjectRef) -> list[Input]:
        return self.store.inputs.list(self.project(project).id)

    # -- Compare -------------------------------------------------------------------------------
    def add_prompt(self, project: ProjectRef, text: str) -> Prompt:
        """Add a candidate prompt (with ``{input}``); a near-duplicate returns the prompt
        already in the pool."""
        return self.compare.add_candidate(self.project(project).id, text, origin="user")

    def propose(
        self, project: ProjectRef, n: int = 4, *, annotator: str | None = None
    ) -> list[Prompt]:
        """Ask the optimizer model for ``n`` new candidate prompts, informed by the votes and
        the learned preferences so far."""
        return self.compare.propose(self.project(project).id, annotator or self.annotator, n=n)

    def prompts(self, project: ProjectRef) -> list[Prompt]:
        return self.store.prompts.list(self.project(project).id)

    def next_pair(self, project: ProjectRef, *, annotator: str | None = None) -> Pair:
        """The next two prompts to compare on one input, with both outputs written."""
        from promptopt.generation import GenerationSettings, generate_many

        found = self.project(project)
        duel = self.compare.next_duel(found.id, annotator or self.annotator)
        settings = GenerationSettings.from_project(found)
        jobs = [(duel.prompt_a.text, duel.input.text), (duel.prompt_b.text, duel.input.text)]
        outputs = [
            r.completion().text
            for r in generate_many(self.client, jobs, settings, project_id=found.id)
        ]
        duel.output_a, duel.output_b = outputs
        return Pair(duel, duel.input.text, duel.prompt_a.text, duel.prompt_b.text, *outputs)

    def vote(
        self, pair: Pair, verdict: str, *, comment: str = "", annotator: str | None = None
    ) -> Comparison:
        """Record a verdict on a pair: "a" or "b" (that output is better), "tie", "both_bad"
        or "skip"."""
        return self.compare.record_vote(pair.duel, verdict, annotator or self.annotator, comment)

    def best(self, project: ProjectRef, *, annotator: str | None = None) -> BestReport | None:
        """The best prompt so far with the engine's confidence, or None before any vote."""
        return self.compare.best(self.project(project).id, annotator or self.annotator)

    # -- Edit ----------------------------------------------------------------------------------
    def next_edit(
        self, project: ProjectRef, input_id: int | None = None, *, annotator: str | None = None
    ) -> EditRound:
        """An output for an input (the least edited one unless ``input_id``), written with the
        preferences learned from this annotator's similar past edits."""
        found = self.project(project)
        who = annotator or self.annotator
        if input_id is None:
            input_id = self._least_edited_input(found.id, who)
        draft = self.edits.prepare(found.id, who, input_id)
        output = self.edits.generate(draft).completion().text
        return EditRound(draft, draft.input.text, output, draft.preference)

    def edit(self, round_: EditRound, edited: str) -> EditResult:
        """Store the edited output and learn the preference behind it (an LLM call); passing
        the output unchanged accepts it."""
        who = round_.draft.annotator
        return self.edits.submit_and_learn(round_.draft, round_.output, edited, who)

    def _least_edited_input(self, project_id: int, annotator: str) -> int:
        from promptopt.storage import ValidationError

        inputs = self.store.inputs.list(project_id)
        if not inputs:
            raise ValidationError("The project has no inputs yet; add some with add_inputs().")
        counts: dict[int, int] = {}
        for e in self.store.edits.list(project_id, annotator):
            if e.input_id is not None:
                counts[e.input_id] = counts.get(e.input_id, 0) + 1
        return min(inputs, key=lambda i: (counts.get(i.id, 0), i.position or 0, i.id)).id

    # -- export --------------------------------------------------------------------------------
    def export(
        self,
        project: ProjectRef,
        fmt: str = "bundle",
        out: str | Path | None = None,
        *,
        annotator: str | None = None,
        model: str | None = None,
    ) -> str:
        """The export's text (formats: ``promptopt.export.FORMATS``); with ``out``, also
        written there (a file, or a folder to name the file in). ``annotator`` limits it to
        one person's feedback; by default everyone's."""
        from promptopt.export import export_project, write_export

        found = self.project(project)
        compare: Any = self._compare if annotator is not None else None
        filename, text = export_project(
            self.store, found.id, fmt, annotator, compare=compare, model=model
        )
        if out is not None:
            write_export(text, out, filename)
        return text

    def close(self) -> None:
        if self._edit is not None:
            self._edit.close()  # the memory indexes, so the next start loads them
        self.store.database.close()

    def __enter__(self) -> Studio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_studio(
    path: str | Path | None = None,
    *,
    annotator: str = "me",
    client: LLMClient | None = None,
    embedder: Embedder | None = None,
    seed: int = 0,
) -> Studio:
    """The database at ``path`` (default: ``promptopt db path``) with the default models, or
    the ``client`` and ``embedder`` you pass."""
    from promptopt.storage import open_store

    return Studio(
        open_store(path), annotator=annotator, client=client, embedder=embedder, seed=seed
    )
