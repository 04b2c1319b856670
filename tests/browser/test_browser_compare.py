"""Compare in headless chromium with a model that writes slowly (the fake streams one word every
0.25 s, as the offline model does on a CPU): the first pair is written while the user is still
on the Project screen, and a pair being written can be cut short with Esc and voted on."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from promptopt.ui.harness import RunningApp, running_app

pytestmark = pytest.mark.browser

WORD_DELAY_S = 0.25


@pytest.fixture(scope="module")
def slow_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    db = tmp_path_factory.mktemp("slow") / "app.db"
    with running_app(db, fake_word_delay_s=WORD_DELAY_S) as app:
        yield app


@pytest.fixture
def slow_page(browser: Any, slow_app: RunningApp) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def open_sample(page: Any, app: RunningApp, key: str) -> int:
    page.goto(app.url)
    expect()(page.locator("#banner")).to_contain_text("annotator")
    page.locator(f"#sample-{key}").click()
    expect()(page.locator("#banner")).to_contain_text("Project:")
    name = {"news-summaries": "News summaries", "informal-to-formal": "Informal"}[key]
    project = next(p for p in app.store.projects.list() if p.name.startswith(name))
    return project.id


def compare_calls(app: RunningApp, project_id: int) -> list[Any]:
    return [c for c in app.store.calls.list(project_id) if c.purpose == "compare"]


def test_the_first_pair_is_written_while_the_user_is_still_on_the_project_screen(
    slow_page: Any, slow_app: RunningApp
) -> None:
    page = slow_page
    project_id = open_sample(page, slow_app, "informal-to-formal")
    # Still on Project: both outputs of the first pair are written and logged meanwhile.
    deadline = time.monotonic() + 30
    while len(compare_calls(slow_app, project_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    calls = compare_calls(slow_app, project_id)
    assert len(calls) == 2 and all(c.error is None and c.output for c in calls)
    page.get_by_role("tab", name="Compare", exact=True).click()
    started = time.perf_counter()
    page.wait_for_function(
        """() => ['left', 'right'].every(k => {
            const box = document.querySelector(`#compare-${k} textarea`);
            return box && box.value.length > 0; })
            && !document.querySelector('#compare-status').innerText.includes('Generating')""",
        timeout=5_000,
    )
    assert time.perf_counter() - started < 5
    shown = {page.locator(f"#compare-{k} textarea").input_value() for k in ("left", "right")}
    assert shown == {c.output for c in calls}
    assert len(compare_calls(slow_app, project_id)) == 2  # shown as made, not written again


def test_esc_cuts_a_pair_short_and_the_vote_keeps_what_was_written(
    slow_page: Any, slow_app: RunningApp
) -> None:
    page = slow_page
    project_id = open_sample(page, slow_app, "news-summaries")
    page.get_by_role("tab", name="Compare", exact=True).click()
    stop = page.locator("#compare-stop")
    page.wait_for_function(
        """() => ['left', 'right'].every(k => {
            const box = document.querySelector(`#compare-${k} textarea`);
            return box && box.value.split(' ').length >= 3; })""",
    )
    expect()(stop).to_be_visible()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("1")  # too early: the page says what to do, and it stays to be read
    expect()(page.locator("#compare-status")).to_contain_text("cut them short (Esc)")
    page.wait_for_timeout(300)
    expect()(page.locator("#compare-status")).to_contain_text("cut them short (Esc)")
    page.keyboard.press("Escape")
    expect()(page.locator("#compare-progress")).to_contain_text("Cut short", timeout=10_000)
    expect()(stop).to_be_hidden()
    expect()(page.locator("#compare-status")).not_to_contain_text("Generating")
    left = page.locator("#compare-left textarea").input_value()
    right = page.locator("#compare-right textarea").input_value()
    assert left and right
    calls = compare_calls(slow_app, project_id)
    assert any(c.error and "Cut short" in c.error and c.output for c in calls)
    page.keyboard.press("1")
    expect()(page.locator("#compare-counter")).to_contain_text(re.compile(r"Votes:\*?\*? ?1 by"))
    stored = slow_app.store.comparisons.list(project_id, "you", source="vote")
    assert len(stored) == 1 and stored[0].verdict
    assert {stored[0].output_a, stored[0].output_b} == {left, right}
