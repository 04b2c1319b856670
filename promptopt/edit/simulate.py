"""Simulated users for the Edit benchmark, and an instruction-following fake agent.

- ``RuleUser``: deterministic; each document kind has a latent preference made of checkable
  rules (bullet points, at most N words, no exclamation marks, ...). Its edit applies every rule,
  in a fixed order, so an output that already follows the preference is left untouched
  (``edit(edit(x)) == edit(x)``). Preferences per kind come from a JSON file (``users/default.json``
  is the default), so new users need no code.
- ``LLMUser``: the reference protocol: ask a model whether the output already fits the latent
  preference; if not, have it rewrite the output to fit.
- ``FakeAgent``: a FakeLLM reply function that follows the rule phrases it finds in its prompt,
  infers rules from an (original, revised) pair and condenses by majority: a fast stand-in for an
  agent model, so the whole benchmark runs offline in seconds (``--agent fake``) and in tests.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.llm import CallContext, GenerationParams, LLMClient
from promptopt.llm.base import LLMRequest

DEFAULT_USER_FILE = Path(__file__).resolve().parent / "users" / "default.json"

_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_FIRST_PERSON = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
    "ourselves": "yourselves",
}
_FIRST_PERSON_RE = re.compile(r"\b(" + "|".join(_FIRST_PERSON) + r")\b", re.IGNORECASE)
_I_AM = re.compile(r"\b(I am|I was|I'm)\b")
_YOU_RE = re.compile(r"\b(you|your|yours|yourself)\b", re.IGNORECASE)


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def sentences(text: str) -> list[str]:
    """Sentences of a text, list markers removed, line by line."""
    out: list[str] = []
    for line in _lines(text):
        out.extend(s.strip() for s in _SENTENCE_END.split(_MARKER.sub("", line)) if s.strip())
    return out


def content_words(text: str) -> list[str]:
    return [w for line in _lines(text) for w in _MARKER.sub("", line).split()]


@dataclass(frozen=True)
class Rule:
    """One checkable, applicable preference. ``apply`` leaves a satisfying text unchanged."""

    name: str
    n: int = 0
    text: str = ""

    @property
    def phrase(self) -> str:
        return {
            "bullets": "bullet points",
            "numbered": "numbered steps",
            "plain": "plain paragraphs without lists",
            "max_words": f"at most {self.n} words",
            "max_sentences": f"at most {self.n} sentences",
            "no_exclamation": "no exclamation marks",
            "second_person": "address the reader as you",
            "end_with_question": "end with a question",
            "start_with": f"start with '{self.text}'",
        }[self.name]

    def satisfied(self, text: str) -> bool:
        return self.apply(text) == text

    def apply(self, text: str) -> str:
        return _APPLY[self.name](self, text)


_I_FORMS = {"i am": "you are", "i was": "you were", "i'm": "you're"}


def _second_person(rule: Rule, text: str) -> str:
    def at_sentence_start(source: str, pos: int) -> bool:
        before = _MARKER.sub("", source[:pos].rsplit("\n", 1)[-1]).rstrip()
        return not before or before[-1] in ".!?:"

    def swapper(table: dict[str, str], source: str) -> Callable[[re.Match[str]], str]:
        def swap(match: re.Match[str]) -> str:
            new = table[match.group(0).lower()]
            return new[0].upper() + new[1:] if at_sentence_start(source, match.start()) else new

        return swap

    text = _I_AM.sub(swapper(_I_FORMS, text), text)
    text = _FIRST_PERSON_RE.sub(swapper(_FIRST_PERSON, text), text)
    if not _YOU_RE.search(text) and text.strip():
        text = "For you: " + text
    return text


def _no_exclamation(rule: Rule, text: str) -> str:
    return text.replace("!", ".")


def _start_with(rule: Rule, text: str) -> str:
    lines = text.strip().splitlines() or [""]
    first = lines[0]
    marker = _MARKER.match(first)
    head = marker.group(0) if marker else ""
    body = first[len(head) :]
    if body.startswith(rule.text):
        return text
    lines[0] = f"{head}{rule.text} {body}".rstrip()
    return "\n".join(lines) if len(lines) > 1 else lines[0]


def _end_with_question(rule: Rule, text: str) -> str:
    if text.rstrip().endswith("?"):
        return text
    return f"{text.rstrip()} {rule.text or 'What do you think?'}".strip()


def _max_words(rule: Rule, text: str) -> str:
    if len(content_words(text)) <= rule.n:
        return text
    parts = sentences(text)
    closing = [parts.pop()] if parts and parts[-1].endswith("?") and len(parts) > 1 else []
    budget = rule.n - sum(len(s.split()) for s in closing)
    kept: list[str] = []
    used = 0
    for sentence in parts:
        size = len(sentence.split())
        if used + size > budget:
            if not kept:  # the first sentence alone is too long: cut it
                kept.append(" ".join(sentence.split()[: max(budget, 1)]).rstrip(",;:") + ".")
            break
        kept.append(sentence)
        used += size
    return " ".join(kept + closing)


def _max_sentences(rule: Rule, text: str) -> str:
    parts = sentences(text)
    if len(parts) <= rule.n:
        return text
    return " ".join(parts[: rule.n])


def _listed(text: str, marker: Callable[[int], str]) -> str:
    return "\n".join(f"{marker(i)}{s}" for i, s in enumerate(sentences(text), 1))


def _bullets(rule: Rule, text: str) -> str:
    return _listed(text, lambda i: "- ")


def _numbered(rule: Rule, text: str) -> str:
    return _listed(text, lambda i: f"{i}. ")


def _plain(rule: Rule, text: str) -> str:
    return " ".join(s.replace("**", "").lstrip("# ") for s in sentences(text))


_APPLY: dict[str, Callable[[Rule, str], str]] = {
    "second_person": _second_person,
    "no_exclamation": _no_exclamation,
    "start_with": _start_with,
    "end_with_question": _end_with_question,
    "max_words": _max_words,
    "max_sentences": _max_sentences,
    "plain": _plain,
    "bullets": _bullets,
    "numbered": _numbered,
}
# Content first, then length, then layout: each step keeps what the earlier ones established.
RULE_ORDER = list(_APPLY)


def make_rule(spec: dict[str, Any]) -> Rule:
    name = str(spec.get("rule", ""))
    if name not in _APPLY:
        raise ValueError(f"Unknown rule {name!r}; use one of: {', '.join(RULE_ORDER)}.")
    text = str(spec.get("text") or spec.get("question") or "")
    return Rule(name, int(spec.get("n", 0)), text)


@dataclass
class KindPreference:
    kind: str
    preference: str  # the latent preference in words: the oracle's phrase
    rules: list[Rule] = field(default_factory=list)

    def apply(self, text: str) -> str:
        for rule in sorted(self.rules, key=lambda r: RULE_ORDER.index(r.name)):
            text = rule.apply(text)
        return text


def load_user(path: Path | str | None = None) -> dict[str, KindPreference]:
    """Latent preferences per document kind from a JSON file (see users/default.json)."""
    file = Path(path) if path else DEFAULT_USER_FILE
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"Cannot read the simulated user file {file}: {exc}") from exc
    kinds = raw.get("kinds") if isinstance(raw, dict) else None
    if not isinstance(kinds, dict) or not kinds:
        raise ValueError(f"{file} needs a 'kinds' object mapping document kinds to preferences.")
    out: dict[str, KindPreference] = {}
    for kind, spec in kinds.items():
        rules = [make_rule(r) for r in spec.get("rules", [])]
        phrase = spec.get("preference") or ", ".join(r.phrase for r in rules)
        out[kind] = KindPreference(kind, phrase, rules)
    return out


def preference_for(user: dict[str, KindPreference], kind: str) -> KindPreference:
    found = user.get(kind) or user.get("*")
    if found is None:
        raise ValueError(
            f"The simulated user has no preference for document kind {kind!r}; add it (or '*') "
            "to the --user-config file."
        )
    return found


class RuleUser:
    name = "rule"

    def __init__(self, user: dict[str, KindPreference]) -> None:
        self.user = user
        self.tokens = 0

    def edit(self, kind: str, input_text: str, output: str) -> str:
        return preference_for(self.user, kind).apply(output)


class LLMUser:
    """The reference protocol, for any model name the client knows."""

    def __init__(
        self,
        user: dict[str, KindPreference],
        client: LLMClient,
        model: str,
        api_base: str | None = None,
    ) -> None:
        self.user = user
        self.client = client
        self.model = model
        self.api_base = api_base
        self.name = f"llm:{model}"
        self.tokens = 0

    def _ask(self, prompt: str, max_tokens: int) -> str:
        completion = self.client.complete(
            [{"role": "user", "content": prompt}],
            model=self.model,
            params=GenerationParams(temperature=0.0, max_tokens=max_tokens),
            context=CallContext(purpose="simulate"),
            use_cache=True,
            api_base=self.api_base,
        )
        self.tokens += completion.total_tokens
        return completion.text.strip()

    def edit(self, kind: str, input_text: str, output: str) -> str:
        preference = preference_for(self.user, kind).preference
        verdict = self._ask(
            f"Text:\n<<<\n{output}\n>>>\n\nDoes this text already satisfy the preference "
            f'"{preference}"? Answer yes or no.',
            4,
        )
        if verdict.lower().startswith("yes"):
            return output
        revised = self._ask(
            f"Text:\n<<<\n{output}\n>>>\n\nRevise the text so that it satisfies the preference "
            f'"{preference}". Change only what the preference requires. Reply with the revised '
            "text only.",
            512,
        )
        return revised or output


# -- the fake agent ---------------------------------------------------------------------------
_TAG_BLOCK = re.compile(r"<(original|revised)>\n(.*?)\n</\1>", re.DOTALL)
_EXAMPLE = re.compile(r"<output>\n(.*?)\n</output>\n<edited>\n(.*?)\n</edited>", re.DOTALL)
_PREF_ITEM = re.compile(r"<preference>(.*?)</preference>", re.DOTALL)
_N_WORDS = re.compile(r"at most (\d+) words")
_N_SENTENCES = re.compile(r"at most (\d+) sentences")
_START = re.compile(r"start with '([^']+)'")


def rules_in(phrase: str) -> list[Rule]:
    """The rules whose canonical phrases occur in a preference text."""
    found: list[Rule] = []
    lower = phrase.lower()
    for name in ("bullets", "numbered", "plain", "no_exclamation", "second_person"):
        if Rule(name).phrase in lower:
            found.append(Rule(name))
    if "end with a question" in lower:
        found.append(Rule("end_with_question", text="What do you think?"))
    if m := _N_WORDS.search(lower):
        found.append(Rule("max_words", int(m.group(1))))
    if m := _N_SENTENCES.search(lower):
        found.append(Rule("max_sentences", int(m.group(1))))
    if m := _START.search(phrase):
        found.append(Rule("start_with", text=m.group(1)))
    return found


class FakeAgent:
    """Answers the Edit engine's calls like an ideal small agent (for ``--agent fake``)."""

    def __init__(self, user: dict[str, KindPreference], summary_sentences: int = 3) -> None:
        self.catalogue = sorted(
            {r for pref in user.values() for r in pref.rules}, key=lambda r: r.phrase
        )
        self.summary_sentences = summary_sentences

    def __call__(self, request: LLMRequest) -> str:
        system = request.messages[0]["content"] if request.messages[0]["role"] == "system" else ""
        body = request.messages[-1]["content"]
        if "<original>" in body:
            return self._infer(body)
        if "<preferences>" in body:
            items = [p.strip() for p in _PREF_ITEM.findall(body)]
            return Counter(items).most_common(1)[0][0] if items else ""
        return self._write(system, body)

    def _learned(self, original: str, revised: str) -> list[Rule]:
        return [r for r in self.catalogue if r.satisfied(revised) and not r.satisfied(original)]

    def _infer(self, body: str) -> str:
        blocks = dict(_TAG_BLOCK.findall(body))
        learned = self._learned(blocks.get("original", ""), blocks.get("revised", ""))
        return ", ".join(r.phrase for r in learned) or "keep the text as it is"

    def _write(self, system: str, body: str) -> str:
        # The input is the last paragraph of the rendered template.
        source = body.rsplit("\n\n", 1)[-1]
        text = " ".join(sentences(source)[: self.summary_sentences])
        rules = rules_in(system.split("<example>", 1)[0])
        # In-context edit examples: imitate the edits of the most similar (first) example.
        examples = _EXAMPLE.findall(system)
        if examples:
            rules += self._learned(*examples[0])
        return KindPreference("agent", "", rules).apply(text)
