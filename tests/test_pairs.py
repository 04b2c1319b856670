"""The pair pipeline's head starts and the user's control over a pair being written: the first
pair of a project starts when the project is opened, a pair made ahead is promoted to
foreground priority the moment somebody waits for it, and a pair can be cut short."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from promptopt.llm import FakeLLM
from promptopt.workspace import Duel, ProjectForm, Workspace, make_parts, make_workspace
from promptopt.workspace.fakes import reply
from promptopt.workspace.pairs import CUT_REASON, PendingPair


def slow_workspace(store: Any, *, delay_s: float = 0.0, word_delay_s: float = 0.0) -> Workspace:
    fake = FakeLLM(default=reply, delay_s=delay_s, word_delay_s=word_delay_s)
    return make_workspace(make_parts(store=store, fake_llm=fake, embedder="fake"))


def pool_of(ws: Workspace, size: int = 4) -> int:
    project = ws.open_sample("news-summaries")
    for k in range(size - 1):
        ws.add_candidate(project.id, f"Variant {k}: summarize it in style number {k}.\n\n{{input}}")
    return project.id


def wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_opening_a_project_starts_its_first_pair_which_compare_takes_over(store: Any) -> None:
    ws = slow_workspace(store, delay_s=0.3)
    fake = ws.client.backends["fake"]
    assert isinstance(fake, FakeLLM)
    project = ws.open_sample("informal-to-formal")
    assert ws.pool_size(project.id) == 1  # only the base prompt: the pair's job seeds the pool
    assert ws.prepare_first_pair("s1", project.id, "ann")
    first = ws.pairs.first("s1")
    assert first is not None and first.background
    assert ws.first_pair_on_its_way("s1", project.id, "ann")
    assert not ws.first_pair_on_its_way("s1", project.id, "bob")  # another annotator's pair
    # Opening the same project again keeps the pair on its way instead of starting over.
    ws.prepare_first_pair("s1", project.id, "ann")
    assert ws.pairs.first("s1") is first
    # Its calls reached the model as background work: nobody waits for them yet.
    assert wait_for(lambda: any(r.priority is first.priority for r in fake.history))
    assert all(r.is_background() for r in fake.history if r.priority is first.priority)
    shown = ws.start_pair("s1", project.id, "ann")  # Compare opens
    assert shown is first and not shown.background and not shown.priority.background
    assert ws.pairs.first("s1") is None
    assert shown.wait(20) and shown.error is None and shown.duel is not None
    assert ws.pool_size(project.id) >= 2
    pair_calls = [r for r in fake.history if r.priority is shown.priority]
    assert len(pair_calls) == 2 and not any(r.is_background() for r in pair_calls)
    # The model writes more candidates only once the pair is written, so as not to slow it.
    assert wait_for(lambda: ws.pool_size(project.id) >= 3)
    order = [r.priority is shown.priority for r in fake.history]
    assert order[:2] == [True, True] and not any(order[2:])


def test_a_project_with_no_inputs_gets_no_head_start(store: Any) -> None:
    ws = make_workspace(make_parts(store=store, fake_llm=True, embedder="fake"))
    form = ProjectForm("empty", "", "Do this: {input}", None, None, None)
    project = ws.create_project(form)
    assert not ws.prepare_first_pair("s1", project.id, "ann")
    assert ws.pairs.first("s1") is None


def test_leaving_or_switching_projects_stops_the_first_pair(store: Any) -> None:
    ws = slow_workspace(store, delay_s=0.5)
    project_id = pool_of(ws)
    ws.prepare_first_pair("s1", project_id, "ann")
    first = ws.pairs.first("s1")
    assert first is not None
    ws.leave_compare("s1")  # e.g. the user went to Edit: the model serves that screen
    assert first.wait(5) and first.cancelled.is_set()
    ws.prepare_first_pair("s1", project_id, "ann")
    second = ws.pairs.first("s1")
    assert second is not None and second is not first
    ws.forget_pairs("s1")  # another project was opened
    assert second.wait(5) and second.cancelled.is_set() and ws.pairs.first("s1") is None


def reserved_after_first(
    ws: Workspace, project_id: int, timeout: float
) -> tuple[PendingPair, Duel, PendingPair]:
    """The first pair shown (complete), the duel reserved after it, and its pair made ahead."""
    first = ws.start_pair("s1", project_id, "ann")
    assert first.wait(timeout) and first.duel is not None
    ws.reserve_after("s1", first.duel, "ann")
    follow = ws.compare.next_duel(project_id, "ann", after=first.duel)
    ahead = ws.pairs.ahead("s1", follow.id)
    assert ahead is not None
    return first, follow, ahead


def test_a_reserved_pair_promoted_by_a_vote_runs_in_the_foreground(store: Any) -> None:
    ws = slow_workspace(store, delay_s=0.6)
    fake = ws.client.backends["fake"]
    assert isinstance(fake, FakeLLM)
    project_id = pool_of(ws)
    first, _, ahead = reserved_after_first(ws, project_id, timeout=20)
    assert ahead.background and not ahead.done.is_set()
    assert wait_for(lambda: sum(1 for r in fake.history if r.priority is ahead.priority) == 2)
    mine = [r for r in fake.history if r.priority is ahead.priority]
    assert all(r.is_background() for r in mine)
    outcome = ws.vote("s1", first.duel, "left", "ann")  # voted before the reservation finished
    assert outcome.pending is ahead
    # The very requests already sent are foreground now (the model's lock asks between tokens).
    assert not any(r.is_background() for r in mine)
    assert ahead.wait(20) and ahead.error is None


def started(pending: PendingPair) -> bool:
    return bool(pending.left) and bool(pending.right)


def test_cut_short_keeps_what_was_written_and_the_vote_records_it(store: Any) -> None:
    ws = slow_workspace(store, word_delay_s=0.15)
    project_id = pool_of(ws)
    pending = ws.start_pair("s1", project_id, "ann")
    assert ws.cut_pair("s1") is not None  # nothing written yet: says to wait
    assert wait_for(lambda: started(pending))
    assert ws.cut_pair("s1") is None
    assert pending.wait(5) and pending.error is None and pending.cut_short
    duel = pending.duel
    assert duel is not None and duel.output_a and duel.output_b
    left, right = pending.texts()
    assert {duel.output_a, duel.output_b} == {left, right}
    full = {reply(r) for r in ws.client.backends["fake"].history}  # type: ignore[attr-defined]
    assert left not in full or right not in full  # at least one side was really cut
    calls = [c for c in ws.store.calls.list(project_id) if c.purpose == "compare"]
    assert any(c.error == CUT_REASON and c.output for c in calls)
    assert ws.cut_pair("s1") == "Both outputs are already complete."
    ws.vote("s1", duel, "left", "ann")
    stored = ws.store.comparisons.list(project_id, "ann", source="vote")
    assert len(stored) == 1
    assert {stored[0].output_a, stored[0].output_b} == {left, right}


# -- slow: the offline model ---------------------------------------------------------------------


@pytest.mark.slow
def test_offline_model_a_promoted_pair_overtakes_a_running_one(store: Any) -> None:
    """Two pairs made ahead rank alike, so the second waits for the first; promoted (a vote
    showed it unfinished), it makes the running batch step aside between two tokens."""
    from promptopt.llm import CallContext, Priority, create_client
    from promptopt.llm.local import LocalBackend

    backend = LocalBackend()
    backend.load()
    client = create_client(store)
    client.register("local", backend)
    essay = [{"role": "user", "content": "Write a long essay about the history of Rome."}]
    running = client.stream_many(
        [essay, essay],
        model="local/smollm2",
        params={"temperature": 0, "max_tokens": 160},
        context=CallContext(purpose="compare", priority=Priority(ahead=True)),
    )
    done: dict[str, float] = {}

    def read_running() -> None:
        running[0].text()
        done["running"] = time.monotonic()

    reader = threading.Thread(target=read_running)
    reader.start()
    next(iter(running[1]))  # the first batch is decoding
    waiting = Priority(ahead=True)
    short = client.stream_many(
        [[{"role": "user", "content": "Name one fruit."}]],
        model="local/smollm2",
        params={"temperature": 0, "max_tokens": 4},
        context=CallContext(purpose="compare", priority=waiting),
    )

    def read_short() -> None:
        short[0].text()
        done["promoted"] = time.monotonic()

    second = threading.Thread(target=read_short)
    second.start()
    time.sleep(0.5)
    assert "promoted" not in done  # same rank: it waits
    waiting.promote()
    second.join(120)
    reader.join(300)
    running[1].text()
    assert done["promoted"] < done["running"]


@pytest.mark.slow
def test_offline_model_cut_short_stops_both_outputs_at_once(store: Any) -> None:
    ws = make_workspace(make_parts(store=store, fake_llm=True, fake_default=False, embedder="fake"))
    project = ws.open_sample("news-summaries")
    ws.seed_pool(project.id, "ann", more=0)
    pending = ws.start_pair("s1", project.id, "ann")
    assert wait_for(lambda: len(pending.left) >= 3 and len(pending.right) >= 3, timeout=120)
    asked = time.monotonic()
    assert ws.cut_pair("s1") is None
    assert pending.wait(10) and pending.error is None and pending.cut_short
    assert time.monotonic() - asked < 5
    assert pending.duel is not None and pending.duel.output_a and pending.duel.output_b
    calls = [c for c in ws.store.calls.list(project.id) if c.purpose == "compare"]
    assert len(calls) == 2 and all(c.error == CUT_REASON and c.output for c in calls)
    # The model is free again: the next pair is written in full.
    again = ws.start_pair("s2", project.id, "ann")
    assert again.wait(300) and again.error is None and not again.cut_short


def test_a_pair_made_ahead_survives_new_candidates_joining_the_pool(store: Any) -> None:
    """Proposals land while the user reads: the next vote rebuilds the engine's session, and
    the pair reserved (and made) ahead is still the one shown, not a new one to wait for."""
    ws = make_workspace(make_parts(store=store, fake_llm=True, embedder="fake"))
    project_id = pool_of(ws)
    first, follow, ahead = reserved_after_first(ws, project_id, timeout=10)
    assert ahead.wait(10) and ahead.error is None
    ws.add_candidate(project_id, "A proposal that arrived meanwhile: be brief.\n\n{input}")
    outcome = ws.vote("s1", first.duel, "left", "ann")
    assert outcome.pending is ahead and outcome.pending.duel is not None
    assert outcome.pending.duel.id == follow.id


def test_proposals_wait_for_compare_when_the_user_went_elsewhere_first(store: Any) -> None:
    """A sample opened, then Edit at once: the head start stops, and the model's proposals do
    not start behind the user's back (Edit's own work goes first); Compare starts them."""
    ws = slow_workspace(store, delay_s=0.4)
    fake = ws.client.backends["fake"]
    assert isinstance(fake, FakeLLM)
    project = ws.open_sample("informal-to-formal")
    ws.prepare_first_pair("s1", project.id, "ann")
    first = ws.pairs.first("s1")
    assert first is not None and wait_for(lambda: first.duel is not None)
    ws.leave_compare("s1")
    assert first.wait(5) and first.cancelled.is_set()
    seeded = ws.pool_size(project.id)  # the base and what the model-free operators wrote
    time.sleep(1.0)
    assert ws.pool_size(project.id) == seeded
    assert not any(r.priority is None for r in fake.history)  # no proposal was asked for
    shown = ws.start_pair("s1", project.id, "ann")  # Compare opens
    assert shown is not first and shown.wait(20) and shown.error is None
    assert wait_for(lambda: any(r.priority is None for r in fake.history))
    assert wait_for(lambda: ws.pool_size(project.id) > seeded)
