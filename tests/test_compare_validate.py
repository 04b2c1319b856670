"""The candidate validator, the model-free proposal operators, and proposals with a junk LLM."""

from __future__ import annotations

import random
import re
from typing import Any

import numpy as np
import pytest

from promptopt.compare import CompareService
from promptopt.compare.operators import (
    grips_add,
    grips_delete,
    grips_swap,
    model_free_candidates,
    preference_sentence,
    with_sentence,
)
from promptopt.compare.validate import Validator, check_syntax
from promptopt.llm.base import LLMRequest

BASE = "Summarize this news article in a few sentences. Keep the key facts.\n\n{input}"
# What the offline model proposed in a real session (issue 11's walk).
SCREENSHOT_JUNK = [
    "News article Template: #news_item {input} {content} {source} ##Summary #remark </template>",
    "The current news article is reformatted to 8 words and its placeholder is {input}.",
    "{input} {input} summarize",
    "<template>Summarize {input}</template>",
    "Summarize {{input}} briefly",
    "Summarize the article {input} {% if short %}briefly{% endif %}",
]


@pytest.mark.parametrize("junk", SCREENSHOT_JUNK)
def test_junk_from_the_screenshots_is_refused_with_a_reason(junk: str) -> None:
    verdict = check_syntax(junk, BASE)
    assert not verdict.ok and verdict.reason


def test_good_candidates_pass_and_missing_input_is_appended() -> None:
    ok = check_syntax("Summarize the article in three bullet points.", BASE)
    assert ok.ok and ok.text.endswith("\n\n{input}")
    assert check_syntax("Write a two-sentence summary of {input} for a busy reader.", BASE).ok


def test_length_ratio_and_tags_already_in_the_base() -> None:
    assert "length" in check_syntax("Summarize " + "very " * 200 + "{input}", BASE).reason
    tagged = "Summarize the article.\n<article>{input}</article>"
    assert check_syntax(tagged.replace("article.", "article briefly."), tagged).ok


def _bow(texts: list[str]) -> np.ndarray:
    """Tiny bag-of-words embedding: enough to tell on-task from off-task in a unit test."""
    vocab = sorted({w for t in texts for w in re.findall(r"[a-z]{4,}", t.lower())})
    out = np.array([[t.lower().count(w) for w in vocab] for t in texts], dtype=np.float32) + 1e-6
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_off_task_candidate_is_refused_by_similarity() -> None:
    validator = Validator(_bow, threshold=0.3)
    assert validator.check("Summarize the news article briefly. {input}", BASE).ok
    off = validator.check("Write a poem about the sea at night. {input}", BASE)
    assert not off.ok and off.reason.startswith("off-task")


@pytest.mark.slow
def test_measured_threshold_with_minilm_separates_on_and_off_task() -> None:
    from promptopt.embeddings import create_embedder

    embedder = create_embedder("default")
    validator = Validator(embedder.encode)
    assert validator.check("Condense the article into three short sentences.\n\n{input}", BASE).ok
    assert not validator.check("Translate the following sentence into French.\n\n{input}", BASE).ok
    assert not validator.check("List three prime numbers above one hundred.\n\n{input}", BASE).ok


# -- operators ----------------------------------------------------------------------------------
def test_grips_edits_keep_the_input_and_change_the_instruction() -> None:
    rng = random.Random(0)
    deleted = grips_delete(BASE, rng)
    swapped = grips_swap(BASE, rng)
    added = grips_add(BASE, ["Use plain words. Answer in English.\n\n{input}"], rng)
    for made in (deleted, swapped, added):
        assert made is not None
        text, detail = made
        assert text.count("{input}") == 1 and text != BASE and detail
    assert grips_delete("Summarize {input}", rng) is None  # one phrase: nothing to delete


def test_directives_and_preferences_are_written_into_the_leader() -> None:
    assert with_sentence(BASE, "Use bullet points.") == (
        "Summarize this news article in a few sentences. Keep the key facts. "
        "Use bullet points.\n\n{input}"
    )
    assert preference_sentence(["bullet points", "at most 40 words"]) == (
        "Follow these preferences: bullet points, at most 40 words."
    )
    assert preference_sentence(["use plain words"]) == "Use plain words."
    drafts = model_free_candidates([(1, BASE)], [BASE], ["bullet points"], 5, random.Random(0))
    assert drafts[0].origin == "preference" and "bullet points" in drafts[0].text
    assert len({d.text for d in drafts}) == len(drafts) == 5
    assert {d.origin for d in drafts} >= {"preference", "grips-delete", "directive"}


# -- the whole propose path with a model that writes junk half the time -------------------------
class HalfJunk:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, request: LLMRequest) -> str:
        self.n += 1
        if self.n % 2:
            return SCREENSHOT_JUNK[self.n % len(SCREENSHOT_JUNK)]
        return f"Summarize this news article in {self.n} short sentences.\n\n{{input}}"


def test_twenty_proposals_with_a_junk_llm_leave_only_clean_candidates(
    store: Any, client: Any, fake_llm: Any, fake_embedder: Any
) -> None:
    fake_llm.default = HalfJunk()
    project = store.projects.create("p", BASE, generator_model="fake", optimizer_model="fake")
    store.inputs.add(project.id, "The council met on Tuesday.")
    svc = CompareService(store, client, fake_embedder)
    messages: list[str] = []
    for _ in range(5):
        svc.propose(project.id, "ann", n=4, progress=lambda f, m: messages.append(m))
    pool = store.prompts.list(project.id)
    for prompt in pool:
        assert check_syntax(prompt.text, BASE).ok, prompt.text
    rejections = store.rejections.list(project.id)
    assert rejections and all(r.reason for r in rejections)
    assert any("refused" in m for m in messages)
    origins = {p.origin for p in pool}
    assert origins & {"grips-delete", "grips-swap", "grips-add", "directive"}


def test_a_prompt_with_a_leftover_placeholder_is_not_exported(store: Any) -> None:
    from promptopt.export import export_project

    project = store.projects.create("p", BASE, generator_model="openai/gpt-4o-mini")
    junk = store.prompts.add(
        project.id, "Summarize {input} using {content} and {source}", "rephrase"
    )
    store.projects.update(project.id, prompt_id=junk.id)
    for fmt in ("markdown", "openai", "llm", "promptfoo"):
        _, text = export_project(store, project.id, fmt, None, compare=None)
        assert "{content}" not in text and "{source}" not in text
