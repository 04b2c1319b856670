"""Screens that fit at 1280x800: no screen scrolls sideways, no table is wider than its box (long
text wraps inside its cell), no header breaks inside a word, and the small things a new user
meets first read right (empty id boxes, "1 vote", a hint on Edit, no empty JSON box)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

LONG = (
    "The city council voted on Tuesday to approve a new transit plan that extends the light rail "
    "line to the airport, adds three express bus routes and a protected bike lane network, "
    "funded by a regional sales tax increase that voters approved last spring after a long "
    "campaign by residents of the eastern districts."
)
LONG_PROMPT = (
    "You are a careful news editor. Read the article below and write a summary of two or three "
    "sentences that names who did what, when and where, keeps every number exact, leaves out "
    "opinions and quotes, and ends with the single most important consequence.\n\n{input}"
)

# For each visible table: is it wider than the box it scrolls in, does a cell clip its text with
# an ellipsis, does a header take more lines than it has words (broken inside a word)?
MEASURE = """() => {
  const out = {page: [document.documentElement.scrollWidth, window.innerWidth], tables: []};
  for (const table of document.querySelectorAll('table')) {
    if (!table.offsetParent) continue;
    let box = table.parentElement;
    while (box && box !== document.body) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(box).overflowX)) break;
      box = box.parentElement;
    }
    const owner = table.closest('[id]');
    const entry = {id: owner ? owner.id : '?', problems: []};
    if (box && box !== document.body && box.scrollWidth > box.clientWidth + 1)
      entry.problems.push(`wider than its box: ${box.scrollWidth} > ${box.clientWidth}`);
    for (const cell of table.querySelectorAll('td, th')) {
      const text = (cell.innerText || '').trim();
      if (!text) continue;
      for (const el of [cell, ...cell.querySelectorAll('*')]) {
        if (getComputedStyle(el).textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1)
          entry.problems.push(`cell cut short: ${text.slice(0, 40)}`);
      }
      if (cell.tagName !== 'TH') continue;
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      const tops = new Set();
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        for (const r of range.getClientRects()) if (r.width > 0) tops.add(Math.round(r.top));
      }
      if (tops.size > text.split(/\\s+/).length)
        entry.problems.push(`header "${text}" breaks inside a word (${tops.size} lines)`);
    }
    out.tables.push(entry);
  }
  return out;
}"""


def check_fits(page: Any, screen: str) -> list[str]:
    page.wait_for_timeout(500)  # the tables lay out after their data arrives
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"fit-{screen.lower()}.png"), full_page=True)
    found = page.evaluate(MEASURE)
    width, inner = found["page"]
    assert width <= inner, f"{screen}: the page scrolls sideways ({width} > {inner})"
    bad = [t for t in found["tables"] if t["problems"]]
    assert not bad, f"{screen}: " + json.dumps(bad)[:2000]
    return [t["id"] for t in found["tables"]]


def open_tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def test_every_screen_fits_1280x800(page: Any, open_project: Callable[..., int]) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1280, "height": 800})
    open_project("Layout: screens that fit", [LONG, LONG + " Second input."])
    expect(page.locator("#project-inputs")).to_contain_text("transit plan")
    assert "project-inputs" in check_fits(page, "Project")

    open_tab(page, "Edit")
    expect(page.locator("#edit-status")).to_contain_text("Press n")
    check_fits(page, "Edit")

    open_tab(page, "Prompts")
    assert page.locator("#prompts-id input, #prompts-id textarea").first.input_value() == ""
    page.locator("#prompts-own textarea").fill(LONG_PROMPT)
    page.locator("#prompts-add").click()
    expect(page.locator("#prompts-leaderboard")).to_contain_text("careful news editor")

    open_tab(page, "Compare")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#compare-left textarea, #compare-right textarea')]"
        ".every(t => t.value.length > 0)",
        timeout=20_000,
    )
    check_fits(page, "Compare")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("1")
    expect(page.locator("#compare-best")).to_contain_text("after 1 vote", timeout=20_000)
    expect(page.locator("#compare-best")).not_to_contain_text("1 votes")

    open_tab(page, "Prompts")
    expect(page.locator("#prompts-best")).to_contain_text("after 1 vote")
    expect(page.locator("#prompts-best")).not_to_contain_text("1 votes")
    assert "prompts-leaderboard" in check_fits(page, "Prompts")

    open_tab(page, "Profile")
    assert page.locator("#profile-id input, #profile-id textarea").first.input_value() == ""
    check_fits(page, "Profile")
    open_tab(page, "Export")
    check_fits(page, "Export")
    open_tab(page, "Inspect")
    expect(page.locator("#inspect-summary")).to_contain_text("calls")
    assert page.locator("#inspect-detail").is_hidden()  # no empty "{..}" before a click
    assert "inspect-table" in check_fits(page, "Inspect")
    page.locator("#inspect-table [role=gridcell]").nth(2).click()
    expect(page.locator("#inspect-detail")).to_contain_text("messages")
