"""The application layer: what the screens do, in terms of the engines and the store.

The UI calls a ``Workspace`` and nothing below it. The workspace owns projects and inputs, the
candidate pool, the pair pipeline (``workspace.pairs``), the vote (one call: record, refit once,
return the next pair, the counter and the best), the next-input policy of the Edit screen, edits
stored at once and learned from in the background, ownership checks (a preference or a call log
entry is only reachable from its own project and annotator), exports and the call log.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.compare.operators import OPERATORS as MODEL_FREE_OPERATORS
from promptopt.compare.service import BestReport, CompareService, Duel, LeaderboardRow
from promptopt.edit.service import Draft, EditResult, EditService, ProfileEntry
from promptopt.embeddings import Embedder
from promptopt.generation import GenerationSettings, validate_template
from promptopt.inputs_io import (
    PREVIEW_ROWS,
    ParseResult,
    guess_format,
    import_stream,
    parse_inputs_file,
)
from promptopt.llm import LLMClient, StreamingResponse, default_model
from promptopt.projects import (
    SAMPLES,
    InputsAdded,
    NewTexts,
    add_inputs,
    create_project,
    load_sample,
)
from promptopt.storage import NotFoundError, Store, ValidationError
from promptopt.storage.models import Input, LLMCall, Preference, Project, Prompt, Rejection
from promptopt.workspace.errors import NoProject, describe_error
from promptopt.workspace.learning import BackgroundLearner, with_observed
from promptopt.workspace.pairs import PairPipeline, PendingPair
from promptopt.workspace.sides import engine_verdict

log = logging.getLogger("promptopt.workspace")

IMPORT_CHUNK = 200
IMPORT_BATCH = 5000  # rows per transaction when streaming a file in


@dataclass
class VoteOutcome:
    """Everything the Compare screen shows after a vote."""

    pending: PendingPair  # the next pair (made ahead when it was reserved) and its outputs
    votes: int  # this annotator's votes on the project
    best: BestReport | None
    reserved: bool = True  # the pair after the next one is already being made


@dataclass
class FileImport:
    """What an uploaded file did: inputs added, inputs the project already had (left out), and
    the report of the bad rows."""

    added: int
    already_there: int
    report: ParseResult


@dataclass
class ProjectForm:
    name: str
    task: str
    template: str
    generator_model: str | None
    optimizer_model: str | None
    api_base: str | None


class Workspace:
    """Thread-safe; holds services, never one user's screen state."""

    def __init__(
        self,
        store: Store,
        client: LLMClient,
        embedder: Embedder,
        *,
        seed: int = 0,
        export_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.embedder = embedder
        self.seed = seed
        self.compare = CompareService(store, client, embedder, seed=seed)
        self.edit = EditService(store, client, embedder)
        self.pairs = PairPipeline(self.compare, client, self.generation_settings, describe_error)
        # Projects whose first pair was prepared with a seeded pool: the model's proposals for
        # them start once that pair is written (or when Compare opens, if it was stopped).
        self._owed: set[tuple[int, str]] = set()
        self._owed_lock = threading.Lock()
        self.learner = BackgroundLearner(self.edit.learn)
        self._export_dir = export_dir
        self._export_lock = threading.Lock()

    # -- projects -------------------------------------------------------------------------------
    def projects(self) -> list[Project]:
        return self.store.projects.list()

    def project(self, project_id: int | None) -> Project:
        if project_id is None:
            raise NoProject("Open or create a project first (Project tab).")
        try:
            return self.store.projects.get(project_id)
        except NotFoundError as exc:
            raise NoProject("This project no longer exists; open another one.") from exc

    @staticmethod
    def samples() -> dict[str, str]:
        return dict(SAMPLES)

    @staticmethod
    def default_model() -> str:
        return default_model()

    def generation_settings(self, project_id: int) -> GenerationSettings:
        return GenerationSettings.from_project(self.project(project_id))

    def open_sample(self, key: str) -> Project:
        project = load_sample(self.store, key)
        self.embed_inputs_later(project.id)
        return project

    def create_project(self, form: ProjectForm) -> Project:
        return create_project(
            self.store,
            form.name,
            form.template,
            task=form.task,
            generator_model=form.generator_model,
            optimizer_model=form.optimizer_model,
            settings={"api_base": form.api_base} if form.api_base else {},
        )

    def save_project(self, project_id: int, form: ProjectForm) -> tuple[Project, bool]:
        """Save the form; returns the project and whether the candidate pool changed (a new
        base prompt joins the pool as a candidate and becomes the project's prompt)."""
        project = self.project(project_id)
        validate_template(form.template)
        settings = dict(project.settings or {})
        if form.api_base:
            settings["api_base"] = form.api_base
        else:
            settings.pop("api_base", None)
        updates: dict[str, Any] = {
            "name": form.name,
            "task": form.task,
            "generator_model": form.generator_model,
            "optimizer_model": form.optimizer_model,
            "settings": settings,
        }
        pool_changed = form.template != project.template
        if pool_changed:
            prompt = self.compare.add_candidate(project.id, form.template, origin="user")
            updates.update(template=form.template, prompt_id=prompt.id)
        return self.store.projects.update(project.id, **updates), pool_changed

    def ensure_pool(self, project_id: int) -> list[Prompt]:
        return self.compare.ensure_pool(project_id)

    def deletion_summary(self, project_id: int) -> tuple[Project, int, int]:
        """(project, votes, edits): what deleting it would remove."""
        project = self.project(project_id)
        votes = len(self.store.comparisons.list(project.id, source="vote"))
        return project, votes, len(self.store.edits.list(project.id))

    def delete_project(self, project_id: int) -> Project:
        project = self.project(project_id)
        self.store.projects.delete(project.id)
        return project

    # -- inputs ---------------------------------------------------------------------------------
    def inputs(self, project_id: int) -> list[Input]:
        return self.store.inputs.list(project_id)

    def add_inputs(self, project_id: int, texts: list[str], source: str = "typed") -> InputsAdded:
        """Typed or pasted inputs; ones the project already has are left out and reported."""
        self.project(project_id)
        if not texts:
            raise ValidationError("Type or paste at least one input first.")
        added = add_inputs(self.store, project_id, texts, source=source)
        if added.ids:
            self.compare.inputs_changed(project_id)
            self.embed_inputs_later(project_id)
        return added

    @staticmethod
    def parse_inputs(path: str, column: str | None) -> tuple[ParseResult, str]:
        """Preview an uploaded CSV/JSONL/TXT file: its first good rows, how many there are, the
        bad rows with their line numbers, the columns. Streams: any size, bounded memory."""
        fmt = guess_format(path)
        return parse_inputs_file(path, column or None, fmt, preview=PREVIEW_ROWS), fmt

    def import_file(
        self,
        project_id: int,
        path: str,
        column: str | None,
        source: str,
        progress: Callable[[float, str], None] | None = None,
    ) -> FileImport:
        """Store a file's good rows as they are read (batches of IMPORT_BATCH), never the whole
        file in memory, leaving out the inputs the project already has; returns how many were
        added, how many were already there, and the report of the bad rows."""
        self.project(project_id)
        new = NewTexts(self.store, project_id)
        added, report = import_stream(
            path,
            column or None,
            lambda texts: len(self.store.inputs.add_many(project_id, new(texts), source=source)),
            batch=IMPORT_BATCH,
            progress=progress,
        )
        if not added and not new.duplicates:
            raise ValidationError(
                "The file has no good rows"
                + (
                    f" ({report.problem_count} bad ones: {report.problems[0]})"
                    if report.problems
                    else ""
                )
                + ". Fix it and upload it again."
            )
        if added:
            self.compare.inputs_changed(project_id)
            self.embed_inputs_later(project_id)
        return FileImport(added, len(new.duplicates), report)

    def import_inputs(
        self,
        project_id: int,
        texts: list[str],
        source: str,
        progress: Callable[[float, str], None] | None = None,
    ) -> int:
        self.project(project_id)
        if not texts:
            raise ValidationError("Upload a file with at least one good row first.")
        added = 0
        for start in range(0, len(texts), IMPORT_CHUNK):
            if progress is not None:
                progress(start / len(texts), f"Importing inputs {start}/{len(texts)}")
            chunk = texts[start : start + IMPORT_CHUNK]
            added += len(self.store.inputs.add_many(project_id, chunk, source=source))
        self.compare.inputs_changed(project_id)
        self.embed_inputs_later(project_id)
        return added

    def embed_inputs_later(self, project_id: int) -> None:
        """Embed new inputs in the background so the Edit rounds that use them only retrieve.
        A cache: if it fails, the round embeds its input itself, so nothing is lost."""

        def work() -> None:
            try:
                self.edit.embed_inputs(project_id)
            except Exception:
                log.warning("embedding inputs of project %s ahead of time failed", project_id)

        threading.Thread(target=work, daemon=True, name="promptopt-embed-inputs").start()

    # -- candidates -----------------------------------------------------------------------------
    def leaderboard(self, project_id: int, annotator: str) -> list[LeaderboardRow]:
        return self.compare.leaderboard(project_id, annotator)

    def best(self, project_id: int, annotator: str) -> BestReport | None:
        return self.compare.best(project_id, annotator)

    def utility_history(self, project_id: int, annotator: str) -> list[tuple[int, float]]:
        return self.compare.utility_history(project_id, annotator)

    def add_candidate(self, project_id: int, text: str) -> Prompt:
        return self.compare.add_candidate(self.project(project_id).id, text, origin="user")

    def propose(
        self,
        project_id: int,
        annotator: str,
        n: int,
        progress: Callable[[float, str], None] | None = None,
    ) -> list[Prompt]:
        return self.compare.propose(self.project(project_id).id, annotator, n=n, progress=progress)

    def promote(self, project_id: int, prompt_id: int | None) -> Prompt:
        """Make a candidate the project's prompt (Edit and Export use it)."""
        project = self.project(project_id)
        if not prompt_id or prompt_id < 1:  # an empty number box reads as 0
            raise ValidationError("Click a row of the leaderboard (or type a prompt id) first.")
        prompt = self.store.prompts.get(int(prompt_id))
        if prompt.project_id != project.id:
            raise ValidationError(f"Prompt #{int(prompt_id)} belongs to another project.")
        self.store.projects.update(project.id, prompt_id=prompt.id)
        return prompt

    # -- comparing ------------------------------------------------------------------------------
    def compare_problem(self, project_id: int | None) -> str | None:
        """Why comparing cannot start yet, or None."""
        try:
            project = self.project(project_id)
            self.compare.ensure_pool(project.id)
        except Exception as exc:
            return describe_error(exc)
        if not self.store.inputs.list(project.id):
            return "This project has no inputs yet; add some in the Project tab."
        return None

    def seed_pool(self, project_id: int, annotator: str, more: int = 2) -> list[Prompt]:
        """A new project has only its base prompt. The first candidate comes from an operator
        that needs no model (a directive or a phrase edit of the base, validated like any
        candidate), so the first pair (base vs it) starts at once, whatever the model; ``more``
        are written in the background and join the duels from the next vote on. Only when no
        operator applies does the first pair wait for the model to write one."""
        project = self.project(project_id)
        made: list[Prompt] = []
        for n in (2, 4):  # an operator's draft may be refused (too short, off-task): ask more
            made = made or self.compare.propose(
                project.id, annotator, n=n, operators=MODEL_FREE_OPERATORS
            )
        if not made:
            made = self.compare.propose(project.id, annotator, n=1)
        if not made:
            raise ValidationError(
                "No candidate prompt passed the checks, so there is nothing to compare yet. "
                "Add one yourself in Prompts, or choose a stronger optimizer model in Project."
            )
        if more > 0:
            self.propose_later(project_id, annotator, more)
        return made

    def propose_later(self, project_id: int, annotator: str, n: int = 2) -> None:
        """The model writes ``n`` more candidates in the background; they join the duels from
        the next vote on."""

        def work() -> None:
            try:
                self.compare.propose(project_id, annotator, n=n, background=True)
            except Exception:  # the pool still has two prompts; Prompts > Propose retries
                log.warning("proposing more candidates for project %s failed", project_id)

        threading.Thread(target=work, daemon=True, name="promptopt-propose").start()

    def pool_size(self, project_id: int) -> int:
        return len(self.compare.ensure_pool(project_id))

    def vote_count(self, project_id: int, annotator: str) -> int:
        return self.compare.vote_count(project_id, annotator)

    def start_pair(self, session_id: str, project_id: int, annotator: str) -> PendingPair:
        """The pair to show when the screen opens (the engine's current one)."""
        prepared = self.pairs.first(session_id)
        pending = self.pairs.show(session_id, project_id, annotator)
        if pending is not prepared:  # the head start was stopped: its proposals are still owed
            self._propose_owed(project_id, annotator)
        return pending

    def prepare_first_pair(self, session_id: str, project_id: int, annotator: str) -> bool:
        """The project was just opened: start its first pair now (seeding the pool first when
        it holds only the base prompt), as background work that Compare promotes when it opens.
        False when the project cannot be compared yet (no inputs: the screen says why)."""
        if self.compare_problem(project_id) is not None:
            return False

        def seed() -> None:
            if self.pool_size(project_id) < 2:
                self.seed_pool(project_id, annotator, more=0)
                with self._owed_lock:
                    self._owed.add((project_id, annotator))

        made: list[PendingPair] = []

        def after() -> None:
            # Only now: written alongside, the proposals would slow the pair the user awaits;
            # and not when the user went elsewhere (Edit's own work goes first): Compare owes them.
            if not (made and made[0].cancelled.is_set()):
                self._propose_owed(project_id, annotator)

        made.append(self.pairs.prepare(session_id, project_id, annotator, before=seed, after=after))
        return True

    def _propose_owed(self, project_id: int, annotator: str) -> None:
        with self._owed_lock:
            owed = (project_id, annotator) in self._owed
            self._owed.discard((project_id, annotator))
        if owed:
            self.propose_later(project_id, annotator)

    def first_pair_on_its_way(self, session_id: str, project_id: int, annotator: str) -> bool:
        """Whether ``prepare_first_pair`` is making this project's first pair for the session."""
        first = self.pairs.first(session_id)
        return (
            first is not None
            and (first.project_id, first.annotator) == (project_id, annotator)
            and first.usable()
        )

    def cut_pair(self, session_id: str) -> str | None:
        """Stop both outputs of the pair on screen, keeping what was written (None), or say why
        not."""
        return self.pairs.cut_short(session_id)

    def retry_pair(self, session_id: str, duel: Duel, annotator: str) -> PendingPair:
        return self.pairs.regenerate(session_id, duel, annotator)

    def reserve_after(self, session_id: str, duel: Duel, annotator: str) -> None:
        """Start making the pair that follows ``duel`` (on screen, complete) while it is read."""
        if self.pairs.paused(session_id):
            return
        follow = self.compare.next_duel(duel.project_id, annotator, after=duel)
        self.pairs.reserve(session_id, follow, annotator)

    def vote(
        self, session_id: str, duel: Duel, screen: str, annotator: str, comment: str = ""
    ) -> VoteOutcome:
        """One trip: record the verdict (committed first), refit once, and return the next pair
        (made ahead while the user read) with the counter and the best prompt; the pair after
        it is reserved from the same fit and starts generating."""
        result = self.compare.vote(
            duel, engine_verdict(screen, duel.left), annotator, comment=comment or ""
        )
        if result.next is None:  # the refit failed or the pool shrank: the engine starts over
            pending = self.pairs.show(session_id, duel.project_id, annotator)
            votes = self.vote_count(duel.project_id, annotator)
            return VoteOutcome(pending, votes, None, reserved=False)
        pending = self.pairs.show(session_id, duel.project_id, annotator, result.next)
        if result.reserved is not None:
            self.pairs.reserve(session_id, result.reserved, annotator)
        return VoteOutcome(pending, result.votes, result.best)

    def resume_compare(self, session_id: str, duel: Duel, annotator: str) -> None:
        """The session came back to the pair on screen: make the pair after it again."""
        self.pairs.resume(session_id)
        try:
            self.reserve_after(session_id, duel, annotator)
        except Exception:  # only the head start is lost; the vote makes the pair itself
            log.warning("reserving after %s failed", duel.id, exc_info=True)

    def leave_compare(self, session_id: str) -> None:
        """The session left the Compare screen: stop generating ahead for it."""
        self.pairs.pause(session_id)

    def forget_pairs(self, session_id: str) -> None:
        """The project, the annotator or the pool changed: pairs made ahead are stale."""
        self.pairs.discard(session_id)

    def end_session(self, session_id: str) -> None:
        self.pairs.drop(session_id)

    # -- editing --------------------------------------------------------------------------------
    def next_input_id(self, project_id: int, annotator: str, rounds: int = 0) -> int | None:
        """The first input this annotator has not edited yet; after all of them, start again."""
        inputs = self.store.inputs.list(project_id)
        if not inputs:
            return None
        done = {e.input_id for e in self.store.edits.list(project_id, annotator)}
        for item in inputs:
            if item.id not in done:
                return item.id
        return inputs[rounds % len(inputs)].id

    def prepare(self, project_id: int, annotator: str, input_id: int) -> Draft:
        return self.edit.prepare(self.project(project_id).id, annotator, int(input_id))

    def generate(self, draft: Draft) -> StreamingResponse:
        return self.edit.generate(draft)

    def generate_drafts(self, draft: Draft) -> list[StreamingResponse]:
        """One output, or two in one batch when observed preferences wait for verification;
        stream the first, read the rest, then ``choose``."""
        return self.edit.generate_drafts(draft)

    def choose(self, draft: Draft, texts: list[str]) -> str:
        """The draft to show; ``draft.choice`` says which and why."""
        return self.edit.choose(draft, texts)

    def submit_edit(
        self, draft: Draft, output: str, edited: str | None, annotator: str
    ) -> EditResult:
        """Store the edit (or the acceptance) and return at once; a change is learned from in
        the background (``wait_learned``)."""
        if edited is None or edited == output:
            return self.edit.accept(draft, output, annotator)
        result = self.edit.submit(draft, output, edited, annotator)
        if result.status == "pending":
            result = with_observed(self.edit, result)  # before the slow half is scheduled
            self.learner.schedule(result.edit.id)
        return result

    def wait_learned(
        self, edit_id: int, annotator: str, timeout: float | None = None
    ) -> EditResult | None:
        """The edit once learned from (status "done", or "pending" with an error), or None
        while the inference still runs after ``timeout`` seconds."""
        if not self.learner.wait(edit_id, timeout):
            return None
        result = self.edit.result(edit_id)
        if result.edit.annotator != annotator:
            raise ValidationError("That edit belongs to another annotator.")
        return result

    def retry_pending(self, project_id: int, annotator: str) -> int:
        return self.edit.retry_pending(self.project(project_id).id, annotator)

    def effort_curve(self, project_id: int, annotator: str) -> list[int]:
        return self.edit.effort_curve(project_id, annotator)

    # -- profile --------------------------------------------------------------------------------
    def profile(self, project_id: int, annotator: str, deleted: bool = False) -> list[ProfileEntry]:
        return self.edit.profile(
            self.project(project_id).id, annotator, include_deleted=bool(deleted)
        )

    def add_preference(self, project_id: int, annotator: str, text: str) -> Preference:
        if not text or not text.strip():
            raise ValidationError("Type the preference first, e.g. 'short sentences'.")
        return self.edit.add_preference(
            self.project(project_id).id, annotator, text.strip(), pinned=True
        )

    def update_preference(
        self,
        project_id: int,
        annotator: str,
        pref_id: int | None,
        *,
        text: str | None = None,
        pinned: bool | None = None,
        deleted: bool | None = None,
        fix: bool | None = None,
    ) -> Preference:
        if pref_id is None:
            raise ValidationError("Click a preference in the table first.")
        return self.edit.update_preference(
            int(pref_id),
            project_id=self.project(project_id).id,
            annotator=annotator,
            text=text,
            pinned=pinned,
            deleted=deleted,
            fix=fix,
        )

    # -- exports and the call log ---------------------------------------------------------------
    @staticmethod
    def export_formats() -> dict[str, tuple[str, str]]:
        from promptopt.export import FORMATS

        return dict(FORMATS)

    def export(self, project_id: int, fmt: str, annotator: str | None) -> tuple[Path, str]:
        """Write one export to its own folder (two users exporting never collide)."""
        from promptopt.export import export_project

        project = self.project(project_id)
        name, content = export_project(self.store, project.id, fmt, annotator, compare=self.compare)
        folder = self.export_dir() / uuid.uuid4().hex
        folder.mkdir(parents=True)
        path = folder / name
        path.write_text(content, encoding="utf-8")
        return path, content

    def export_dir(self) -> Path:
        with self._export_lock:
            if self._export_dir is None:
                import tempfile

                self._export_dir = Path(tempfile.mkdtemp(prefix="promptopt-"))
            return self._export_dir

    def calls(self, project_id: int, limit: int = 500) -> list[LLMCall]:
        return self.store.calls.list(self.project(project_id).id, limit=limit)

    def rejections(self, project_id: int, limit: int = 200) -> list[Rejection]:
        """Candidate prompts the validator refused, newest first, with their reasons."""
        return self.store.rejections.list(self.project(project_id).id, limit=limit)

    def call(self, project_id: int, call_id: int) -> LLMCall:
        """One call of this project (a call of another project is not shown)."""
        call = self.store.calls.get(int(call_id))
        if call.project_id != project_id:
            raise ValidationError(f"Call #{int(call_id)} belongs to another project.")
        return call
