"""Proposal operators that need no capable LLM, beside the LLM's rephrase / induce / revise.

- GrIPS-style phrase edits of the leaders (Prasad et al. 2022, "GrIPS: Gradient-free, Edit-based
  Instruction Search"): the instruction is split into phrases and one is deleted, two are
  swapped, or a phrase from another candidate of the pool is added.
- A curated library of directives (length, format, audience, tone, structure) appended to a
  leader's instruction.
- The annotator's verified (or pinned) Edit preferences written into a leader ("... Use bullet
  points, at most 40 words.").

Each candidate records its operator as the prompt's origin (``grips-delete``, ``grips-swap``,
``grips-add``, ``directive``, ``preference``), which the leaderboard shows; every one still passes
the validator when it is added.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from promptopt.generation import PLACEHOLDER

OPERATORS = ("grips-delete", "grips-swap", "grips-add", "directive", "preference")

DIRECTIVES: dict[str, tuple[str, ...]] = {
    "length": (
        "Keep it under 50 words.",
        "Answer in at most three sentences.",
        "Be thorough: cover every important point.",
    ),
    "format": (
        "Use bullet points.",
        "Use numbered steps.",
        "Write one short paragraph.",
    ),
    "audience": (
        "Write for a general reader with no background.",
        "Write for an expert in the field.",
    ),
    "tone": (
        "Use a neutral, factual tone.",
        "Use a warm, friendly tone.",
    ),
    "structure": (
        "Start with the main point.",
        "End with a one-sentence takeaway.",
    ),
}

# Sentences and clauses, not commas: a comma split turns "Use a warm, friendly tone." into two
# fragments that read as junk once moved (seen with the offline model's pool).
_PHRASE_SPLIT = re.compile(r"(?<=[.!?;:])\s+")


@dataclass(frozen=True)
class Draft:
    origin: str  # the operator
    parent_id: int | None
    text: str
    detail: str = ""  # what the operator did, for the prompt's meta


def split_template(template: str) -> tuple[str, str]:
    """(instruction before the input, the rest from ``{input}`` on)."""
    at = template.find(PLACEHOLDER)
    if at < 0:
        return template.strip(), ""
    return template[:at], template[at:]


def phrases(instruction: str) -> list[str]:
    return [p.strip() for p in _PHRASE_SPLIT.split(instruction.strip()) if p.strip()]


def _join(parts: Sequence[str], head: str, tail: str) -> str:
    """Rebuild a template, keeping the whitespace that separated instruction and input."""
    gap = head[len(head.rstrip()) :] or ("\n\n" if tail else "")
    body = " ".join(parts).strip()
    if body and body[-1] not in ".!?:;" and tail:
        body += "."
    return f"{body}{gap}{tail}" if tail else body


def with_sentence(template: str, sentence: str) -> str:
    head, tail = split_template(template)
    parts = phrases(head)
    if parts and parts[-1][-1] not in ".!?":
        parts[-1] = parts[-1].rstrip(":;,") + "."
    return _join([*parts, sentence], head, tail)


def grips_delete(template: str, rng: random.Random) -> tuple[str, str] | None:
    head, tail = split_template(template)
    parts = phrases(head)
    if len(parts) < 2:
        return None
    k = rng.randrange(len(parts))
    return _join(parts[:k] + parts[k + 1 :], head, tail), f"deleted {parts[k]!r}"


def grips_swap(template: str, rng: random.Random) -> tuple[str, str] | None:
    head, tail = split_template(template)
    parts = phrases(head)
    if len(parts) < 2:
        return None
    i, j = rng.sample(range(len(parts)), 2)
    parts[i], parts[j] = parts[j], parts[i]
    return _join(parts, head, tail), f"swapped phrases {i + 1} and {j + 1}"


def grips_add(template: str, donors: Sequence[str], rng: random.Random) -> tuple[str, str] | None:
    """Add a phrase another candidate of the pool has and this one lacks."""
    head, tail = split_template(template)
    own = {p.lower() for p in phrases(head)}
    pool = [p for d in donors for p in phrases(split_template(d)[0]) if p.lower() not in own]
    if not pool:
        return None
    phrase = rng.choice(pool)
    parts = phrases(head)
    k = rng.randrange(len(parts) + 1)
    return _join([*parts[:k], phrase, *parts[k:]], head, tail), f"added {phrase!r}"


def preference_sentence(preferences: Sequence[str]) -> str:
    """Verified preferences as one instruction sentence: "Use bullet points, at most 40 words."."""
    joined = ", ".join(p.strip().rstrip(".") for p in preferences if p.strip())
    if not joined:
        return ""
    starts_with_verb = joined.split()[0].lower() in {
        "use", "write", "start", "end", "address", "keep", "leave", "avoid", "be", "no",
    }  # fmt: skip
    text = joined if starts_with_verb else f"Follow these preferences: {joined}"
    return text[0].upper() + text[1:] + "."


def model_free_candidates(
    leaders: Sequence[tuple[int, str]],
    pool: Sequence[str],
    preferences: Sequence[str],
    n: int,
    rng: random.Random,
    operators: Sequence[str] = OPERATORS,
) -> list[Draft]:
    """Up to ``n`` candidates from the leaders ((id, text), best first), cycling through the
    operators; duplicates of the pool or of each other are skipped."""
    if n < 1 or not leaders:
        return []
    seen = {t.strip() for t in pool}
    directives = [d for group in DIRECTIVES.values() for d in group]
    rng.shuffle(directives)
    sentence = preference_sentence(preferences)
    order = [op for op in OPERATORS if op in operators and (op != "preference" or sentence)]
    if "preference" in order:  # the user's own verified preferences first: the surest bet
        order.remove("preference")
        order.insert(0, "preference")
    out: list[Draft] = []
    attempts = 0
    while len(out) < n and order and attempts < n * 6:
        op = order[attempts % len(order)]
        parent_id, parent = leaders[(attempts // len(order)) % len(leaders)]
        attempts += 1
        made: tuple[str, str] | None
        if op == "grips-delete":
            made = grips_delete(parent, rng)
        elif op == "grips-swap":
            made = grips_swap(parent, rng)
        elif op == "grips-add":
            made = grips_add(parent, [t for t in pool if t != parent], rng)
        elif op == "directive":
            directive = directives[attempts % len(directives)]
            made = (with_sentence(parent, directive), f"directive {directive!r}")
        else:
            made = (with_sentence(parent, sentence), "verified preferences")
        if made is None or made[0].strip() in seen:
            continue
        seen.add(made[0].strip())
        out.append(Draft(op, parent_id, made[0], made[1]))
    return out
