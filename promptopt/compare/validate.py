"""The validator every candidate prompt passes before it joins the pool, whatever wrote it.

Rules, cheapest first: exactly one ``{input}`` (appended when missing); no leftover markup or
template syntax (XML-like tags, ``#hashtags``, ``{{ }}``, ``{% %}``, ``##``, code fences, chat
tokens); no other ``{placeholders}``; no talk about the template itself ("placeholder",
"template") unless the base prompt does so; a length within a sane ratio of the base prompt; and
on-task: MiniLM cosine similarity to the base prompt (or the project's task) at or above a
threshold measured on the shared prompt pools (``python -m promptopt.compare.validate_measure``).
A refusal carries its reason, which the caller stores (``store.rejections``) and shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from promptopt.generation import PLACEHOLDER
from promptopt.storage import ValidationError

# Measured with MiniLM on the 15 shared prompt pools (python -m promptopt.compare.validate_measure):
# at 0.35, 98.8% of the 2,884 paraphrases the source marked as the same task stay above it against
# their pool's default prompt, and 99.3% of 150 junk pairs (weak-model ramblings, unrelated
# instructions) fall below it; prompts of neighbouring tasks (which word has more / fewer letters)
# are too close to separate by similarity (36% refused), which is not this check's job.
ON_TASK_THRESHOLD = 0.35


def threshold_for(embedder_name: str) -> float:
    """The on-task threshold for an embedder. The hashed bag-of-words test fake has no meaning
    to measure, so it gets none (-1: every candidate passes that one rule); any real sentence
    embedder gets the MiniLM measurement."""
    return -1.0 if embedder_name.startswith("fake") else ON_TASK_THRESHOLD


MIN_LENGTH_RATIO = 0.25  # a candidate's instruction words over the base prompt's
MAX_LENGTH_RATIO = 5.0
MIN_WORDS = 3
LENGTH_SLACK_WORDS = 40

_MARKUP = [
    (re.compile(r"</?\s*[A-Za-z_][\w-]*\s*/?>"), "an XML/HTML-like tag"),
    (re.compile(r"(?<![\w#])#[A-Za-z_][\w]*"), "a #hashtag-style template marker"),
    (re.compile(r"\{\{|\}\}"), "double braces {{ }}"),
    (re.compile(r"\{%|%\}"), "template-engine syntax {% %}"),
    (re.compile(r"(?m)^\s*##|##\s*\w"), "'##' markers"),
    (re.compile(r"```"), "a code fence"),
    (re.compile(r"<\|[^|]*\|>|\[/?INST\]"), "a chat-format token"),
]
# Single-brace slots; "{{x}}" is literal text in most template syntaxes (and a markup rule above).
_OTHER_PLACEHOLDER = re.compile(r"(?<!\{)\{[^{}\s]{1,40}\}(?!\})")
_META_TALK = re.compile(r"\b(placeholders?|templates?)\b", re.IGNORECASE)


class CandidateRejected(ValidationError):
    """A candidate prompt the validator refused; the message is the reason, stored and shown."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Candidate refused: {reason}.")
        self.reason = reason


@dataclass(frozen=True)
class Verdict:
    ok: bool
    text: str  # the candidate as it would be stored ({input} appended when it was missing)
    reason: str = ""
    similarity: float | None = None


def leftover_placeholders(text: str, base: str = "") -> list[str]:
    """``{name}`` slots other than ``{input}`` (and than those the base prompt itself has)."""
    return [p for p in _OTHER_PLACEHOLDER.findall(text) if p != PLACEHOLDER and p not in base]


def _instruction_words(text: str) -> int:
    return len(text.replace(PLACEHOLDER, " ").split())


def check_syntax(text: str, base: str) -> Verdict:
    """Every rule that needs no embedding."""
    text = (text or "").strip()
    if not text:
        return Verdict(False, text, "empty")
    count = text.count(PLACEHOLDER)
    if count == 0:
        text = f"{text.rstrip()}\n\n{PLACEHOLDER}"
    elif count > 1:
        return Verdict(False, text, f"{PLACEHOLDER} appears {count} times; it must appear once")
    for pattern, what in _MARKUP:
        found = pattern.search(text)
        if found is not None and found.group(0) not in base:
            return Verdict(False, text, f"leftover markup: {what} ({found.group(0)!r})")
    others = leftover_placeholders(text, base)
    if others:
        return Verdict(
            False, text, f"other placeholder(s) {', '.join(others)}: only {PLACEHOLDER} is filled"
        )
    talk = _META_TALK.search(text)
    if talk is not None and not _META_TALK.search(base):
        return Verdict(
            False, text, f"talks about the prompt itself ({talk.group(0)!r}) instead of the task"
        )
    words, base_words = _instruction_words(text), max(1, _instruction_words(base))
    if words < MIN_WORDS:
        return Verdict(False, text, f"too short ({words} words of instruction)")
    # Ratios alone would pin a one-word base prompt ("Summarize: {input}") to five words.
    low = MIN_LENGTH_RATIO * base_words
    high = max(MAX_LENGTH_RATIO * base_words, base_words + LENGTH_SLACK_WORDS)
    if words < low or words > high:
        return Verdict(
            False,
            text,
            f"length {words} words is outside {low:.0f}-{high:.0f} for a base prompt of "
            f"{base_words} words",
        )
    return Verdict(True, text)


def _strip(text: str) -> str:
    return text.replace(PLACEHOLDER, " ").strip()


class Validator:
    """Syntax rules plus on-task similarity; ``embed`` returns L2-normalised rows."""

    def __init__(
        self, embed: Callable[[list[str]], np.ndarray], threshold: float = ON_TASK_THRESHOLD
    ) -> None:
        self.embed = embed
        self.threshold = threshold

    def check(self, text: str, base: str, task: str = "") -> Verdict:
        verdict = check_syntax(text, base)
        if not verdict.ok:
            return verdict
        anchors = [_strip(base)] + ([task.strip()] if task.strip() else [])
        vectors = self.embed([_strip(verdict.text), *anchors])
        similarity = float(np.max(vectors[1:] @ vectors[0]))
        if similarity < self.threshold:
            return Verdict(
                False,
                verdict.text,
                f"off-task: similarity {similarity:.2f} to the base prompt"
                f"{' and task' if task.strip() else ''} is below {self.threshold:.2f}",
                similarity,
            )
        return Verdict(True, verdict.text, similarity=similarity)
