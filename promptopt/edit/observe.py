"""Observable preferences: what an edit measurably changed, with no LLM involved.

``analyse(output, edited)`` lists the facts one edit introduced (the output failed them, the
revision satisfies them): a shorter length in words or sentences, a list or plain format, removed
exclamation marks or markdown, capitals lowered, second person, a new opening or closing, words
replaced, a phrase cut. ``aggregate`` keeps the facts that hold across an annotator's similar past
edits (the same neighbours CIPHER retrieves) as preferences with their evidence ("holds in 7 of 8
of your edits on similar inputs"). Every fact carries a checker (``Fact.check``) that any output
can be held to, and where it can be satisfied exactly without changing meaning, a ``fix``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_BULLET = re.compile(r"^\s*[-*•]\s+")
_NUMBER = re.compile(r"^\s*\d+[.)]\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MARKDOWN = re.compile(r"\*\*|__|^\s*#+\s*", re.MULTILINE)
_CAPS_WORD = re.compile(r"\b[A-Z]{4,}\b")
_FIRST_PERSON = re.compile(r"\b(I|me|my|mine|myself|we|us|our|ours|ourselves)\b", re.IGNORECASE)
_SECOND_PERSON = re.compile(r"\b(you|your|yours|yourself)\b", re.IGNORECASE)
_STRIP = ".,;:!?\"'()[]“”‘’*"

# A fact becomes a preference when the user introduced it in at least this many similar edits
# and it holds in at least this share of them (so one-off edits never become preferences).
MIN_INTRODUCED = 2
MIN_SHARE = 0.75
MAX_PHRASE_WORDS = 6  # longest replaced or removed phrase considered a habit, not a rewrite
# Punctuation a user may consistently drop, with an exact fix where one keeps the meaning.
_PUNCTUATION_FIX = {"!": ".", ";": ",", "—": None, "…": None}


def lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def sentences(text: str) -> list[str]:
    """Sentences line by line, list markers removed."""
    out: list[str] = []
    for line in lines(text):
        out.extend(s.strip() for s in _SENTENCE_END.split(_MARKER.sub("", line)) if s.strip())
    return out


def content_words(text: str) -> list[str]:
    return [w for line in lines(text) for w in _MARKER.sub("", line).split()]


def _tokens(text: str) -> list[str]:
    return [w.strip(_STRIP).lower() for w in content_words(text) if w.strip(_STRIP)]


def _is_list(text: str, marker: re.Pattern[str]) -> bool:
    found = lines(text)
    return bool(found) and all(marker.match(ln) for ln in found)


def _phrase_re(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", re.IGNORECASE)


def _first_body(text: str) -> str:
    first = lines(text)[:1]
    return _MARKER.sub("", first[0]) if first else ""


def _round_up(n: int) -> int:
    """Word limits people state are round numbers: 37 words observed -> "at most 40 words"."""
    return n if n < 10 else int(math.ceil(n / 10.0) * 10)


# -- fixes: exact, meaning-preserving edits of an output ------------------------------------
def _units(text: str) -> tuple[list[str], bool]:
    """Lines when the text is a list, else sentences; the flag says which."""
    found = lines(text)
    if len(found) > 1:
        return found, True
    return sentences(text), False


def _cut(text: str, keep: Callable[[list[str]], int]) -> str:
    units, by_line = _units(text)
    n = max(1, keep(units))  # never cut to nothing: the first unit always stays
    return ("\n" if by_line else " ").join(units[:n])


def _cut_words(text: str, limit: int) -> str:
    def keep(units: list[str]) -> int:
        used = 0
        for i, unit in enumerate(units):
            used += len(_MARKER.sub("", unit).split())
            if used > limit:
                return i
        return len(units)

    return _cut(text, keep)


def _listed(text: str, marker: Callable[[int], str]) -> str:
    return "\n".join(f"{marker(i)}{s}" for i, s in enumerate(sentences(text), 1))


def _replace(text: str, old: str, new: str) -> str:
    def swap(match: re.Match[str]) -> str:
        found = match.group(0)
        return new[:1].upper() + new[1:] if found[:1].isupper() else new

    return _phrase_re(old).sub(swap, text)


def _remove(text: str, phrase: str) -> str:
    out = _phrase_re(phrase).sub("", text)
    out = re.sub(r"[ \t]{2,}", " ", out)
    return "\n".join(ln.strip() for ln in out.splitlines())


def _prepend(text: str, prefix: str) -> str:
    all_lines = text.strip().splitlines() or [""]
    marker = _MARKER.match(all_lines[0])
    head = marker.group(0) if marker else ""
    all_lines[0] = f"{head}{prefix} {all_lines[0][len(head) :]}".rstrip()
    return "\n".join(all_lines)


def _append(text: str, closing: str) -> str:
    if _is_list(text, _BULLET):
        return f"{text.rstrip()}\n- {closing}"
    return f"{text.rstrip()} {closing}".strip()


# -- facts ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fact:
    """One observable property of a text. ``value`` is its parameter (a number, a phrase,
    or ``old\\tnew`` for a replacement)."""

    kind: str
    value: str = ""

    @property
    def phrase(self) -> str:
        v = self.value
        if self.kind == "replace":
            old, new = v.split("\t", 1)
            return f"write '{new}' instead of '{old}'"
        return {
            "max_words": f"at most {v} words",
            "max_sentences": f"at most {v} sentences",
            "bullets": "bullet points",
            "numbered": "numbered steps",
            "plain": "plain paragraphs without lists",
            "no_char": f"no '{v}'" if v not in ("!",) else "no exclamation marks",
            "no_markdown": "no markdown formatting",
            "no_caps": "no words in capitals",
            "second_person": "address the reader as you",
            "no_first_person": "no first person (I, we)",
            "start_with": f"start with '{v}'",
            "end_question": "end with a question",
            "end_with": f"end with '{v}'",
            "remove": f"leave out '{v}'",
        }[self.kind]

    @property
    def family(self) -> str:
        """Facts of one family contradict each other or merge (one word limit, one format)."""
        if self.kind in ("bullets", "numbered", "plain"):
            return "format"
        if self.kind in ("max_words", "max_sentences"):
            return self.kind
        return f"{self.kind}:{self.value}"

    def check(self, text: str) -> bool:
        v = self.value
        match self.kind:
            case "max_words":
                return len(content_words(text)) <= int(v)
            case "max_sentences":
                return len(sentences(text)) <= int(v)
            case "bullets":
                return _is_list(text, _BULLET)
            case "numbered":
                return _is_list(text, _NUMBER)
            case "plain":
                return bool(text.strip()) and not any(_MARKER.match(ln) for ln in lines(text))
            case "no_char":
                return v not in text
            case "no_markdown":
                return not _MARKDOWN.search(text)
            case "no_caps":
                return not _CAPS_WORD.search(text)
            case "second_person":
                return bool(_SECOND_PERSON.search(text)) and not _FIRST_PERSON.search(text)
            case "no_first_person":
                return not _FIRST_PERSON.search(text)
            case "start_with":
                return _first_body(text).startswith(v)
            case "end_question":
                return text.rstrip().endswith("?")
            case "end_with":
                return text.rstrip().endswith(v)
            case "replace":
                return not _phrase_re(v.split("\t", 1)[0]).search(text)
            case "remove":
                return not _phrase_re(v).search(text)
        raise ValueError(f"Unknown observable fact {self.kind!r}")

    @property
    def fixable(self) -> bool:
        if self.kind == "no_char":
            return _PUNCTUATION_FIX.get(self.value) is not None
        return self.kind in _FIXES

    def fix(self, text: str) -> str:
        """The output made to satisfy this fact exactly; unchanged when no exact fix exists
        or the text already satisfies it."""
        if not text.strip() or self.check(text) or not self.fixable:
            return text
        if self.kind == "no_char":
            return text.replace(self.value, _PUNCTUATION_FIX[self.value] or "")
        return _FIXES[self.kind](self.value, text)

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_phrase(cls, phrase: str) -> Fact | None:
        """The fact a phrase of ``Fact.phrase`` names, or None for any other phrase."""
        phrase = phrase.strip()
        for kind in _PLAIN_KINDS:
            if cls(kind, "!" if kind == "no_char" else "").phrase == phrase:
                return cls(kind, "!" if kind == "no_char" else "")
        for kind, pattern in _PHRASE_PATTERNS:
            match = pattern.fullmatch(phrase)
            if match:
                value = "\t".join(reversed(match.groups())) if kind == "replace" else match[1]
                return cls(kind, value)
        return None

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Fact:
        fact = cls(str(spec.get("kind", "")), str(spec.get("value", "")))
        fact.phrase  # noqa: B018 - raises KeyError on an unknown kind, before anyone uses it
        return fact


_PLAIN_KINDS = (
    "bullets",
    "numbered",
    "plain",
    "no_char",
    "no_markdown",
    "no_caps",
    "second_person",
    "no_first_person",
    "end_question",
)
_PHRASE_PATTERNS = (
    ("max_words", re.compile(r"at most (\d+) words")),
    ("max_sentences", re.compile(r"at most (\d+) sentences")),
    ("replace", re.compile(r"write '(.+)' instead of '(.+)'", re.DOTALL)),
    ("start_with", re.compile(r"start with '(.+)'", re.DOTALL)),
    ("end_with", re.compile(r"end with '(.+)'", re.DOTALL)),
    ("remove", re.compile(r"leave out '(.+)'", re.DOTALL)),
    ("no_char", re.compile(r"no '(.+)'", re.DOTALL)),
)

_FIXES: dict[str, Callable[[str, str], str]] = {
    "replace": lambda v, t: _replace(t, *v.split("\t", 1)),
    "remove": lambda v, t: _remove(t, v),
    "no_markdown": lambda v, t: _MARKDOWN.sub("", t),
    "no_caps": lambda v, t: _CAPS_WORD.sub(lambda m: m.group(0).capitalize(), t),
    "start_with": lambda v, t: _prepend(t, v),
    "end_with": lambda v, t: _append(t, v),
    "max_words": lambda v, t: _cut_words(t, int(v)),
    "max_sentences": lambda v, t: _cut(t, lambda units: int(v)) if int(v) > 0 else t,
    "plain": lambda v, t: " ".join(sentences(_MARKDOWN.sub("", t))),
    "bullets": lambda v, t: _listed(t, lambda i: "- "),
    "numbered": lambda v, t: _listed(t, lambda i: f"{i}. "),
}
# Content first, then openings and closings, then length, then layout: each fix keeps what the
# earlier ones established (the same order a careful person edits in).
FIX_ORDER = [
    "replace",
    "remove",
    "no_char",
    "no_markdown",
    "no_caps",
    "start_with",
    "end_with",
    "max_words",
    "max_sentences",
    "plain",
    "bullets",
    "numbered",
]


def apply_fixes(text: str, facts: Sequence[Fact]) -> str:
    for fact in sorted(facts, key=lambda f: FIX_ORDER.index(f.kind) if f.kind in FIX_ORDER else 99):
        text = fact.fix(text)
    return text


# -- analysis of one edit --------------------------------------------------------------------
def _opening(output: str, edited: str) -> str | None:
    """Words the user put in front of the output's own opening (e.g. "Verdict:")."""
    ew, ow = _first_body(edited).split(), _first_body(output).split()
    if not ew or ew[:1] == ow[:1]:
        return None
    for j in range(1, min(5, len(ew))):
        if ew[j - 1].endswith(":"):
            return " ".join(ew[:j])
        if ow and ew[j : j + 3] == ow[:3]:
            return " ".join(ew[:j])
    return None


