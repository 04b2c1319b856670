"""The application layer: a vote is one trip (one refit, few statements, one commit), an edit is
stored at once and learned from in the background, ownership is enforced below the UI, and the
pair pipeline yields when its session leaves the screen."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from promptopt.llm import FakeLLM
from promptopt.llm.base import LLMRequest
from promptopt.workspace import (
    NoProject,
    ValidationError,
    Workspace,
    make_parts,
    make_workspace,
)
from promptopt.workspace.fakes import reply

MAX_VOTE_STATEMENTS = 15
MAX_EDIT_STATEMENTS = 30


@pytest.fixture
def ws(store: Any) -> Iterator[Workspace]:
    yield make_workspace(make_parts(store=store, fake_llm=True, embedder="fake"))


def project_with_pool(ws: Workspace, size: int = 8) -> int:
    project = ws.open_sample("news-summaries")
    for k in range(size - 1):
        ws.add_candidate(project.id, f"Variant {k}: summarize it in style number {k}.\n\n{{input}}")
    return project.id


@contextmanager
def statements(ws: Workspace) -> Iterator[list[str]]:
    """Every SQL statement this thread's connection runs inside the block."""
    seen: list[str] = []
    conn = ws.store.database.db.conn
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def commits(seen: list[str]) -> int:
    return sum(1 for s in seen if s.strip().upper().startswith("COMMIT"))


def test_a_vote_is_one_trip(ws: Workspace) -> None:
    project_id = project_with_pool(ws)
    first = ws.start_pair("s1", project_id, "ann")
    assert first.wait(10) and first.error is None and first.duel is not None
    refits = ws.compare.refits
    ws.reserve_after("s1", first.duel, "ann")  # while the user reads: no refit
    assert ws.compare.refits == refits
    duel = first.duel
    for number in range(1, 8):
        reserved = ws.compare.next_duel(project_id, "ann", after=duel)
        refits = ws.compare.refits
        with statements(ws) as seen:
            outcome = ws.vote("s1", duel, "left" if number % 2 else "tie", "ann")
        assert ws.compare.refits == refits + 1, "a vote refits exactly once"
        assert len(seen) <= MAX_VOTE_STATEMENTS, seen
        assert commits(seen) == 1, seen
        assert outcome.votes == number and outcome.best is not None
        # The pair shown next is the one reserved while the user read, made ahead.
        assert outcome.pending.duel is not None and outcome.pending.duel.id == reserved.id
        assert outcome.pending.wait(10) and outcome.pending.error is None
        # ...and the pair after it came from the same fit.
        ws.reserve_after("s1", outcome.pending.duel, "ann")
        assert ws.compare.refits == refits + 1
        duel = outcome.pending.duel
    stored = ws.store.comparisons.list(project_id, "ann", source="vote")
    assert [c.verdict for c in stored][1] == "tie" and len(stored) == 7


def test_the_reserved_pair_differs_from_the_one_on_screen(ws: Workspace) -> None:
    project_id = project_with_pool(ws, size=3)
    on_screen = ws.compare.next_duel(project_id, "ann")
    follow = ws.compare.next_duel(project_id, "ann", after=on_screen)
    assert {follow.prompt_a.id, follow.prompt_b.id} != {
        on_screen.prompt_a.id,
        on_screen.prompt_b.id,
    }
    assert follow.input.id != on_screen.input.id


class SlowInference:
    """The demo model, with preference inference that takes ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def __call__(self, request: LLMRequest) -> str:
        if "edits text written for them" in request.messages[0]["content"]:
            time.sleep(self.delay_s)
        return reply(request)


def test_edit_submit_returns_at_once_and_learns_in_the_background(store: Any) -> None:
    fake = FakeLLM(default=SlowInference(0.5))
    ws = make_workspace(make_parts(store=store, fake_llm=fake, embedder="fake"))
    project = ws.open_sample("informal-to-formal")
    input_id = ws.next_input_id(project.id, "ann")
    assert input_id is not None
    draft = ws.prepare(project.id, "ann", input_id)
    output = ws.generate(draft).text()
    started = time.perf_counter()
    result = ws.submit_edit(draft, output, output + " Kind regards.", "ann")
    assert time.perf_counter() - started < 0.4
    assert result.status == "pending" and result.inferred is None
    assert ws.wait_learned(result.edit.id, "ann", 0.01) is None  # still inferring
    learned = ws.wait_learned(result.edit.id, "ann", 10)
    assert learned is not None and learned.status == "done" and learned.inferred
    # The next round goes to an input this annotator has not edited yet.
    assert ws.next_input_id(project.id, "ann") != input_id
    assert ws.next_input_id(project.id, "bob") == input_id
    with pytest.raises(ValidationError, match="another annotator"):
        ws.wait_learned(result.edit.id, "bob", 1)


def bullets(output: str) -> str:
    """Three short bullets from an output, as the browser walk's user writes them."""
    words = output.split()
    return "\n".join(f"- {' '.join(words[k : k + 4])}." for k in (0, 4, 8))


