"""A launched app (fake LLM, fake embedder) per module, and per test a fresh chromium page with a
project of its own, so that the tests pass in any order and alone."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from promptopt.chromium import find_chromium, required_in_ci
from promptopt.projects import SAMPLES_DIR, create_project
from promptopt.ui.harness import CHROMIUM_ARGS, RunningApp, running_app

NEWS = json.loads((SAMPLES_DIR / "news-summaries.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def browser_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("browser") / "app.db") as app:
        yield app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = find_chromium()
    if chromium is None:
        message = "no chromium found (install Debian's chromium: apt-get install chromium)"
        if required_in_ci():
            pytest.fail(f"{message}; CI=true, so the browser tests may not skip")
        pytest.skip(message)
    # A dev dependency, not one of our modules: a missing one is an error in CI like chromium.
    if required_in_ci():
        import playwright.sync_api as playwright_api
    else:
        playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, browser_app: RunningApp) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def open_project(page: Any, browser_app: RunningApp) -> Callable[..., int]:
    """Create a copy of the news sample under ``name`` (with ``inputs`` of its own, if given)
    and open it in this test's page."""
    from playwright.sync_api import expect

    def opener(name: str, inputs: list[str] | None = None) -> int:
        project = create_project(
            browser_app.store,
            name,
            NEWS["template"],
            task=NEWS["task"],
            inputs=inputs or NEWS["inputs"],
            examples=NEWS["examples"],
        )
        page.goto(browser_app.url)
        expect(page.locator("#banner")).to_contain_text("annotator")
        page.locator("#project-open").locator("..").locator("input").first.click()
        page.get_by_role("option", name=re.compile(re.escape(name))).click()
        page.locator("#project-open").click()
        expect(page.locator("#banner")).to_contain_text(name)
        return project.id

    return opener
