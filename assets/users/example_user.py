"""An example simulated user for `promptopt bench edit --user python:FILE[:CLASS]`.

The protocol: ``User(seed)`` with ``preference(kind) -> str`` (the latent preference in words,
used by the ``oracle`` method) and ``edit(kind, document, output) -> str`` (the revision; the
output returned unchanged means "accept"). This user's preferences are not in the rule user's
catalogue, so the benchmark's fake agent cannot know them: it wants plain prose without
exclamation marks or markdown, a word limit that depends on the kind (drawn from the seed), and
"In short:" in front of news summaries.

Run: promptopt bench edit --user python:assets/users/example_user.py --agent fake
"""

from __future__ import annotations

import random
import re

_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        line = _MARKER.sub("", line.replace("**", "").lstrip("# ")).strip()
        out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


class User:
    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.limits = {"news": rng.choice([30, 40]), "other": rng.choice([40, 50])}

    def _limit(self, kind: str) -> int:
        return self.limits["news" if "cnndm" in kind or "news" in kind else "other"]

    def preference(self, kind: str) -> str:
        opening = "start with 'In short:', " if self._limit(kind) == self.limits["news"] else ""
        return (
            f"{opening}plain prose without lists or markdown, no exclamation marks, "
            f"at most {self._limit(kind)} words"
        )

    def edit(self, kind: str, document: str, output: str) -> str:
        kept: list[str] = []
        used = 0
        for sentence in _sentences(output.replace("!", ".")):
            size = len(sentence.split())
            if kept and used + size > self._limit(kind):
                break
            kept.append(sentence)
            used += size
        text = " ".join(kept)
        news = "cnndm" in kind or "news" in kind
        if news and text and not text.startswith("In short:"):
            text = f"In short: {text}"
        return text