def _closing(output: str, edited: str) -> str | None:
    """A last sentence the user added that the output did not contain."""
    last = sentences(edited)[-1:] or [""]
    closing = last[0]
    if closing and closing not in output and len(closing.split()) <= 12:
        return closing
    return None


def _word_changes(output: str, edited: str) -> list[Fact]:
    ow, ew = _tokens(output), _tokens(edited)
    out: list[Fact] = []
    matcher = difflib.SequenceMatcher(None, ow, ew, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        old, new = " ".join(ow[i1:i2]), " ".join(ew[j1:j2])
        if op == "replace" and 0 < i2 - i1 <= 2 and 0 < j2 - j1 <= 2 and old != new:
            out.append(Fact("replace", f"{old}\t{new}"))
        # A cut at the very end is a length change, not a phrase the user dislikes.
        elif op == "delete" and i2 - i1 <= MAX_PHRASE_WORDS and i2 < len(ow):
            out.append(Fact("remove", old))
    return out


def candidates(output: str, edited: str) -> list[Fact]:
    """Every fact this edit might be evidence for (not yet checked to be introduced by it)."""
    found = [
        Fact("max_words", str(len(content_words(edited)))),
        Fact("max_sentences", str(len(sentences(edited)))),
        Fact("bullets"),
        Fact("numbered"),
        Fact("plain"),
        Fact("no_markdown"),
        Fact("no_caps"),
        Fact("second_person"),
        Fact("no_first_person"),
        Fact("end_question"),
        *(Fact("no_char", c) for c in _PUNCTUATION_FIX),
        *_word_changes(output, edited),
    ]
    if (opening := _opening(output, edited)) is not None:
        found.append(Fact("start_with", opening))
    if (closing := _closing(output, edited)) is not None:
        found.append(Fact("end_with", closing))
    return found


def introduced(fact: Fact, output: str, edited: str) -> bool:
    """The user's revision made the output satisfy ``fact``."""
    if fact.kind == "max_words":  # a real cut, not a word or two of rewording
        return len(content_words(edited)) < 0.85 * len(content_words(output))
    if fact.kind == "max_sentences":
        return len(sentences(edited)) < len(sentences(output))
    return fact.check(edited) and not fact.check(output)


def analyse(output: str, edited: str) -> list[Fact]:
    """The facts one edit introduced, deduplicated by family (one word limit, one format)."""
    if output.split() == edited.split() or not edited.strip():
        return []
    return [f for f in candidates(output, edited) if introduced(f, output, edited)]


# -- across similar edits --------------------------------------------------------------------
@dataclass(frozen=True)
class Observation:
    fact: Fact
    holds: int  # edits whose revision satisfies the fact
    introduced: int  # edits in which the user made the change
    total: int  # similar edits looked at

    @property
    def evidence(self) -> str:
        return f"holds in {self.holds} of {self.total} of your edits on similar inputs"


def aggregate(
    edits: Sequence[tuple[str, str]],
    *,
    min_introduced: int = MIN_INTRODUCED,
    min_share: float = MIN_SHARE,
    endorsed: Sequence[Sequence[Fact]] = (),
) -> list[Observation]:
    """Facts that hold across ``edits`` ((output, edited) pairs, nearest first, accepted ones
    included), best supported first. Neighbours of other kinds may trail the list, so a fact is
    judged on the longest run of nearest edits in which it holds often enough. A length limit is
    the round number above the longest revision that cut. ``endorsed[n]``: facts the n-th output
    was written to meet, which count as made by the user when they accepted it unchanged."""
    introduced_by: dict[str, list[tuple[Fact, int]]] = {}
    for n, (output, edited) in enumerate(edits):
        facts = analyse(output, edited)
        # An output written with a preference and accepted as it was: the user endorsed it.
        facts += [f for f in (endorsed[n] if n < len(endorsed) else ()) if f.check(edited)]
        for fact in dict.fromkeys(facts):
            introduced_by.setdefault(fact.family, []).append((fact, n))
    found: list[Observation] = []
    for family, items in introduced_by.items():
        for fact in _merge(family, items):
            makers = sorted({n for f, n in items if f == fact or family in _LIMIT})
            holds = [bool(edited.strip()) and fact.check(edited) for _, edited in edits]
            best: Observation | None = None
            for total in range(1, len(edits) + 1):
                made = sum(1 for n in makers if n < total)
                held = sum(holds[:total])
                if made >= min_introduced and held / total >= min_share:
                    best = Observation(fact, held, made, total)
            if best is not None:
                found.append(best)
    found.sort(key=lambda o: (-o.holds, -o.introduced, o.fact.phrase))
    return _drop_contradictions(found)


def relevant(fact: Fact, edits: Sequence[tuple[str, str]]) -> bool:
    """Does a learned fact describe the user's revisions nearest to a new input? It must hold in
    the nearest one and in at least half of them."""
    holds = [bool(edited.strip()) and fact.check(edited) for _, edited in edits]
    return bool(holds) and holds[0] and sum(holds) * 2 >= len(holds)


_LIMIT = {"max_words": "max_words", "max_sentences": "max_sentences"}


def _merge(family: str, items: list[tuple[Fact, int]]) -> list[Fact]:
    kinds = {f.kind for f, _ in items}
    if family in _LIMIT:
        kind = family
        limit = max(int(f.value) for f, _ in items)
        return [Fact(kind, str(_round_up(limit) if kind == "max_words" else limit))]
    return sorted({f for f, _ in items}, key=lambda f: f.phrase) if kinds else []


def _drop_contradictions(found: list[Observation]) -> list[Observation]:
    """One list format at most (the best supported), and no fact implied by a stronger one."""
    seen_format = False
    out: list[Observation] = []
    kinds = {o.fact.kind for o in found}
    for obs in found:
        if obs.fact.family == "format":
            if seen_format:
                continue
            seen_format = True
        if obs.fact.kind == "no_first_person" and "second_person" in kinds:
            continue
        if obs.fact.kind == "end_question" and any(
            o.fact.kind == "end_with" and o.fact.value.endswith("?") for o in found
        ):
            continue
        out.append(obs)
    return out
