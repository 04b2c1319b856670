"""What the app learns from an edit, and what it applies: observable + verified + inferred.

After an edit is stored (and its phrase inferred), ``PreferenceLearner.learn`` looks at the
annotator's similar past edits (the CIPHER neighbours), keeps the observable facts that hold across
them as preferences with their evidence, and verifies the phrases that wait for it by replaying
them on those past inputs within a bounded budget of generations. ``select`` decides, for a new
input, which preferences are applied: pinned ones always, others only once verified; the exact
output fixes the user switched on; and, when nothing applies, a sentence saying why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from promptopt.edit.memory import ContextMemory, Neighbour
from promptopt.edit.observe import Fact, Observation, aggregate, relevant
from promptopt.edit.verify import (
    PENDING,
    UNVERIFIED,
    VERIFIED,
    Budget,
    Replay,
    Verdict,
    Verifier,
    VerifyConfig,
)
from promptopt.generation import build_messages
from promptopt.llm import CallContext, LLMClient
from promptopt.llm.resolve import resolve_call
from promptopt.storage import Store
from promptopt.storage.models import Edit, Preference, Project

log = logging.getLogger("promptopt.edit")

# At most this many phrases go into one generation: a long list of instructions is followed
# worse than a short one, by small models most of all.
MAX_APPLIED = 4


@dataclass
class Selection:
    applied: list[Preference] = field(default_factory=list)
    fixes: list[tuple[Preference, Fact]] = field(default_factory=list)
    held_back: list[tuple[Preference, str]] = field(default_factory=list)
    note: str = ""  # why nothing is applied, when the profile is not empty

    @property
    def phrases(self) -> list[str]:
        return [p.text for p in self.applied]


@dataclass
class LearnReport:
    observed: list[Preference] = field(default_factory=list)
    verdicts: dict[int, Verdict] = field(default_factory=dict)  # preference id -> verdict
    generations: int = 0


def fact_of(pref: Preference) -> Fact | None:
    if pref.kind != "observable" or not pref.spec:
        return None
    try:
        return Fact.from_spec(pref.spec)
    except (KeyError, ValueError):
        return None


def status_label(pref: Preference) -> str:
    """What the profile shows for a preference's verification state."""
    if pref.pinned:
        return "pinned (always applied)"
    return {VERIFIED: "verified", UNVERIFIED: "not verified", PENDING: "pending"}.get(
        pref.status, pref.status
    )


