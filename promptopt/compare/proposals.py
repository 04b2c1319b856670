"""Candidate prompts proposed by an LLM: induced from examples (APE-style), rephrasings, and
revisions of the current best informed by the verdicts and the Edit engine's preferences.

Every meta-prompt is built here, in plain sight, and sent through ``LLMClient`` (so it is logged).
User data (examples, prompts, comments) sits inside XML-like tags so that instructions inside it
are read as data. All LLM calls finish before anything is written: a failure leaves the pool as it
was and raises ``LLMError`` with a message that says so.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from promptopt.compare.operators import OPERATORS, model_free_candidates
from promptopt.compare.operators import Draft as OperatorDraft
from promptopt.compare.validate import CandidateRejected
from promptopt.generation import PLACEHOLDER
from promptopt.llm import CallContext, GenerationParams, LLMClient, LLMError
from promptopt.llm.resolve import ResolvedCall, resolve_call
from promptopt.storage import Store
from promptopt.storage.models import Project, Prompt

SYSTEM = (
    "You write prompt templates for a language model. A template is an instruction that "
    f"contains the placeholder {PLACEHOLDER} exactly where the input text will be inserted. "
    "Reply with the template only: no title, no explanation, no quotes."
)
MAX_CHARS = 3000
MAX_EXAMPLE_CHARS = 600


class RankedPrompt(Protocol):
    """A leaderboard row as proposals read it."""

    @property
    def prompt(self) -> Prompt: ...

    @property
    def shown(self) -> bool: ...


class CandidatePool(Protocol):
    """What proposals need from the Compare engine: the ranking, and the one door into the pool
    (``add_candidate`` validates and merges near-duplicates, whatever wrote the candidate)."""

    def ensure_pool(self, project_id: int) -> list[Prompt]: ...

    def leaderboard(self, project_id: int, annotator: str) -> Sequence[RankedPrompt]: ...

    def add_candidate(
        self, project_id: int, text: str, origin: str = "user", parent_id: int | None = None
    ) -> Prompt: ...


@dataclass
class Plan:
    kind: str  # "induced" | "rephrase" | "revision" (stored as the prompt's origin)
    parent: Prompt | None
    messages: list[dict[str, str]]


def _clip(text: str, limit: int = MAX_EXAMPLE_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " [...]"


def induction_messages(examples: list[tuple[str, str]]) -> list[dict[str, str]]:
    blocks = "\n".join(
        f"<example>\n<input>\n{_clip(i)}\n</input>\n<output>\n{_clip(o)}\n</output>\n</example>"
        for i, o in examples
    )
    user = (
        "Someone followed one instruction to turn each input below into its output.\n\n"
        f"<examples>\n{blocks}\n</examples>\n\n"
        "Write that instruction as a prompt template that would make a model produce outputs "
        f"like these from new inputs. Put {PLACEHOLDER} where the input goes. Do not copy the "
        "examples into the template."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def rephrase_messages(prompt: str) -> list[dict[str, str]]:
    user = (
        f"<template>\n{prompt}\n</template>\n\n"
        "Rewrite this template in different words. Keep its meaning, every requirement and the "
        f"{PLACEHOLDER} placeholder."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def revision_messages(
    best: str,
    wins: list[tuple[str, str]],
    comments: list[str],
    preferences: list[str],
) -> list[dict[str, str]]:
    parts = [f"<best_template>\n{best}\n</best_template>"]
    if wins:
        pairs = "\n".join(
            f"<comparison>\n<preferred>\n{w}\n</preferred>\n<rejected>\n{lo}\n</rejected>\n"
            "</comparison>"
            for w, lo in wins
        )
        parts.append(
            "In side-by-side comparisons the user preferred outputs of the first template over "
            f"the second:\n<comparisons>\n{pairs}\n</comparisons>"
        )
    if comments:
        parts.append(
            "The user's comments on their votes:\n<comments>\n"
            + "\n".join(f"- {_clip(c, 300)}" for c in comments)
            + "\n</comments>"
        )
    if preferences:
        parts.append(
            "What the user wants, learned from their edits (most important first):\n"
            "<preferences>\n" + "\n".join(f"- {p}" for p in preferences) + "\n</preferences>"
        )
    parts.append(
        "Write an improved version of the best template: keep what made it win, and follow the "
        f"user's preferences more closely. Keep the {PLACEHOLDER} placeholder."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


_LABEL = re.compile(
    r"^\s*(?:new |improved |rewritten )?(?:prompt|template|instruction)\s*:\s*", re.I
)
_FENCE = re.compile(r"^```[a-zA-Z]*\n(.*?)\n?```$", re.S)
_TAG = re.compile(r"<(template|best_template|prompt)>\s*(.*?)\s*</\1>", re.S)
_OTHER_PLACEHOLDER = re.compile(
    r"\{\{?\s*(input|text|article|question|document|query|[a-z_]+)\s*\}?\}"
)


def clean_candidate(raw: str, parent_text: str | None = None) -> str | None:
    """Turn an LLM reply into a usable template, or None when it cannot be one."""
    text = raw.strip()
    tagged = _TAG.search(text)
    if tagged:
        text = tagged.group(2)
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    text = _LABEL.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    text = text.replace("{{input}}", PLACEHOLDER)
    if PLACEHOLDER not in text:
        # A model that names the slot differently ({text}, {article}) meant the input.
        match = _OTHER_PLACEHOLDER.search(text)
        if match:
            text = text[: match.start()] + PLACEHOLDER + text[match.end() :]
        elif text:
            text = f"{text.rstrip()}\n\n{PLACEHOLDER}"
    body = text.replace(PLACEHOLDER, "").strip()
    if len(body) < 3 or len(text) > MAX_CHARS:
        return None
    if parent_text is not None and text.strip() == parent_text.strip():
        return None
    return text


class Proposer:
    """Writes new candidate prompts with the optimizer model.

    Dependencies are explicit: the store (to read examples, verdicts, preferences), the client
    (every call logged), the pool it ranks and adds through, a seed, and how to pick the model
    for a project (``resolve``: ``resolve_call``, the one resolver every LLM call goes through)."""

    def __init__(
        self,
        store: Store,
        client: LLMClient,
        pool: CandidatePool,
        *,
        seed: int = 0,
        resolve: Callable[[Project, str], ResolvedCall] = resolve_call,
    ) -> None:
        self.store = store
        self.client = client
        self.pool = pool
        self.seed = seed
        self.resolve = resolve

    def examples(self, project_id: int, annotator: str) -> list[tuple[str, str]]:
        """Input/output pairs the user endorsed: edited outputs first, then outputs that won."""
        store = self.store
        inputs = {i.id: i.text for i in store.inputs.list(project_id)}
        out: list[tuple[str, str]] = []
        for e in store.edits.list(project_id, annotator):
            if e.input_id in inputs and e.edited.strip():
                out.append((inputs[e.input_id], e.edited))
        for c in store.comparisons.list(project_id, annotator, source="vote"):
            if c.input_id not in inputs or c.verdict not in ("a", "b"):
                continue
            won = c.output_a if c.verdict == "a" else c.output_b
            if won and won.strip():
                out.append((inputs[c.input_id], won))
        return out[-5:]

    def plan(self, project_id: int, annotator: str, n: int, rng: random.Random) -> list[Plan]:
        store = self.store
        board = list(self.pool.leaderboard(project_id, annotator))
        shown = [r for r in board if r.shown]
        examples = self.examples(project_id, annotator)
        base = next((r.prompt for r in board if r.prompt.origin == "base"), board[0].prompt)
        plans: list[Plan] = []
        if examples:
            plans.append(Plan("induced", None, induction_messages(examples[:5])))
        if shown:
            by_id = {r.prompt.id: r.prompt for r in board}
            comparisons = store.comparisons.list(project_id, annotator, source="vote")
            wins: list[tuple[str, str]] = []
            comments: list[str] = []
            for c in comparisons[-20:]:
                if c.comment.strip():
                    comments.append(c.comment.strip())
                if c.verdict in ("a", "b") and c.prompt_a_id in by_id and c.prompt_b_id in by_id:
                    a, b = by_id[c.prompt_a_id].text, by_id[c.prompt_b_id].text
                    wins.append((a, b) if c.verdict == "a" else (b, a))
            # What was learned, not what was guessed: verified or pinned preferences only.
            prefs = [
                p.text
                for p in store.preferences.list(project_id, annotator)
                if p.pinned or p.status == "verified"
            ][:8]
            leaders = [r.prompt for r in shown[:2]]
            for k in range(max(1, (n + 1) // 2)):
                parent = leaders[k % len(leaders)]
                plans.append(
                    Plan(
                        "revision",
                        parent,
                        revision_messages(parent.text, wins[-4:], comments[-5:], prefs),
                    )
                )
        seeds = [r.prompt for r in shown[:2]] or [base]
        k = 0
        while len(plans) < n:
            parent = seeds[k % len(seeds)]
            plans.append(Plan("rephrase", parent, rephrase_messages(parent.text)))
            k += 1
        rng.shuffle(plans)
        return plans[:n]

    def propose(
        self,
        project_id: int,
        annotator: str,
        *,
        n: int = 4,
        progress: Callable[[float, str], None] | None = None,
        operators: Sequence[str] | None = None,
        background: bool = False,
    ) -> list[Prompt]:
        """``n`` candidates: half from the LLM (induce / revise / rephrase), half from the
        operators that need no capable model (``promptopt.compare.operators``), unless
        ``operators`` names fewer ("llm" is the LLM's share). ``background``: nobody waits for
        them on screen, so the model serves calls that somebody waits for first."""
        if n < 1:
            return []
        ops = tuple(operators) if operators is not None else ("llm", *OPERATORS)
        unknown = [o for o in ops if o != "llm" and o not in OPERATORS]
        if unknown:
            raise ValueError(f"Unknown proposal operator(s) {unknown}; use llm or {OPERATORS}.")
        free_ops = [o for o in ops if o != "llm"]
        n_free = (n // 2 if "llm" in ops else n) if free_ops else 0
        n_llm = n - n_free if "llm" in ops else 0
        project = self.store.projects.get(project_id)
        self.pool.ensure_pool(project_id)
        rng = random.Random(f"{self.seed}:{project_id}:{annotator}:propose:{n}")
        items: list[tuple[str, int | None, str]] = []  # (origin, parent id, text)
        call = self.resolve(project, "compare.propose")
        if n_llm:
            plans = self.plan(project_id, annotator, n_llm, rng)
            for plan, text in self._draft(project, call, plans, rng, progress, background):
                items.append((plan.kind, plan.parent.id if plan.parent else None, text))
        if n_free:
            for draft in self._model_free(project_id, annotator, n_free, rng, free_ops):
                items.append((draft.origin, draft.parent_id, draft.text))
        if not items:
            raise LLMError(
                f"{call.model} did not return any usable prompt (each needs an instruction and "
                f"{PLACEHOLDER}). The pool was left unchanged; try again or use a stronger model."
            )
        if progress is not None:
            progress(n / (n + 1), "Adding candidates to the pool")
        added: list[Prompt] = []
        refused: list[str] = []
        before = {p.id for p in self.store.prompts.list(project_id)}
        with self.store.transaction():
            for origin, parent_id, text in items:
                try:
                    prompt = self.pool.add_candidate(
                        project_id, text, origin=origin, parent_id=parent_id
                    )
                except CandidateRejected as exc:  # stored with its reason; shown in Inspect
                    refused.append(exc.reason)
                    continue
                if prompt.id not in before and all(p.id != prompt.id for p in added):
                    added.append(prompt)
        if progress is not None:
            progress(1.0, proposal_summary(len(added), refused))
        return added

    def _model_free(
        self, project_id: int, annotator: str, n: int, rng: random.Random, ops: Sequence[str]
    ) -> list[OperatorDraft]:
        board = list(self.pool.leaderboard(project_id, annotator))
        shown = [r for r in board if r.shown] or board[:1]
        leaders = [(r.prompt.id, r.prompt.text) for r in shown[:2]]
        learned = [
            p.text
            for p in self.store.preferences.list(project_id, annotator)
            if p.pinned or p.status == "verified"
        ]
        pool = [r.prompt.text for r in board]
        return model_free_candidates(leaders, pool, learned[:4], n, rng, ops)

    def _draft(
        self,
        project: Project,
        call: ResolvedCall,
        plans: list[Plan],
        rng: random.Random,
        progress: Callable[[float, str], None] | None,
        background: bool = False,
    ) -> list[tuple[Plan, str]]:
        """Every LLM call, before anything is written: a failure leaves the pool unchanged."""
        drafts: list[tuple[Plan, str]] = []
        for k, plan in enumerate(plans):
            if progress is not None:
                progress(
                    k / (len(plans) + 1),
                    f"Writing candidate {k + 1} of {len(plans)} ({plan.kind})",
                )
            # Temperatures spread over 0.7-1.0 as in the reference; a distinct seed per call keeps
            # identical requests from collapsing into one cached answer.
            params = GenerationParams(
                temperature=0.7 + 0.3 * k / max(1, len(plans) - 1),
                max_tokens=400,
                seed=rng.randrange(2**31),
            )
            try:
                completion = self.client.complete(
                    plan.messages,
                    context=CallContext(
                        purpose="compare.propose", project_id=project.id, background=background
                    ),
                    **call.with_params(params).kwargs(),
                )
            except LLMError as exc:
                raise LLMError(
                    f"Proposing candidates failed ({exc}). The prompt pool was left unchanged; "
                    "try again, or pick another optimizer model in the project settings."
                ) from exc
            text = clean_candidate(completion.text, plan.parent.text if plan.parent else None)
            if text is not None:
                drafts.append((plan, text))
        return drafts


def proposal_summary(added: int, refused: list[str]) -> str:
    """The Propose progress message: what joined the pool and why the rest did not."""
    message = f"Added {added} new candidate(s)"
    if refused:
        reasons = "; ".join(dict.fromkeys(refused))
        message += f"; refused {len(refused)} ({reasons[:300]}). See Inspect for each one."
    return message