def test_observed_preferences_show_as_soon_as_the_edit_is_stored(store: Any) -> None:
    """Observation needs no LLM: after the second bullet edit the profile holds "bullet points"
    with its evidence while that edit's inference is still running."""
    fake = FakeLLM(default=SlowInference(1.5))
    ws = make_workspace(make_parts(store=store, fake_llm=fake, embedder="fake"))
    project = ws.open_sample("news-summaries")
    results = []
    for _ in range(2):
        input_id = ws.next_input_id(project.id, "ann")
        assert input_id is not None
        draft = ws.prepare(project.id, "ann", input_id)
        output = ws.generate(draft).text()
        results.append(ws.submit_edit(draft, output, bullets(output), "ann"))
    assert ws.wait_learned(results[1].edit.id, "ann", 0.01) is None  # still inferring
    second = results[1].learned
    assert second is not None and "bullet points" in [p.text for p in second.observed]
    assert results[0].learned is not None and not results[0].learned.observed  # one edit: none
    profile = {e.preference.text: e.preference for e in ws.profile(project.id, "ann")}
    assert profile["bullet points"].kind == "observable"
    assert "holds in 2 of 2" in profile["bullet points"].evidence["text"]
    assert ws.wait_learned(results[1].edit.id, "ann", 20) is not None
    observed = [p for p in ws.store.preferences.list(project.id, "ann") if p.kind == "observable"]
    assert len({p.text for p in observed}) == len(observed)  # learning did not add them twice


def test_edit_submit_statements(ws: Workspace) -> None:
    project = ws.open_sample("informal-to-formal")
    input_id = ws.next_input_id(project.id, "ann")
    assert input_id is not None
    draft = ws.prepare(project.id, "ann", input_id)
    output = ws.generate(draft).text()
    with statements(ws) as seen:
        result = ws.submit_edit(draft, output, output + " Kind regards.", "ann")
    assert result.status == "pending"
    assert len(seen) <= MAX_EDIT_STATEMENTS, seen
    assert commits(seen) == 1


def test_ownership_is_checked_below_the_ui(ws: Workspace) -> None:
    mine = ws.open_sample("informal-to-formal")
    other = ws.open_sample("news-summaries")
    pref = ws.add_preference(mine.id, "ann", "short sentences")
    with pytest.raises(ValidationError, match="another profile"):
        ws.update_preference(mine.id, "bob", pref.id, deleted=True)
    with pytest.raises(ValidationError, match="another profile"):
        ws.update_preference(other.id, "ann", pref.id, pinned=False)
    assert ws.update_preference(mine.id, "ann", pref.id, pinned=False).pinned == 0
    foreign = ws.store.prompts.list(other.id)[0]
    with pytest.raises(ValidationError, match="another project"):
        ws.promote(mine.id, foreign.id)
    call_id = ws.store.calls.log(
        project_id=other.id, purpose="generate", model="fake", messages=[], params={}, output="x"
    )
    with pytest.raises(ValidationError, match="another project"):
        ws.call(mine.id, call_id)
    with pytest.raises(NoProject):
        ws.project(None)


