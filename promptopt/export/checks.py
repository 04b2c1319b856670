"""Observable preferences as checks in exports: promptfoo asserts an eval can run as-is.

Each observable fact (promptopt.edit.observe) becomes one JavaScript assertion over ``output``
that mirrors its Python checker, named after the preference so promptfoo's report reads like the
profile. Only the preferences an export carries (pinned or verified) become checks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from promptopt.storage.models import Preference

_MARKER = r"^\s*([-*•]|\d+[.)])\s+"
_FIRST = r"\b(I|me|my|mine|myself|we|us|our|ours|ourselves)\b"
_SECOND = r"\b(you|your|yours|yourself)\b"


def _js(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _lines(test: str) -> str:
    return f"output.trim().split(/\\n+/).filter(l => l.trim()).every(l => {test})"


def fact_expression(kind: str, value: str) -> str | None:
    """The JavaScript expression of one fact's checker, or None for an unknown kind."""
    words = "output.split(/\\s+/).filter(w => w && !/^([-*•]|\\d+[.)])$/.test(w)).length"
    exprs = {
        "max_words": f"{words} <= {value}",
        "max_sentences": (
            f"output.split(/\\n/).map(l => l.replace(/{_MARKER}/, '').trim()).filter(l => l)"
            f".flatMap(l => l.split(/(?<=[.!?])\\s+/)).filter(s => s.trim()).length <= {value}"
        ),
        "bullets": _lines("/^\\s*[-*•]\\s+/.test(l)"),
        "numbered": _lines("/^\\s*\\d+[.)]\\s+/.test(l)"),
        "plain": f"!output.split(/\\n/).some(l => /{_MARKER}/.test(l))",
        "no_char": f"!output.includes({_js(value)})",
        "no_markdown": "!/\\*\\*|__|^\\s*#+\\s*/m.test(output)",
        "no_caps": "!/\\b[A-Z]{4,}\\b/.test(output)",
        "second_person": f"/{_SECOND}/i.test(output) && !/{_FIRST}/i.test(output)",
        "no_first_person": f"!/{_FIRST}/i.test(output)",
        "start_with": (
            f"output.trim().split(/\\n/)[0].replace(/{_MARKER}/, '').startsWith({_js(value)})"
        ),
        "end_question": "output.trim().endsWith('?')",
        "end_with": f"output.trim().endsWith({_js(value)})",
        "replace": f"!output.toLowerCase().includes({_js(value.split(chr(9))[0].lower())})",
        "remove": f"!output.toLowerCase().includes({_js(value.lower())})",
    }
    return exprs.get(kind)


def promptfoo_asserts(preferences: Sequence[Preference]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for pref in preferences:
        if pref.kind != "observable" or not pref.spec:
            continue
        expr = fact_expression(str(pref.spec.get("kind")), str(pref.spec.get("value", "")))
        if expr is not None:
            out.append({"type": "javascript", "value": expr, "metric": pref.text})
    return out
