"""The Edit engine (after CIPHER): learn a user's latent preferences from the edits they make.

One round: ``prepare`` embeds the input, retrieves the k most similar past contexts of this
annotator and condenses their preference phrases into one (plus the pinned ones); the caller
streams ``generate``; ``submit`` (or ``accept``) stores the edit, its comparison and its memory
item and returns at once; ``learn`` (run in the background by the application layer) infers the
preference behind it. Every round adds one memory item. See docs/engine-api.md for the contract.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from promptopt.edit.distance import char_distance, word_distance, words
from promptopt.edit.drafts import Choice, choose
from promptopt.edit.learning import (
    MAX_APPLIED,
    LearnReport,
    PreferenceLearner,
    Selection,
    fact_of,
    status_label,
)
from promptopt.edit.memory import ContextMemory
from promptopt.edit.observe import Fact, apply_fixes
from promptopt.edit.prompts import (
    MAX_PHRASE_CHARS,
    clean_phrase,
    condense_messages,
    distinct_phrases,
    infer_messages,
    join_phrases,
)
from promptopt.edit.verify import VERIFIED, VerifyConfig
from promptopt.embeddings import Embedder
from promptopt.generation import build_messages, require_text
from promptopt.llm import CallContext, GenerationParams, LLMClient, LLMError, StreamingResponse
from promptopt.llm.resolve import resolve_call
from promptopt.storage import Store, ValidationError
from promptopt.storage.models import Edit, Input, Preference, Project

log = logging.getLogger("promptopt.edit")

# Cosine similarity below which a past context is not a neighbour, so that a preference learned
# on one kind of input does not leak to unrelated inputs. Measured with MiniLM on the benchmark's
# three document kinds (20 documents each): at 0.2 a new document of an unseen kind finds a
# neighbour among 40 documents of other kinds 22% of the time (87% at 0.1, 5% at 0.3), while 80%
# of its 5 nearest same-kind documents still pass (99% at 0.1, 47% at 0.3).
DEFAULT_THRESHOLD = 0.2

META_PARAMS = GenerationParams(temperature=0.0, max_tokens=32)

# "default": what the app does (observable + verified + inferred; only verified or pinned
# preferences are applied). "cipher": the reference method (every inferred phrase is applied,
# condensed over the neighbours), kept for the benchmark's cipher-K methods.
POLICIES = ("default", "cipher")


@dataclass
class Draft:
    project_id: int
    annotator: str
    input: Input
    prompt_text: str
    preference: str  # everything generation is told: the condensed phrase plus pinned ones
    applied: list[Preference]  # retrieved + pinned
    neighbours: list[tuple[int, float]]  # (memory id, cosine), best first
    messages: list[dict[str, str]]
    prompt_id: int | None = None
    learned: str = ""  # the condensed neighbours' phrase alone: what accepting stores
    embedding_id: int | None = None
    vector: Any = field(default=None, repr=False)  # the input's embedding (numpy, 1-D)
    selection: Selection | None = None  # default policy: what is applied, fixed, held back
    note: str = ""  # why nothing is applied although the profile is not empty
    # A second draft with the observed preferences that wait for verification added; the one
    # that fits the user's past edits better is shown (``EditService.choose``).
    trial: str = ""
    trial_added: list[str] = field(default_factory=list)  # what the second draft adds
    trial_messages: list[dict[str, str]] = field(default_factory=list)
    checks: list[Fact] = field(default_factory=list)  # the observed preferences that apply here
    choice: Choice | None = None

    def finish(self, output: str) -> str:
        """The output with the exact fixes the user switched on (none by default)."""
        if self.selection is None or not self.selection.fixes:
            return output
        return apply_fixes(output, [fact for _, fact in self.selection.fixes])


@dataclass
class EditResult:
    edit: Edit
    word_distance: int
    char_distance: int
    inferred: str | None
    status: str  # "done" | "pending" | "accepted"
    error: str | None = None  # why the last inference failed (the edit stays "pending")
    learned: LearnReport | None = None  # default policy: what was observed and verified


@dataclass
class ProfileEntry:
    preference: Preference
    sources: int  # memory items (rounds) that stored this phrase
    status: str = ""  # verified | not verified | pending | pinned (always applied)
    fixable: bool = False  # an observable preference with an exact output fix


class EditService:
    """Thread-safe; per-user state lives in SQLite and in per-(project, annotator) indexes."""

    def __init__(
        self,
        store: Store,
        client: LLMClient,
        embedder: Embedder,
        *,
        k: int = 5,
        threshold: float = DEFAULT_THRESHOLD,
        meta_model: str | None = None,
        policy: str = "default",
        verify: VerifyConfig | None = None,
    ) -> None:
        if k < 1:
            raise ValidationError("k must be at least 1 (k = 1 is CIPHER-1).")
        if policy not in POLICIES:
            raise ValidationError(f"Unknown edit policy {policy!r}; use {' or '.join(POLICIES)}.")
        self.policy = policy
        self.store = store
        self.client = client
        self.embedder = embedder
        self.k = k
        self.threshold = threshold
        self.meta_model = meta_model
        self.memory = ContextMemory(store, embedder)
        self.learner = PreferenceLearner(
            store, client, self.memory, k=k, threshold=threshold, config=verify
        )
        self.meta_tokens: Counter[str] = Counter()  # tokens of this engine's own LLM calls
        self._tokens_lock = threading.Lock()
        # One inference per edit at a time (a background learn and a user's retry can overlap);
        # striped so that the locks do not grow with the number of edits.
        self._learning = [threading.Lock() for _ in range(64)]

    def _learn_lock(self, edit_id: int) -> threading.Lock:
        return self._learning[edit_id % len(self._learning)]

    def embed_inputs(self, project_id: int) -> int:
        """Embed the project's inputs ahead of the rounds that will use them (batched); returns
        how many were new. Safe to call repeatedly and from a background thread."""
        return self.memory.embed_many([i.text for i in self.store.inputs.list(project_id)])

    # -- one round ---------------------------------------------------------------------------
    def prepare(self, project_id: int, annotator: str, input_id: int) -> Draft:
        project = self.store.projects.get(project_id)
        item = self.store.inputs.get(input_id)
        if item.project_id != project_id:
            raise ValidationError(f"Input {input_id} belongs to another project.")
        prompt_text, prompt_id = self._current_prompt(project)
        embedding_id, vector = self.memory.embed(item.text)
        found = self.memory.nearest(project_id, annotator, vector, self.k, self.threshold)
        extra: dict[str, Any]
        if self.policy == "default":
            sel = self.learner.select(project_id, annotator, found)
            preference, applied = join_phrases(sel.phrases), sel.applied
            trial = self._trial(sel, found, prompt_text, item)
            extra = {"selection": sel, "note": sel.note, **trial}
        else:
            preference, applied, learned = self._cipher_preference(project, annotator, found)
            extra = {"learned": learned}
        return Draft(
            project_id=project_id,
            annotator=annotator,
            input=item,
            prompt_text=prompt_text,
            preference=preference,
            applied=applied,
            neighbours=[(n.memory_id, n.score) for n in found],
            messages=build_messages(prompt_text, item.text, preference=preference),
            prompt_id=prompt_id,
            embedding_id=embedding_id,
            vector=vector,
            **extra,
        )

    def _cipher_preference(
        self, project: Project, annotator: str, found: list[Any]
    ) -> tuple[str, list[Preference], str]:
        """The reference rule: the neighbours' phrases condensed by the LLM, plus pinned ones.
        Returns (the phrase to apply, the preferences it came from, the condensed part)."""
        retrieved: list[Preference] = []
        for neighbour in found:
            if neighbour.preference_id is None:
                continue  # a round whose inference is still pending, or accepted with no phrase
            pref = self.store.preferences.get(neighbour.preference_id)
            if pref.deleted or not pref.text.strip():
                continue
            if all(p.id != pref.id for p in retrieved):
                retrieved.append(pref)
        learned = self._condense(project, [p.text for p in retrieved])
        pinned = [
            p
            for p in self.store.preferences.list(project.id, annotator)
            if p.pinned and all(p.id != r.id for r in retrieved)
        ]
        return join_phrases([learned, *(p.text for p in pinned)]), retrieved + pinned, learned

    def generate(self, draft: Draft) -> StreamingResponse:
        call = resolve_call(self.store.projects.get(draft.project_id), "generate")
        response = self.client.stream(
            draft.messages,
            context=CallContext(purpose="generate", project_id=draft.project_id),
            use_cache=True,
            **call.kwargs(),
        )
        return require_text(response, call.model)

    def generate_drafts(self, draft: Draft) -> list[StreamingResponse]:
        """The output, and when observed preferences wait for verification a second draft with
        them added, decoded in one batch; read them all, then ``choose``."""
        if not draft.trial_messages:
            return [self.generate(draft)]
        call = resolve_call(self.store.projects.get(draft.project_id), "generate")
        responses = self.client.stream_many(
            [draft.messages, draft.trial_messages],
            context=CallContext(purpose="generate", project_id=draft.project_id),
            use_cache=True,
            **call.kwargs(),
        )
        return [require_text(r, call.model) for r in responses]

    def choose(self, draft: Draft, texts: list[str]) -> str:
        """The draft to show (with the fixes the user switched on); the draft records which
        one it was and why, and its phrase becomes the one the edit was written with."""
        choice = choose(texts, draft.checks, trial=draft.trial_added)
        draft.choice = choice
        if choice.index == 1:
            draft.preference, draft.messages = draft.trial, draft.trial_messages
        return draft.finish(texts[choice.index] if texts else "")

    def _endorse(self, draft: Draft) -> int | None:
        """The user accepted an output unchanged: every learned phrase it was written with has
        earned its place on their own history (verified), and the inferred one is linked to
        this round so that the next similar input retrieves it (observable ones are credited
        by the analysis). Returns that inferred phrase's id."""
        used = list(draft.applied)
        if draft.choice is not None and draft.choice.index == 1:
            for phrase in draft.trial_added:
                found = self.store.preferences.find_text(draft.project_id, draft.annotator, phrase)
                if found is not None and not found.deleted:
                    used.append(found)
        for pref in used:
            if pref.pinned or pref.status == VERIFIED:
                continue
            evidence = dict(self.store.preferences.get(pref.id).evidence)
            evidence["verification"] = {
                "status": VERIFIED,
                "reason": "you accepted an output written with it, unchanged",
                "replays": 0,
            }
            self.store.preferences.update(pref.id, status=VERIFIED, evidence=evidence)
        inferred = next((p for p in used if p.kind != "observable" and not p.pinned), None)
        if inferred is None:
            return None
        return self.store.preferences.increment(inferred.id).id  # one more round stored it

    def _trial(
        self, sel: Selection, found: list[Any], prompt_text: str, item: Input
    ) -> dict[str, Any]:
        """The second draft: what is applied plus what the user's similar past edits did
        (one phrase per family, best supported first); that is also the yardstick that chooses
        between the drafts."""
        checks = self.learner.yardstick(found)
        applied = set(sel.phrases)
        added = [f.phrase for f in checks if f.phrase not in applied]
        added = added[: max(1, MAX_APPLIED - len(sel.phrases))]
        if not added:
            return {"checks": checks}
        trial = join_phrases([*sel.phrases, *added])
        messages = build_messages(prompt_text, item.text, preference=trial)
        return {"checks": checks, "trial": trial, "trial_added": added, "trial_messages": messages}

    def submit(self, draft: Draft, output: str, edited: str, annotator: str) -> EditResult:
        """Store the edit, its comparison (edited beats original) and its memory item in one
        transaction, and return at once: status "pending" for a change (``learn`` infers the
        preference later, in the background), "accepted" when nothing changed."""
        if annotator != draft.annotator:
            raise ValidationError(
                f"This draft was prepared for {draft.annotator!r}, not {annotator!r}; "
                "prepare a new draft for this annotator."
            )
        output, edited = output or "", edited or ""
        if not edited.strip() and output.strip():
            raise ValidationError(
                "The edited text is empty. Type the text you want, or accept the output as it is."
            )
        # Whitespace-only changes cost no words and reveal no preference: treat as accepted.
        changed = words(output) != words(edited)
        wd, cd = word_distance(output, edited), char_distance(output, edited)
        vector, embedding_id = draft.vector, draft.embedding_id
        if vector is None or embedding_id is None:
            embedding_id, vector = self.memory.embed(draft.input.text)
        vector = np.asarray(vector, dtype=np.float32)
        self.memory.index(draft.project_id, annotator)  # built before the new row exists
        with self.store.transaction():
            edit = self.store.edits.add(
                project_id=draft.project_id,
                annotator=annotator,
                output=output,
                edited=edited,
                input_id=draft.input.id,
                prompt_id=draft.prompt_id,
                word_distance=wd,
                char_distance=cd,
                applied_preference=draft.preference,
                status="pending" if changed else "accepted",
            )
            comparison_id = None
            if changed:
                comparison_id = self.store.comparisons.add(
                    project_id=draft.project_id,
                    verdict="b",  # b (the user's edit) beats a (the model's output)
                    annotator=annotator,
                    input_id=draft.input.id,
                    prompt_a_id=draft.prompt_id,
                    prompt_b_id=draft.prompt_id,
                    output_a=output,
                    output_b=edited,
                    source="edit",
                    meta={"edit_id": edit.id},
                ).id
                edit = self.store.edits.update(edit.id, comparison_id=comparison_id)
            preference_id = None
            if not changed and draft.learned:
                # The reference stores the phrase that was used when the user accepts.
                preference_id = self._remember(
                    draft.project_id, annotator, draft.learned, "accepted"
                ).id
            elif not changed:
                preference_id = self._endorse(draft)
            # In the same commit as the edit: a crash can never leave an edit that retrieval
            # will not find. The live index learns of it only once the row is committed.
            memory_id = self.memory.record(
                draft.project_id,
                annotator,
                embedding_id=embedding_id,
                input_id=draft.input.id,
                preference_id=preference_id,
                edit_id=edit.id,
                comparison_id=comparison_id,
            )
        self.memory.publish(draft.project_id, annotator, memory_id, vector)
        return EditResult(edit, wd, cd, None, "pending" if changed else "accepted")

    def accept(self, draft: Draft, output: str, annotator: str) -> EditResult:
        return self.submit(draft, output, output, annotator)

    def learn(self, edit_id: int) -> EditResult:
        """The slow half of a round: infer the preference behind a stored edit (an LLM call).

        Idempotent (an edit already learned from, or accepted, is returned as it is) and safe to
        call from a background thread; a failure leaves the edit "pending" with its error, for
        ``retry_pending`` or another ``learn``."""
        with self._learn_lock(edit_id):
            edit = self.store.edits.get(edit_id)
            if edit.status in ("pending", "failed"):
                memory_id = next(
                    (
                        m.id
                        for m in self.store.memory.list(edit.project_id, edit.annotator)
                        if m.edit_id == edit.id
                    ),
                    None,
                )
                self._infer(edit, memory_id)
                if self.policy == "default" and memory_id is not None:
                    # Observable analysis and verification: no LLM for the first, a bounded
                    # budget of cached generations for the second.
                    item = self.store.memory.get(memory_id)
                    vector = self.store.embeddings.get(item.embedding_id)
                    report = self._observe_and_verify(edit.id, memory_id, vector)
                    return replace(self.result(edit_id), learned=report)
        return self.result(edit_id)

    def result(self, edit_id: int) -> EditResult:
        """A stored edit as it stands (no LLM call)."""
        edit = self.store.edits.get(edit_id)
        wd, cd = edit.word_distance or 0, edit.char_distance or 0
        status = "pending" if edit.status == "failed" else edit.status
        return EditResult(edit, wd, cd, edit.inferred_preference, status, edit.error)

    def submit_and_learn(
        self, draft: Draft, output: str, edited: str, annotator: str
    ) -> EditResult:
        """Store and learn in one go, for simulations and scripts that need the phrase now."""
        stored = self.submit(draft, output, edited, annotator)
        return stored if stored.status == "accepted" else self.learn(stored.edit.id)

    def retry_pending(self, project_id: int, annotator: str) -> int:
        """Run inference again for edits whose preference is still unknown; returns how many
        now have one."""
        waiting = self.pending(project_id, annotator)
        return sum(1 for e in waiting if self.learn(e.id).status == "done")

    def pending(self, project_id: int, annotator: str) -> list[Edit]:
        """Edits stored but not yet learned from (the UI shows "preference pending")."""
        return [
            e
            for e in self.store.edits.list(project_id, annotator)
            if e.status in ("pending", "failed")
        ]

    # -- the profile -------------------------------------------------------------------------
    def profile(
        self, project_id: int, annotator: str, include_deleted: bool = False
    ) -> list[ProfileEntry]:
        counts = Counter(
            m.preference_id
            for m in self.store.memory.list(project_id, annotator)
            if m.preference_id is not None
        )
        prefs = self.store.preferences.list(project_id, annotator, include_deleted=include_deleted)
        out: list[ProfileEntry] = []
        for p in prefs:
            fact = fact_of(p)
            fixable = fact is not None and fact.fixable
            out.append(ProfileEntry(p, counts.get(p.id, 0), status_label(p), fixable))
        return out

    def sources(self, pref_id: int) -> list[Edit]:
        """The edits behind one phrase (its memory items that came from an edit)."""
        pref = self.store.preferences.get(pref_id)
        ids = [
            m.edit_id
            for m in self.store.memory.list(pref.project_id, pref.annotator)
            if m.preference_id == pref_id and m.edit_id is not None
        ]
        return [self.store.edits.get(i) for i in ids]

    def add_preference(
        self, project_id: int, annotator: str, text: str, pinned: bool = True
    ) -> Preference:
        """A phrase the user types into the profile; pinned by default so it always applies."""
        phrase = _user_phrase(text)
        pref = self.store.preferences.find_text(project_id, annotator, phrase)
        if pref is not None:
            return self.store.preferences.update(pref.id, pinned=int(pinned), deleted=0)
        return self.store.preferences.add(
            project_id=project_id,
            annotator=annotator,
            text=phrase,
            source="user",
            pinned=pinned,
            kind="user",
        )

    def update_preference(
        self,
        pref_id: int,
        *,
        project_id: int,
        annotator: str,
        text: str | None = None,
        pinned: bool | None = None,
        deleted: bool | None = None,
        fix: bool | None = None,
    ) -> Preference:
        """Edit, pin/unpin, delete/restore one phrase of this annotator's profile in this
        project, or switch an observable preference's exact output fix on or off; the next
        ``prepare`` sees the change. Another profile's phrase is refused, whoever asks and
        however they got its id."""
        current = self.store.preferences.get(pref_id)
        if current.project_id != project_id or current.annotator != annotator:
            raise ValidationError("That preference belongs to another profile.")
        fields: dict[str, Any] = {}
        if fix is not None:
            fact = fact_of(current)
            if fix and (fact is None or not fact.fixable):
                raise ValidationError(
                    "This preference has no exact output fix; pin it to have it applied instead."
                )
            fields["fix"] = int(fix)
        if text is not None:
            fields["text"] = _user_phrase(text)
            if current.kind == "observable" and fields["text"] != current.text:
                # Reworded by the user: the phrase is theirs now and no longer the measured fact.
                fields.update(kind="user", spec={}, fix=0)
        if pinned is not None:
            fields["pinned"] = int(pinned)
        if deleted is not None:
            fields["deleted"] = int(deleted)
        if not fields:
            return current
        return self.store.preferences.update(pref_id, **fields)

    def effort_curve(self, project_id: int, annotator: str) -> list[int]:
        return [e.word_distance or 0 for e in self.store.edits.list(project_id, annotator)]

    def close(self) -> None:
        """Persist the in-process indexes so the next start need not rebuild them."""
        self.memory.save()

    # -- internals ---------------------------------------------------------------------------
    def _current_prompt(self, project: Project) -> tuple[str, int | None]:
        if project.prompt_id is not None:
            prompt = self.store.prompts.get(project.prompt_id)
            return prompt.text, prompt.id
        return project.template, None

    def _meta_call(self, project: Project, messages: list[dict[str, str]], purpose: str) -> str:
        call = resolve_call(project, purpose, params=META_PARAMS, model=self.meta_model)
        completion = self.client.complete(
            messages,
            context=CallContext(purpose=purpose, project_id=project.id),
            # Inference is retried on demand, so an earlier (possibly empty) answer must not be
            # served from the cache; condensing the same phrases twice may reuse the answer.
            use_cache=purpose == "condense",
            **call.kwargs(),
        )
        with self._tokens_lock:
            self.meta_tokens[purpose] += completion.total_tokens
        return completion.text

    def _condense(self, project: Project, phrases: list[str]) -> str:
        distinct = distinct_phrases(phrases)
        if not distinct:
            return ""
        if self.k == 1 or len(distinct) == 1:
            return distinct[0]  # one neighbour, or all neighbours agree: no LLM call
        try:
            phrase = clean_phrase(self._meta_call(project, condense_messages(distinct), "condense"))
        except Exception as exc:  # any failure: generation must still get the evidence
            log.warning("condensing preferences failed (%s); using them joined", exc)
            phrase = ""
        return phrase or join_phrases(distinct)[: MAX_PHRASE_CHARS * 2]

    def _infer(self, edit: Edit, memory_id: int | None) -> str | None:
        project = self.store.projects.get(edit.project_id)
        try:
            phrase = clean_phrase(
                self._meta_call(
                    project, infer_messages(edit.output, edit.edited), "infer-preference"
                )
            )
            if not phrase:
                raise LLMError("The model answered with no preference phrase.")
        except Exception as exc:  # the edit is already stored; it waits for retry_pending
            log.warning("preference inference for edit %s failed: %s", edit.id, exc)
            self.store.edits.update(edit.id, status="pending", error=str(exc)[:500])
            return None
        with self.store.transaction():
            pref = self._remember(edit.project_id, edit.annotator, phrase, "edit")
            self.store.edits.update(edit.id, inferred_preference=phrase, status="done", error=None)
            if memory_id is not None:
                self.store.memory.update(memory_id, preference_id=pref.id)
        return phrase

    def _observe_and_verify(
        self, edit_id: int, memory_id: int | None, vector: Any
    ) -> LearnReport | None:
        """Observable analysis and verification; a failure leaves the edit stored and learned."""
        try:
            inferred_id = self.store.memory.get(memory_id).preference_id if memory_id else None
            return self.learner.learn(
                self.store.edits.get(edit_id), np.asarray(vector, np.float32), inferred_id
            )
        except Exception as exc:  # verification is optional work; the edit is already stored
            log.warning("observing/verifying around edit %s failed: %s", edit_id, exc)
            return None

    def _remember(self, project_id: int, annotator: str, text: str, source: str) -> Preference:
        """Merge duplicates: a phrase already in the profile gains a count instead of a row.
        A phrase the user deleted stays deleted (its count still grows)."""
        existing = self.store.preferences.find_text(project_id, annotator, text)
        if existing is not None:
            return self.store.preferences.increment(existing.id)
        return self.store.preferences.add(
            project_id=project_id, annotator=annotator, text=text, source=source
        )


def _user_phrase(text: str) -> str:
    phrase = " ".join((text or "").split())
    if not phrase:
        raise ValidationError("A preference cannot be empty; delete it instead.")
    if len(phrase) > MAX_PHRASE_CHARS * 2:
        raise ValidationError(
            f"A preference is a short phrase (at most {MAX_PHRASE_CHARS * 2} characters); "
            "shorten it or split it into several."
        )
    return phrase