def test_leaving_the_screen_stops_generating_ahead(store: Any) -> None:
    # Each generation first waits 0.5 s, so the reservation is still running when the user leaves.
    ws = make_workspace(make_parts(store=store, fake_llm=True, embedder="fake", fake_delay_s=0.5))
    project_id = project_with_pool(ws, size=4)
    first = ws.start_pair("s1", project_id, "ann")
    assert first.wait(20) and first.duel is not None
    ws.reserve_after("s1", first.duel, "ann")
    follow = ws.compare.next_duel(project_id, "ann", after=first.duel)
    ahead = ws.pairs.ahead("s1", follow.id)  # the reservation in progress
    assert ahead is not None and not ahead.done.is_set()
    ws.leave_compare("s1")
    assert ahead.wait(5) and ahead.cancelled.is_set() and ahead.error is not None
    ws.reserve_after("s1", first.duel, "ann")  # paused: nothing new starts
    assert ws.pairs.paused("s1")
    assert first.error is None  # the pair on screen is never stopped
    # Back on the screen the pair is made again, complete.
    again = ws.pairs.show("s1", project_id, "ann", follow)
    assert again is not ahead and again.wait(20) and again.error is None


def test_a_new_project_waits_for_one_proposal_only(ws: Workspace) -> None:
    """Base vs the first candidate at once; more candidates arrive in the background and join
    the duels from the next vote on (that vote's rebuild is its one refit)."""
    project = ws.open_sample("informal-to-formal")
    assert ws.pool_size(project.id) == 1
    made = ws.seed_pool(project.id, "ann", more=2)
    assert made and all(m.origin != "base" for m in made)
    first = ws.start_pair("s1", project.id, "ann")
    assert first.wait(10) and first.duel is not None
    deadline = time.monotonic() + 10
    while ws.pool_size(project.id) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ws.pool_size(project.id) >= 3
    refits = ws.compare.refits
    outcome = ws.vote("s1", first.duel, "left", "ann")
    assert ws.compare.refits == refits + 1
    shown = {p.id for p in ws.store.prompts.list(project.id)}
    assert outcome.pending.duel is not None
    assert {outcome.pending.duel.prompt_a.id, outcome.pending.duel.prompt_b.id} <= shown
    assert len(ws.leaderboard(project.id, "ann")) == len(shown)


@pytest.mark.parametrize("sample", ["informal-to-formal", "news-summaries"])
def test_a_new_project_gets_its_first_pair_even_from_a_junk_writing_model(
    store: Any, sample: str
) -> None:
    """With a model whose every proposal is refused (as SmolLM2-135M's were), the first
    candidate still comes at once from an operator that needs no model, so the first pair of a
    new project never waits on the model's proposals nor hangs on a pool of one."""
    from promptopt.compare.operators import OPERATORS
    from promptopt.llm import FakeLLM

    junk = FakeLLM(default="News article Template: #news_item {input} {content} </template>")
    ws = make_workspace(make_parts(store=store, fake_llm=junk, embedder="fake"))
    project = ws.open_sample(sample)
    made = ws.seed_pool(project.id, "ann", more=0)
    assert made and all(m.origin in OPERATORS for m in made), made
    assert all("{content}" not in m.text and m.text.count("{input}") == 1 for m in made)
    assert junk.history == []  # no model call before the first pair
    first = ws.start_pair("s1", project.id, "ann")
    assert first.wait(10) and first.error is None and first.duel is not None


def test_work_nobody_waits_for_is_marked_background(store: Any) -> None:
    """The reserved pair and the candidates proposed behind the first pair reach the model as
    background calls; the pair on screen and the first proposal do not."""
    from promptopt.workspace.fakes import demo_fake_llm

    fake = demo_fake_llm()
    ws = make_workspace(make_parts(store=store, fake_llm=fake, embedder="fake"))
    project = ws.open_sample("informal-to-formal")
    ws.seed_pool(project.id, "ann", more=2)
    for thread in threading.enumerate():  # the candidates written behind the first pair
        if thread.name == "promptopt-propose":
            thread.join(10)
    proposals = list(fake.history)
    # the first candidate needs no model; the ones the model writes behind it are background
    assert proposals and all(r.background for r in proposals)
    fake.history.clear()
    first = ws.start_pair("s1", project.id, "ann")
    assert first.wait(10) and first.error is None and first.duel is not None
    on_screen = list(fake.history)
    assert len(on_screen) == 2 and not any(r.background for r in on_screen)
    fake.history.clear()
    ws.reserve_after("s1", first.duel, "ann")
    follow = ws.compare.next_duel(project.id, "ann", after=first.duel)
    ahead = ws.pairs.ahead("s1", follow.id)
    assert ahead is not None and ahead.wait(10) and ahead.error is None
    assert len(fake.history) == 2 and all(r.background for r in fake.history)
