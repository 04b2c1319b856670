"""Turning engine results into what the components show. Presentation only: no learning logic.

Everything that came from a user or an LLM is escaped before it reaches a Markdown component
(which sanitises HTML as well), and tables use plain string cells, so no text can run script.
"""

from __future__ import annotations

import contextlib
import difflib
import html
import json
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def escape_md(text: str | None) -> str:
    """Show text literally inside Markdown: HTML escaped, Markdown syntax neutralised."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text or "", quote=False))


def plural(n: int, word: str) -> str:
    """``1 vote``, ``2 votes``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def parse_id(value: Any) -> int | None:
    """An id typed or picked into a box: empty (or not a whole number above 0) is None."""
    text = str(value).strip() if value is not None else ""
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number >= 1 and number == int(number) else None


def shorten(text: str | None, limit: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def word_diff(original: str, edited: str) -> list[tuple[str, str | None]]:
    """Word-level diff for ``gr.HighlightedText``: ("-") removed words, ("+") added words."""
    a, b = original.split(), edited.split()
    out: list[tuple[str, str | None]] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append((" ".join(a[i1:i2]) + " ", None))
            continue
        if op in ("delete", "replace"):
            out.append((" ".join(a[i1:i2]) + " ", "-"))
        if op in ("insert", "replace"):
            out.append((" ".join(b[j1:j2]) + " ", "+"))
    return out


def leaderboard_rows(rows: Sequence[Any], project_prompt_id: int | None) -> list[list[Any]]:
    out: list[list[Any]] = []
    for rank, row in enumerate(rows, start=1):
        prompt = row.prompt
        win_rate = "–" if row.win_rate is None else f"{row.win_rate:.0%}"
        mark = " ★" if prompt.id == project_prompt_id else ""
        out.append(
            [
                rank,
                prompt.id,
                f"{row.utility:+.2f} ± {row.uncertainty:.2f}",
                row.votes,
                win_rate,
                f"{prompt.origin}{mark}",
                shorten(prompt.text, 2000),  # wrapped in its cell: read whole
            ]
        )
    return out


LEADERBOARD_HEADERS = ["rank", "id", "utility ± sd", "votes", "win rate", "origin", "prompt"]


_KINDS = {"observable": "observed", "inferred": "inferred (LLM)", "user": "yours"}


def profile_rows(entries: Iterable[Any]) -> list[list[Any]]:
    """One row per preference: what it is, the evidence for it, whether it is applied."""
    out: list[list[Any]] = []
    for entry in entries:
        pref = entry.preference
        evidence = pref.evidence.get("text") or f"from {entry.sources} round(s)"
        reason = (pref.evidence.get("verification") or {}).get("reason") or ""
        status = "deleted" if pref.deleted else entry.status
        fix = ("on" if pref.fix else "off") if entry.fixable else ""
        out.append(
            [
                pref.id,
                pref.text,
                _KINDS.get(pref.kind, pref.kind),
                evidence,
                status + (f": {reason}" if reason and not pref.pinned else ""),
                fix,
            ]
        )
    return out


PROFILE_HEADERS = ["id", "preference", "kind", "evidence", "status", "exact fix"]


def call_rows(calls: Iterable[Any]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for call in calls:
        tokens = f"{call.prompt_tokens or 0} + {call.completion_tokens or 0}"
        cost = "" if call.cost is None else f"${call.cost:.5f}"
        latency = "cached" if call.cached else f"{(call.latency_ms or 0):.0f} ms"
        out.append(
            [
                call.id,
                (call.created_at or "")[:19].replace("T", " "),
                call.purpose or "",
                call.model,
                tokens,
                cost,
                latency,
                shorten(call.error, 400) if call.error else "ok",
            ]
        )
    return out


def rejection_rows(rejections: Iterable[Any]) -> list[list[Any]]:
    return [
        [r.id, (r.created_at or "")[:19].replace("T", " "), r.origin or "", r.reason, r.text]
        for r in rejections
    ]


REJECTION_HEADERS = ["id", "time", "origin", "reason", "candidate"]


CALL_HEADERS = ["id", "time", "purpose", "model", "tokens (in + out)", "cost", "latency", "status"]


def call_detail(call: Any) -> dict[str, Any]:
    """The full record of one LLM call, for ``gr.JSON`` (renders text, never HTML)."""
    return {
        "id": call.id,
        "model": call.model,
        "purpose": call.purpose,
        "params": call.params,
        "messages": call.messages,
        "output": call.output,
        "tokens": {"prompt": call.prompt_tokens, "completion": call.completion_tokens},
        "cost": call.cost,
        "latency_ms": call.latency_ms,
        "cached": bool(call.cached),
        "error": call.error,
        "created_at": call.created_at,
    }


def preview_text(content: str, limit: int = 20_000) -> str:
    """An export shown in the page: pretty JSON when it is JSON, cut when it is huge."""
    with contextlib.suppress(ValueError, TypeError):
        content = json.dumps(json.loads(content), indent=2, ensure_ascii=False)
    return content if len(content) <= limit else content[:limit] + "\n… (cut; download the file)"


class Rate:
    """Elapsed time and tokens/s of a wait, from the deltas streamed so far (one delta is about
    one token); the rate is known once tokens have flowed for a second."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._first: tuple[float, int] | None = None

    def text(self, what: str, tokens: int = 0) -> str:
        now = time.perf_counter()
        line = f"⏳ {what} {now - self.started:.0f} s"
        if tokens and self._first is None:
            self._first = (now, tokens)
        if self._first is not None and now - self._first[0] >= 1.0:
            rate = (tokens - self._first[1]) / (now - self._first[0])
            line += f" · {tokens} tokens so far, {rate:.1f} tokens/s"
        return line
