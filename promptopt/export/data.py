"""Gathering what an export needs from storage: the best prompt, the leaderboard, the learned
preferences with their context vectors, and provenance.

Every exporter reads one ``ExportData``, so all formats agree on which prompt is "best" and which
preferences apply. The Compare engine's leaderboard is used when a service is passed in (the UI
has one); otherwise win rates are computed from the stored comparisons, which needs no model.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from promptopt.compare.selection import tally
from promptopt.compare.validate import leftover_placeholders
from promptopt.storage import NotFoundError, Store
from promptopt.storage.models import Comparison, Edit, Preference, Project, Prompt

log = logging.getLogger("promptopt.export")

# Static formats (Markdown, OpenAI, llm, promptfoo) cannot retrieve per input, so they carry the
# pinned preferences and the most supported learned ones, capped so the prompt stays readable.
STATIC_PREFERENCE_LIMIT = 8
LEADERBOARD_LIMIT = 20
# Retrieval settings written into bundles: the Edit engine's own (promptopt.edit.service) when
# it is installed, else these copies of its defaults (k of CIPHER-5, MiniLM-measured threshold).
DEFAULT_K = 5
FALLBACK_THRESHOLD = 0.1


@dataclass
class RankedPrompt:
    prompt: Prompt
    utility: float | None
    win_rate: float | None
    votes: int
    wins: float


@dataclass
class ContextVector:
    # None for a round with no usable phrase (pending, or its preference deleted): it still
    # takes one of the k neighbour slots, exactly as in the Edit engine's retrieval.
    preference_id: int | None
    vector: np.ndarray
    # Observed preferences this round is evidence for (the fact holds in the user's revision),
    # so that the runtime retrieves them by context as the app does.
    also: list[int] = field(default_factory=list)


@dataclass
class ExportData:
    project: Project
    annotator: str | None
    best: Prompt
    best_reason: str  # "promoted" | "compare" | "win-rate" | "base"
    leaderboard: list[RankedPrompt]
    preferences: list[Preference]  # pinned first, then by support
    contexts: list[ContextVector]
    embedding_model: str | None
    comparisons: list[Comparison]
    edits: list[Edit]
    exported_at: str
    k: int = DEFAULT_K
    threshold: float = FALLBACK_THRESHOLD
    notes: list[str] = field(default_factory=list)
    # The model named at export time (``--model``); None means the project's.
    model_override: str | None = None

    @property
    def votes(self) -> int:
        return sum(1 for c in self.comparisons if c.source != "edit")

    def global_preferences(self) -> list[Preference]:
        """What a static export may state for every input (see ``global_instruction``)."""
        return [p for p in self.preferences if global_instruction(p)]

    def static_preferences(self) -> list[Preference]:
        pinned = [p for p in self.preferences if p.pinned]
        others = [p for p in self.global_preferences() if not p.pinned]
        room = max(0, STATIC_PREFERENCE_LIMIT - len(pinned))
        return pinned + others[:room]

    def static_preference_text(self) -> str:
        return join_preferences([p.text for p in self.static_preferences()])


def join_preferences(texts: Sequence[str]) -> str:
    """One phrase from several, in order, without repeats (case and spacing ignored), joined
    the way the Edit engine joins them so that exports and the app send the same text."""
    seen: set[str] = set()
    parts: list[str] = []
    for text in texts:
        key = " ".join(text.lower().split())
        if key and key not in seen:
            seen.add(key)
            parts.append(text.strip())
    return "; ".join(parts)


def collect(
    store: Store,
    project_id: int,
    annotator: str | None = None,
    *,
    compare: Any = None,
    now: _dt.datetime | None = None,
    model_override: str | None = None,
) -> ExportData:
    """Everything an exporter needs for one project (and one annotator, or all of them)."""
    project = store.projects.get(project_id)
    comparisons = store.comparisons.list(project_id, annotator)
    edits = store.edits.list(project_id, annotator)
    notes: list[str] = []
    leaderboard = _compare_leaderboard(compare, project_id, annotator, notes)
    if leaderboard is None:
        leaderboard = win_rate_leaderboard(store.prompts.list(project_id), comparisons)
    leaderboard = [r for r in leaderboard if not _unusable(r.prompt, project)]
    best, reason = _pick_best(store, project, leaderboard, compare, annotator)
    leftover = leftover_placeholders(best.text, project.template)
    if _unusable(best, project):
        # A machine-written prompt that still holds {content} and the like is refused, not
        # exported: the export falls back to the project's own prompt and says why.
        notes.append(
            f"Prompt #{best.id} still holds {', '.join(leftover)}; the project prompt was "
            "exported instead."
        )
        best = Prompt(id=0, project_id=project.id, text=project.template, origin="base")
        reason = "base"
    preferences = _preferences(store, project_id, annotator)
    contexts, model = _contexts(store, project_id, annotator, preferences, notes)
    k, threshold = _retrieval_settings()
    stamp = (now or _dt.datetime.now(_dt.UTC)).isoformat(timespec="seconds")
    return ExportData(
        project=project,
        annotator=annotator,
        best=best,
        best_reason=reason,
        leaderboard=leaderboard[:LEADERBOARD_LIMIT],
        preferences=preferences,
        contexts=contexts,
        embedding_model=model,
        comparisons=comparisons,
        edits=edits,
        exported_at=stamp,
        k=k,
        threshold=threshold,
        notes=notes,
        model_override=model_override,
    )


def win_rate_leaderboard(
    prompts: Sequence[Prompt], comparisons: Sequence[Comparison]
) -> list[RankedPrompt]:
    """Prompts ranked by smoothed win rate, counted as the Compare engine counts them: a win is
    1, a tie 0.5 each; "both bad" is a vote that decides nothing; skips are not votes.

    The smoothing ((wins + 1) / (decided + 2)) keeps a prompt with one lucky win from
    outranking one with a long record; the reported win rate is the raw one.
    """
    counts = tally(
        (c.prompt_a_id, c.prompt_b_id, c.verdict)
        for c in comparisons
        if c.source != "edit"
        and c.prompt_a_id is not None
        and c.prompt_b_id is not None
        and c.prompt_a_id != c.prompt_b_id
    )
    rows = [
        RankedPrompt(
            prompt=p,
            utility=None,
            win_rate=counts.win_rate(p.id),
            votes=counts.votes[p.id],
            wins=counts.wins[p.id],
        )
        for p in prompts
    ]
    rows.sort(
        key=lambda r: (-(r.wins + 1.0) / (counts.decided[r.prompt.id] + 2.0), -r.votes, r.prompt.id)
    )
    return rows


def _compare_leaderboard(
    compare: Any, project_id: int, annotator: str | None, notes: list[str]
) -> list[RankedPrompt] | None:
    if compare is None or annotator is None:
        return None
    try:
        rows = compare.leaderboard(project_id, annotator)
    except Exception as exc:  # the engine is optional here: win rates still make an export
        log.warning("Compare leaderboard unavailable (%s); using win rates", exc)
        notes.append(f"Leaderboard from win rates (the Compare engine failed: {exc}).")
        return None
    return [
        RankedPrompt(
            prompt=r.prompt,
            utility=float(r.utility),
            win_rate=r.win_rate,
            votes=int(r.votes),
            wins=float(r.wins),
        )
        for r in rows
    ]


def _unusable(prompt: Prompt, project: Project) -> bool:
    """A machine-written prompt with slots other than {input} (one from before the validator)."""
    return prompt.origin not in ("user", "imported", "base") and bool(
        leftover_placeholders(prompt.text, project.template)
    )


def _pick_best(
    store: Store,
    project: Project,
    leaderboard: list[RankedPrompt],
    compare: Any,
    annotator: str | None,
) -> tuple[Prompt, str]:
    promoted = store.prompts.get(project.prompt_id) if project.prompt_id else None
    # A new project promotes its base prompt automatically; only a promotion of another prompt
    # is the user's choice, and that choice wins over any estimate.
    if promoted is not None and promoted.origin != "base":
        return promoted, "promoted"
    if compare is not None and annotator is not None:
        try:
            report = compare.best(project.id, annotator)
        except Exception as exc:
            log.warning("Compare best() unavailable (%s); using win rates", exc)
            report = None
        if report is not None:
            return report.prompt, "compare"
    if leaderboard and leaderboard[0].votes > 0:
        return leaderboard[0].prompt, "win-rate"
    if promoted is not None:
        return promoted, "base"
    base = Prompt(id=0, project_id=project.id, text=project.template, origin="base")
    return base, "base"


def _preferences(store: Store, project_id: int, annotator: str | None) -> list[Preference]:
    """What was learned, not what was guessed: pinned and verified preferences only (an
    unverified phrase is shown in the app's profile, never exported as an instruction)."""
    return [p for p in _all_preferences(store, project_id, annotator) if exportable(p)]


def exportable(pref: Preference) -> bool:
    return bool(pref.pinned) or pref.status == "verified"


def global_instruction(pref: Preference) -> bool:
    """Fit for a static export, which applies it to every input: pinned, or backed by at least
    two of the user's edits (a phrase from one edit is about that edit; the bundle's runtime
    still retrieves it for similar inputs, as the app does)."""
    return bool(pref.pinned) or support(pref) >= 2


def support(pref: Preference) -> int:
    """The user's edits behind a learned phrase: for an observed one, those that made the
    change; for another, the rounds that stored it (inferred from an edit, or used in an output
    the user accepted). Replays that verified it say it helps, not that the user asked for it."""
    if pref.kind == "observable":
        return int(pref.evidence.get("introduced") or 0)
    return int(pref.count or 0)


def _all_preferences(store: Store, project_id: int, annotator: str | None) -> list[Preference]:
    if annotator is not None:
        return store.preferences.list(project_id, annotator)
    # Preferences are stored per annotator; the annotators of a project are those who gave it
    # feedback.
    annotators = sorted(
        {c.annotator for c in store.comparisons.list(project_id)}
        | {e.annotator for e in store.edits.list(project_id)}
    )
    merged: list[Preference] = []
    for name in annotators:
        merged.extend(store.preferences.list(project_id, name))
    merged.sort(key=lambda p: (-p.pinned, -p.count, p.id))
    return merged


def _contexts(
    store: Store,
    project_id: int,
    annotator: str | None,
    preferences: list[Preference],
    notes: list[str],
) -> tuple[list[ContextVector], str | None]:
    live = {p.id for p in preferences}
    annotators = (
        [annotator] if annotator is not None else sorted({p.annotator for p in preferences})
    )
    items = [m for name in annotators for m in store.memory.list(project_id, name)]
    if not items:
        return [], None
    models = {m.embedding_id: _embedding_model(store, m.embedding_id) for m in items}
    # Vectors of different models cannot be compared; keep the model most of the memory uses.
    counts: dict[str, int] = {}
    for m in items:
        counts[models[m.embedding_id]] = counts.get(models[m.embedding_id], 0) + 1
    model = max(counts, key=lambda name: (counts[name], name))
    if len(counts) > 1:
        notes.append(
            f"Kept {counts[model]} context vectors of {model}; dropped "
            f"{len(items) - counts[model]} made with other embedding models."
        )
    kept = [m for m in items if models[m.embedding_id] == model]
    vectors = store.embeddings.get_many([m.embedding_id for m in kept])
    observed = _observed_by_edit(store, preferences)
    contexts = [
        ContextVector(
            preference_id=m.preference_id if m.preference_id in live else None,
            vector=vectors[m.embedding_id],
            also=observed.get(m.edit_id, []) if m.edit_id is not None else [],
        )
        for m in kept
    ]
    return contexts, model


def _observed_by_edit(store: Store, preferences: list[Preference]) -> dict[int, list[int]]:
    """edit id -> the exported observed preferences whose fact that edit's revision satisfies
    (their evidence lists the similar edits they were measured on)."""
    from promptopt.edit.learning import fact_of

    out: dict[int, list[int]] = {}
    for pref in preferences:
        fact = fact_of(pref)
        if fact is None:
            continue
        for edit_id in pref.evidence.get("edits") or []:
            try:
                edited = store.edits.get(int(edit_id)).edited or ""
            except (NotFoundError, TypeError, ValueError):
                continue  # evidence of an edit that no longer exists
            if edited.strip() and fact.check(edited):
                out.setdefault(int(edit_id), []).append(pref.id)
    return out


def _embedding_model(store: Store, embedding_id: int) -> str:
    return store.embeddings.model_of(embedding_id)


def _retrieval_settings() -> tuple[int, float]:
    """k and the similarity threshold of the Edit engine, or ours when it publishes none."""
    k, threshold = DEFAULT_K, FALLBACK_THRESHOLD
    try:
        from promptopt.edit import service as edit_service
    except ImportError:
        return k, threshold
    k = int(getattr(edit_service, "DEFAULT_K", k))
    published = getattr(edit_service, "DEFAULT_THRESHOLD", None)
    if isinstance(published, int | float):
        threshold = float(published)
    return k, threshold
