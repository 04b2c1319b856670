"""End to end in headless chromium: one user's session through every screen, then a page whose
input holds script that must not run. Screenshots of each screen go to test-artifacts/.

The tests share one page and run in order (each continues where the previous one stopped).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from promptopt.ui.harness import RunningApp

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
XSS = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2"> trap text'


def shot(page: Any, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def open_tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def load(page: Any, url: str) -> None:
    """Open the app and wait until its load event has run (the banner names the annotator)."""
    page.goto(url)
    expect()(page.locator("#banner")).to_contain_text("annotator")


def unfocus(page: Any) -> None:
    """Shortcuts are ignored while typing; leave any text box as a user would."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def value(page: Any, selector: str) -> str:
    return str(page.locator(selector).input_value())


def wait_value(page: Any, selector: str, timeout_ms: int = 20_000) -> str:
    page.wait_for_function(
        "sel => { const el = document.querySelector(sel); return el && el.value.length > 0; }",
        arg=selector,
        timeout=timeout_ms,
    )
    return value(page, selector)


def test_open_sample_project(page: Any, browser_app: RunningApp) -> None:
    load(page, browser_app.url)
    page.locator("#sample-news-summaries").click()
    expect()(page.locator("#banner")).to_contain_text("News summaries")
    # Name the fake model, so the call log (and the screenshots) say what answered.
    store = browser_app.context.store
    project = store.projects.find("News summaries")
    store.projects.update(project.id, generator_model="fake", optimizer_model="fake")
    expect()(page.locator("#project-name textarea, #project-name input").first).to_have_value(
        "News summaries"
    )
    shot(page, "project")


def test_vote_on_three_pairs_with_the_keyboard(page: Any, browser_app: RunningApp) -> None:
    open_tab(page, "Compare")
    for number, key in enumerate(["1", "2", "3"], start=1):
        wait_value(page, "#compare-left textarea")
        wait_value(page, "#compare-right textarea")
        expect()(page.locator("#compare-status")).not_to_contain_text("Generating")
        if number == 1:
            shot(page, "compare")
        unfocus(page)
        page.keyboard.press(key)
        expect()(page.locator("#compare-counter")).to_contain_text(f"Votes: {number} by you")
    project = browser_app.context.store.projects.find("News summaries")
    verdicts = [c.verdict for c in browser_app.context.store.comparisons.list(project.id, "you")]
    assert len(verdicts) == 3 and verdicts[2] == "tie"
    expect()(page.locator("#compare-reveal")).to_contain_text("a tie")


def test_two_edits_update_the_profile(page: Any, browser_app: RunningApp) -> None:
    open_tab(page, "Edit")
    for round_number in (1, 2):
        unfocus(page)
        page.keyboard.press("n")
        expect()(page.locator("#edit-status")).to_contain_text("Edit the output", timeout=20_000)
        original = value(page, "#edit-output textarea")
        assert original
        box = page.locator("#edit-output textarea")
        box.fill(f"Round {round_number}. " + " ".join(original.split()[:6]))
        box.press("Control+Enter")
        expect()(page.locator("#edit-inferred")).to_contain_text("Inferred preference:")
        expect()(page.locator("#edit-inferred")).not_to_contain_text("pending")
        expect()(page.locator("#edit-distance")).to_contain_text("words")
        if round_number == 2:
            shot(page, "edit", full_page=True)
    project = browser_app.context.store.projects.find("News summaries")
    edits = browser_app.context.store.edits.list(project.id, "you")
    assert len(edits) == 2 and all(e.edited.startswith("Round") for e in edits)

    open_tab(page, "Profile")
    expected = browser_app.context.store.preferences.list(project.id, "you")
    assert expected
    for pref in expected:
        expect()(page.locator("#profile-table")).to_contain_text(pref.text)
    shot(page, "profile")


def test_prompts_leaderboard(page: Any, browser_app: RunningApp) -> None:
    open_tab(page, "Prompts")
    expect()(page.locator("#prompts-leaderboard")).to_contain_text("base")
    expect()(page.locator("#prompts-best")).to_contain_text("prompt #")
    page.wait_for_timeout(500)  # the plots draw after the table
    shot(page, "prompts", full_page=True)


def test_export_a_file(page: Any, browser_app: RunningApp) -> None:
    open_tab(page, "Export")
    page.locator("#export-go").click()
    expect()(page.locator("#export-status")).to_contain_text("Exported")
    link = page.locator("#export-file a").first
    with page.expect_download() as download_info:
        link.click()
    path = download_info.value.path()
    content = Path(path).read_text(encoding="utf-8")
    assert "News summaries" in content
    assert "Summarize the following news article" in content
    shot(page, "export")


def test_inspect_shows_every_call(page: Any, browser_app: RunningApp) -> None:
    open_tab(page, "Inspect")
    expect()(page.locator("#inspect-summary")).to_contain_text("calls")
    project = browser_app.context.store.projects.find("News summaries")
    calls = browser_app.context.store.calls.list(project.id)
    assert calls
    page.locator("#inspect-table [role=gridcell]").nth(2).click()
    expect()(page.locator("#inspect-detail")).to_contain_text("messages")
    shot(page, "inspect")


def test_script_in_an_input_never_runs(browser: Any, browser_app: RunningApp) -> None:
    from promptopt.projects import create_project

    store = browser_app.context.store
    create_project(
        store,
        "xss <b>bold</b>",
        "Summarize <script>window.__xss = 3</script>:\n{input}",
        task='<img src=x onerror="window.__xss = 4">',
        inputs=[XSS, f"second {XSS}"],
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        load(page, browser_app.url)
        page.locator("#project-open").locator("..").locator("input").first.click()
        page.get_by_role("option", name=re.compile("xss")).click()
        page.locator("#project-open").click()
        expect()(page.locator("#banner")).to_contain_text("xss")
        open_tab(page, "Compare")
        text = wait_value(page, "#compare-input textarea")
        assert "<script>" in text  # shown literally, as text
        wait_value(page, "#compare-left textarea")
        unfocus(page)
        page.keyboard.press("1")
        expect()(page.locator("#compare-counter")).to_contain_text("Votes: 1")
        open_tab(page, "Edit")
        page.locator("#edit-next").click()
        expect()(page.locator("#edit-status")).to_contain_text("Edit the output")
        box = page.locator("#edit-output textarea")
        box.fill(XSS + " edited")
        box.press("Control+Enter")
        expect()(page.locator("#edit-inferred")).to_contain_text("Inferred preference")
        for tab in ("Profile", "Prompts", "Inspect", "Project"):
            open_tab(page, tab)
            page.wait_for_timeout(300)
        assert page.evaluate("() => window.__xss") is None
        assert dialogs == []
        shot(page, "xss-safe")
    finally:
        context.close()
