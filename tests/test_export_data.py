"""What exports are built from: the sample project shared by the export, runtime and CLI tests,
and the choice of best prompt, leaderboard and preferences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from records import add_edit

from promptopt.embeddings import FakeEmbedder
from promptopt.export.data import collect, join_preferences, win_rate_leaderboard
from promptopt.projects import create_project
from promptopt.storage import Store
from promptopt.storage.models import Comparison, Prompt

ANNOTATOR = "alice"
SPORT_CONTEXT = "football match report: the striker scored a late goal in the league game"
FINANCE_CONTEXT = "stock market update: bank shares fell as investors sold bonds"
INPUTS = [
    "The striker scored twice in the league match on Sunday.",
    "Shares of the bank fell 5% as investors worried about bonds.",
    'A recipe with {braces}, {{double braces}}, $dollars and "quotes".',
]


@dataclass
class Sample:
    project_id: int
    name: str
    base: Prompt
    winner: Prompt
    third: Prompt
    sport_pref: int
    finance_pref: int
    pinned_pref: int
    deleted_pref: int
    inputs: list[int]


def build_sample(store: Store, embedder: Any | None = None) -> Sample:
    """A project with votes, edits, learned and pinned preferences and their context vectors.

    Written straight through the repositories, so that these tests do not depend on the
    engines. ``embedder`` makes the context vectors (the fake one unless a test passes MiniLM).
    """
    embedder = embedder or FakeEmbedder()
    project = create_project(
        store,
        "News: Summaries / v1 ../etc",
        "Summarize this article for busy readers:\n\n{input}",
        task="summaries",
        generator_model="gpt-4o-mini",
        inputs=INPUTS,
    )
    pid = project.id
    base = store.prompts.get(project.prompt_id or 0)
    winner = store.prompts.add(pid, "In three bullet points, {input} summarised.", "rephrase")
    third = store.prompts.add(pid, "TL;DR of {input}: costs $5, see {{ref}}.", "induction")
    inputs = [i.id for i in store.inputs.list(pid)]

    def vote(a: Prompt, b: Prompt, verdict: str, i: int) -> Comparison:
        return store.comparisons.add(
            project_id=pid,
            verdict=verdict,
            annotator=ANNOTATOR,
            input_id=inputs[i % 2],
            prompt_a_id=a.id,
            prompt_b_id=b.id,
            output_a=f"output of {a.id} on {i}",
            output_b=f"output of {b.id} on {i}",
            left="a",
        )

    vote(winner, base, "a", 0)
    vote(base, winner, "b", 1)
    vote(winner, third, "a", 2)
    vote(base, third, "tie", 3)
    vote(third, base, "both_bad", 4)
    vote(third, winner, "skip", 5)
    store.comparisons.add(  # another annotator's vote
        project_id=pid,
        verdict="a",
        annotator="bob",
        input_id=inputs[0],
        prompt_a_id=third.id,
        prompt_b_id=base.id,
        output_a="bob saw third",
        output_b="bob saw base",
    )
    # The Edit engine records an edit as "edited beats original" too; pairs must not count it twice.
    add_edit(
        store,
        project_id=pid,
        annotator=ANNOTATOR,
        input_id=inputs[0],
        prompt_id=winner.id,
        output="The striker scored twice.",
        edited="- Striker scored twice\n- League match, Sunday",
        word_distance=6,
    )
    store.edits.add(  # accepted as is: no pair
        project_id=pid,
        annotator=ANNOTATOR,
        input_id=inputs[1],
        prompt_id=winner.id,
        output="Bank shares fell.",
        edited="Bank shares fell.",
        status="accepted",
    )
    replayed = {"verification": {"status": "verified", "replays": 2}}  # helped on 2 more edits
    sport = store.preferences.add(
        project_id=pid,
        annotator=ANNOTATOR,
        text="bullet points",
        status="verified",
        evidence=replayed,
    )
    finance = store.preferences.add(
        project_id=pid,
        annotator=ANNOTATOR,
        text="formal tone",
        status="verified",
        evidence=replayed,
    )
    for learned in (sport, finance):  # each inferred from two edits
        store.preferences.increment(learned.id)
    # verified, but backed by one edit alone (accepted once): a guess, never exported
    store.preferences.add(
        project_id=pid, annotator=ANNOTATOR, text="mention the weather", status="verified"
    )
    # a one-off phrase that replaying did not support: shown in the app, never exported
    store.preferences.add(
        project_id=pid, annotator=ANNOTATOR, text="a plant-based diet", status="unverified"
    )
    pinned = store.preferences.add(
        project_id=pid, annotator=ANNOTATOR, text="British spelling", source="user", pinned=True
    )
    deleted = store.preferences.add(project_id=pid, annotator=ANNOTATOR, text="use emoji")
    store.preferences.update(deleted.id, deleted=1)
    for text, pref in (
        (SPORT_CONTEXT, sport.id),
        (FINANCE_CONTEXT, finance.id),
        ("emoji context party fun", deleted.id),
    ):
        vector = embedder.encode([text])[0]
        emb = store.embeddings.put(embedder.name, text, vector)
        store.memory.add(project_id=pid, annotator=ANNOTATOR, embedding_id=emb, preference_id=pref)
    return Sample(
        project_id=pid,
        name=project.name,
        base=base,
        winner=winner,
        third=third,
        sport_pref=sport.id,
        finance_pref=finance.id,
        pinned_pref=pinned.id,
        deleted_pref=deleted.id,
        inputs=inputs,
    )


@pytest.fixture
def sample(store: Store) -> Sample:
    return build_sample(store)


def test_best_is_the_prompt_with_the_best_win_rate(store: Store, sample: Sample) -> None:
    data = collect(store, sample.project_id, ANNOTATOR)
    assert data.best.id == sample.winner.id
    assert data.best_reason == "win-rate"
    assert data.leaderboard[0].prompt.id == sample.winner.id
    top = data.leaderboard[0]
    assert (top.wins, top.votes, top.win_rate) == (3.0, 3, 1.0)


def test_a_promoted_prompt_wins_over_win_rates(store: Store, sample: Sample) -> None:
    store.projects.update(sample.project_id, prompt_id=sample.third.id)
    data = collect(store, sample.project_id, ANNOTATOR)
    assert (data.best.id, data.best_reason) == (sample.third.id, "promoted")


def test_without_votes_the_base_prompt_is_best(store: Store) -> None:
    project = create_project(store, "empty", "Rewrite: {input}")
    data = collect(store, project.id)
    assert data.best.text == "Rewrite: {input}"
    assert data.best_reason == "base"
    assert data.preferences == [] and data.contexts == []


def test_ties_count_half_and_edit_comparisons_are_ignored() -> None:
    a = Prompt(id=1, project_id=1, text="a {input}", origin="base")
    b = Prompt(id=2, project_id=1, text="b {input}", origin="user")
    votes = [
        Comparison(id=1, project_id=1, verdict="tie", annotator="x", prompt_a_id=1, prompt_b_id=2),
        Comparison(id=2, project_id=1, verdict="b", annotator="x", prompt_a_id=1, prompt_b_id=2),
        Comparison(
            id=3, project_id=1, verdict="b", annotator="x", prompt_a_id=1, prompt_b_id=1,
            source="edit",
        ),
    ]  # fmt: skip
    rows = {r.prompt.id: r for r in win_rate_leaderboard([a, b], votes)}
    assert (rows[1].wins, rows[1].votes) == (0.5, 2)
    assert (rows[2].wins, rows[2].win_rate) == (1.5, 0.75)


def test_a_compare_service_ranking_is_used_when_given(store: Store, sample: Sample) -> None:
    from promptopt.compare.service import LeaderboardRow

    @dataclass
    class Report:
        prompt: Prompt

    class Service:
        def leaderboard(self, project_id: int, annotator: str) -> list[LeaderboardRow]:
            return [LeaderboardRow(sample.third, 2.0, 0.1, 4, 1.0, 0.25, True)]

        def best(self, project_id: int, annotator: str) -> Report:
            return Report(sample.third)

    data = collect(store, sample.project_id, ANNOTATOR, compare=Service())
    assert (data.best.id, data.best_reason) == (sample.third.id, "compare")
    assert data.leaderboard[0].utility == 2.0


def test_a_failing_compare_service_falls_back_to_win_rates(store: Store, sample: Sample) -> None:
    class Broken:
        def leaderboard(self, project_id: int, annotator: str) -> list[Any]:
            raise RuntimeError("model not trained")

        def best(self, project_id: int, annotator: str) -> None:
            raise RuntimeError("model not trained")

    data = collect(store, sample.project_id, ANNOTATOR, compare=Broken())
    assert data.best.id == sample.winner.id
    assert any("model not trained" in note for note in data.notes)


def test_preferences_pinned_first_deleted_left_out(store: Store, sample: Sample) -> None:
    data = collect(store, sample.project_id, ANNOTATOR)
    ids = [p.id for p in data.preferences]
    assert ids[0] == sample.pinned_pref
    assert sample.deleted_pref not in ids
    # The deleted preference's context stays as a neighbour without a phrase, as in the app.
    assert [c.preference_id for c in data.contexts] == [
        sample.sport_pref,
        sample.finance_pref,
        None,
    ]
    assert data.embedding_model == FakeEmbedder().name


def test_all_annotators_when_none_is_named(store: Store, sample: Sample) -> None:
    data = collect(store, sample.project_id)
    assert {c.annotator for c in data.comparisons} == {ANNOTATOR, "bob"}
    assert {p.id for p in data.preferences} >= {sample.sport_pref, sample.pinned_pref}


def test_join_preferences_drops_repeats() -> None:
    assert join_preferences(["Short", "short ", " bullet  points", "", "Bullet points"]) == (
        "Short; bullet  points"
    )