class PreferenceLearner:
    def __init__(
        self,
        store: Store,
        client: LLMClient,
        memory: ContextMemory,
        *,
        k: int = 5,
        threshold: float = 0.2,
        config: VerifyConfig | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.memory = memory
        self.k = k
        self.threshold = threshold
        self.config = config or VerifyConfig()
        # Observation runs right after an edit is stored (the request thread) and again inside
        # ``learn`` (the background worker); one at a time, so a fact is never added twice.
        self._observing = threading.Lock()

    # -- neighbours ----------------------------------------------------------------------------
    def neighbour_edits(self, found: list[Neighbour]) -> list[Edit]:
        out: list[Edit] = []
        for neighbour in found:
            item = self.store.memory.get(neighbour.memory_id)
            if item.edit_id is not None:
                out.append(self.store.edits.get(item.edit_id))
        return out

    def observe(self, edits: list[Edit], *, min_introduced: int = 2) -> list[Observation]:
        return aggregate(
            [(e.output, e.edited) for e in edits],
            min_introduced=min_introduced,
            endorsed=self._endorsed(edits),
        )

    def _endorsed(self, edits: list[Edit]) -> list[list[Fact]]:
        """Per edit: the observable preferences its output was written with, when the user
        accepted that output unchanged (the fact then holds because the model met it, and the
        user's acceptance is what says they want it)."""
        out: list[list[Fact]] = []
        for e in edits:
            facts: list[Fact] = []
            if e.status == "accepted" and e.applied_preference:
                named = (Fact.from_phrase(p) for p in e.applied_preference.split("; "))
                facts = [f for f in named if f is not None]
            out.append(facts)
        return out

    def _observables(self, project_id: int, annotator: str, edits: list[Edit]) -> list[Preference]:
        """Upsert the observable preferences that hold across ``edits``, with their evidence."""
        with self._observing:
            return [self._upsert(project_id, annotator, obs, edits) for obs in self.observe(edits)]

    def _upsert(
        self, project_id: int, annotator: str, obs: Observation, edits: list[Edit]
    ) -> Preference:
        evidence = {
            "holds": obs.holds,
            "introduced": obs.introduced,
            "total": obs.total,
            "text": obs.evidence,
            "edits": [e.id for e in edits],
        }
        found = self.store.preferences.find_text(project_id, annotator, obs.fact.phrase)
        if found is None:
            pref = self.store.preferences.add(
                project_id=project_id,
                annotator=annotator,
                text=obs.fact.phrase,
                source="observed",
                kind="observable",
                spec=obs.fact.spec(),
                evidence=evidence,
            )
        else:
            keep = {k: v for k, v in found.evidence.items() if k == "verification"}
            # An inferred phrase with the same words gains a checker: it is now observable.
            pref = self.store.preferences.update(
                found.id,
                evidence={**evidence, **keep},
                kind="observable",
                spec=obs.fact.spec(),
            )
        return pref

    # -- learning ------------------------------------------------------------------------------
    def _around(self, edit: Edit, vector: np.ndarray) -> tuple[list[Neighbour], list[Edit]]:
        found = self.memory.nearest(
            edit.project_id, edit.annotator, vector, self.k + 1, self.threshold
        )
        edits = self.neighbour_edits(found)
        if all(e.id != edit.id for e in edits):
            edits.insert(0, edit)
        return found, edits

    def observe_around(self, edit: Edit, vector: np.ndarray) -> list[Preference]:
        """The observable preferences that hold around one stored edit, upserted: no LLM and
        milliseconds, so the caller runs it as soon as the edit is stored and the profile shows
        them before the slow inference and verification of ``learn`` have finished."""
        return self._observables(edit.project_id, edit.annotator, self._around(edit, vector)[1])

    def learn(self, edit: Edit, vector: np.ndarray, inferred_id: int | None) -> LearnReport:
        """Observe and verify around one stored edit; safe to call again (idempotent work is
        cached, and a phrase already verified or refused is not replayed)."""
        report = LearnReport()
        found, edits = self._around(edit, vector)
        report.observed = self._observables(edit.project_id, edit.annotator, edits)

        waiting: list[Preference] = [p for p in report.observed if self._waits(p)]
        ids = [inferred_id] if inferred_id is not None else []
        ids += [n.preference_id for n in found if n.preference_id is not None]
        for pref_id in dict.fromkeys(ids):
            pref = self.store.preferences.get(pref_id)
            if self._waits(pref) and all(p.id != pref.id for p in waiting):
                waiting.append(pref)
        if not waiting:
            return report

        project = self.store.projects.get(edit.project_id)
        budget = Budget(self.config.budget)
        verifier = Verifier(self._generator(project), self.config)
        past = [e for e in edits if e.input_id is not None]
        for pref in waiting:
            if pref.deleted or pref.pinned:
                continue
            sources = self._sources(pref, edit.id)
            replays = [
                Replay(self.store.inputs.get(e.input_id).text, e.edited, e.id)  # type: ignore[arg-type]
                for e in past
                if e.id not in sources
            ]
            fact = fact_of(pref)
            verdict = verifier.verify(
                pref.text, replays, budget, fact.check if fact is not None else None
            )
            report.verdicts[pref.id] = verdict
            evidence = {**self.store.preferences.get(pref.id).evidence}
            evidence["verification"] = verdict.as_dict()
            self.store.preferences.update(pref.id, status=verdict.status, evidence=evidence)
        report.generations = budget.spent
        return report

    def _waits(self, pref: Preference) -> bool:
        """Pending, or refused on fewer replays than a full verification uses (one earlier
        input is weak evidence against a phrase; it gets another chance with more history)."""
        if pref.deleted or pref.pinned:
            return False
        if pref.status == PENDING:
            return True
        replays = int((pref.evidence.get("verification") or {}).get("replays") or 0)
        return pref.status == UNVERIFIED and replays < self.config.replays

    def _sources(self, pref: Preference, current: int) -> set[int]:
        """Edits a phrase must not be replayed on: those an inferred phrase was learned from;
        for an observable one, the edit that just made it (its evidence spans the neighbours,
        so holding them all out would leave nothing to replay on)."""
        if pref.kind == "observable":
            return {current}
        return {
            m.edit_id
            for m in self.store.memory.list(pref.project_id, pref.annotator)
            if m.preference_id == pref.id and m.edit_id is not None
        }

    def _generator(self, project: Project) -> Callable[[str, str | None], tuple[str, bool]]:
        # The generator's own model and settings: replaying is generating, so the outputs
        # "without" the phrase are the very ones the rounds produced (served from the cache).
        call = resolve_call(project, "generate")
        template = project.template
        if project.prompt_id is not None:
            template = self.store.prompts.get(project.prompt_id).text

        def generate(input_text: str, phrase: str | None) -> tuple[str, bool]:
            completion = self.client.stream(
                build_messages(template, input_text, preference=phrase),
                context=CallContext(purpose="verify-preference", project_id=project.id),
                use_cache=True,
                **call.kwargs(),
            ).completion()
            return completion.text.strip(), completion.cached

        return generate

    # -- applying ------------------------------------------------------------------------------
    def yardstick(self, found: list[Neighbour]) -> list[Fact]:
        """What the user's similar past edits did, even once (a preference needs two): the
        measure by which ``EditService.choose`` picks between drafts, never applied itself."""
        return [o.fact for o in self.observe(self.neighbour_edits(found), min_introduced=1)]

    def select(self, project_id: int, annotator: str, found: list[Neighbour]) -> Selection:
        """The preferences a new input gets: pinned ones, then verified observables and
        inferred phrases of its neighbours; plus the output fixes switched on."""
        sel = Selection()
        profile = self.store.preferences.list(project_id, annotator)
        pairs = [(e.output, e.edited) for e in self.neighbour_edits(found)]
        candidates: list[Preference] = []
        for pref in profile:
            fact = fact_of(pref)
            if fact is not None and relevant(fact, pairs):
                candidates.append(pref)
        for neighbour in found:
            if neighbour.preference_id is not None:
                candidates.append(self.store.preferences.get(neighbour.preference_id))
        pinned = [p for p in profile if p.pinned]
        seen: set[int] = set()
        for pref in [*pinned, *candidates]:
            if pref.id in seen or pref.deleted or not pref.text.strip():
                continue
            seen.add(pref.id)
            fact = fact_of(pref)
            if pref.fix and fact is not None and fact.fixable:
                sel.fixes.append((pref, fact))
            if pref.pinned or pref.status == VERIFIED:
                if len(sel.applied) < MAX_APPLIED or pref.pinned:
                    sel.applied.append(pref)
            else:
                sel.held_back.append((pref, _why_held(pref)))
        if profile and not sel.applied and not sel.fixes:
            sel.note = self._note(found, sel.held_back)
        return sel

    def _note(self, found: list[Neighbour], held: list[tuple[Preference, str]]) -> str:
        if not found:
            return (
                "Nothing applied: none of your earlier edits was on an input similar enough to "
                f"this one (similarity below {self.threshold:.2f})."
            )
        if held:
            listed = "; ".join(f"'{p.text}' ({why})" for p, why in held[:3])
            return f"Nothing applied yet: {listed}."
        return "Nothing applied: your similar earlier edits have not shown a preference yet."


def _why_held(pref: Preference) -> str:
    verification: dict[str, Any] = pref.evidence.get("verification") or {}
    if pref.status == UNVERIFIED:
        return "not verified: " + str(verification.get("reason") or "it did not help")
    return "not verified yet"
