"""The Compare engine as the UI and the CLI call it (see docs/engine-api.md).

Per (project, annotator) the service keeps a session: the pool's embeddings, the votes, the fitted
strategy and the *next* pair, computed right after each vote so that ``next_duel`` only reads it.
Every vote is committed to SQLite before the model is touched; a failure while refitting is logged
and the session is rebuilt from the stored comparisons on the next call, so no vote is ever lost.
The model state (warm-start values and the utility history) is saved with ``store.engine_state``
so that a restart resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import uuid
from collections.abc import Callable, Sequence

import numpy as np

from promptopt.compare.model import single_thread_blas
from promptopt.compare.proposals import Proposer
from promptopt.compare.selection import make_strategy, tally
from promptopt.compare.session import BestReport, Duel, LeaderboardRow, Session, VoteResult
from promptopt.compare.validate import CandidateRejected, Validator, threshold_for
from promptopt.embeddings import Embedder
from promptopt.embeddings.cache import embed_cached
from promptopt.generation import validate_template
from promptopt.llm import LLMClient
from promptopt.storage import Store, ValidationError
from promptopt.storage.models import Comparison, Input, Prompt

log = logging.getLogger("promptopt.compare")

ENGINE = "compare"
# Cosine similarity above which a new candidate is the same prompt (MiniLM on the LMentry pools:
# above ~0.985 prompts differ by punctuation or a function word; at 0.97-0.98 they are real
# rewordings, e.g. "Which of the two words..." vs "Of the two words, which one...").
DUPLICATE_COSINE = 0.985
USER_ORIGINS = ("user", "imported", "base")
STOP_CONFIDENCE = 0.95
MIN_VOTES_TO_STOP = 10
# The saved engine state is a warm start and the utility history, not the votes (those are
# comparisons, committed one by one): storing it with every fifth vote keeps a vote to one small
# commit, and a restart refits from all stored comparisons, so nothing is lost.
SAVE_EVERY = 5


class CompareService:
    def __init__(
        self,
        store: Store,
        client: LLMClient,
        embedder: Embedder,
        *,
        seed: int = 0,
        strategy: str = "default",
        on_task_threshold: float | None = None,
    ) -> None:
        make_strategy(strategy, np.zeros((2, 1)), np.random.default_rng(0))  # validates the name
        self.store = store
        self.client = client
        self.embedder = embedder
        self.seed = seed
        self.strategy_name = strategy
        self._sessions: dict[tuple[int, str], Session] = {}
        self._locks: dict[tuple[int, str], threading.RLock] = {}
        self._guard = threading.Lock()
        self._pool_lock = threading.Lock()
        self.proposer = Proposer(store, client, self, seed=seed)
        self.refits = 0  # model fits so far (a vote costs exactly one; tests count them)
        self.validator = Validator(
            self._embed,
            threshold_for(embedder.name) if on_task_threshold is None else on_task_threshold,
        )

    # -- pool ------------------------------------------------------------------------------------
    def ensure_pool(self, project_id: int) -> list[Prompt]:
        with self._pool_lock:
            prompts = self.store.prompts.list(project_id)
            if not prompts:
                project = self.store.projects.get(project_id)
                validate_template(project.template)
                self.store.prompts.add(project_id, project.template, "base")
                prompts = self.store.prompts.list(project_id)
        return prompts

    def add_candidate(
        self, project_id: int, text: str, origin: str = "user", parent_id: int | None = None
    ) -> Prompt:
        """Add a prompt; a near-duplicate of an active prompt is stored (inactive, with
        ``merged_into``) for provenance, and the existing prompt is returned instead."""
        self.ensure_pool(project_id)  # the base prompt is always the first candidate
        text = self._validated(project_id, text, origin, parent_id)
        with self._pool_lock:
            existing = self.store.prompts.list(project_id)
            for p in existing:
                if p.text.strip() == text:
                    return p
            vector = self._embed([text])[0]
            if existing:
                sims = self._embed([p.text for p in existing]) @ vector
                top = int(np.argmax(sims))
                if float(sims[top]) >= DUPLICATE_COSINE:
                    twin = self.store.prompts.add(
                        project_id, text, origin, parent_id=parent_id, meta={"duplicate": True}
                    )
                    self.store.prompts.set_active(twin.id, False, merged_into=existing[top].id)
                    return existing[top]
            prompt = self.store.prompts.add(project_id, text, origin, parent_id=parent_id)
        self._pool_changed(project_id)
        return prompt

    def _pool_changed(self, project_id: int) -> None:
        """New candidates: every session of the project is rebuilt on its next call, the vote
        path included (that rebuild is the vote's one refit)."""
        for (pid, _), session in list(self._sessions.items()):
            if pid == project_id:
                session.stale = True

    def _validated(self, project_id: int, text: str, origin: str, parent_id: int | None) -> str:
        """The candidate as it joins the pool, or ``CandidateRejected`` (stored with its reason).

        A prompt the user typed or imported is theirs: it needs its ``{input}`` and nothing
        else (tags such as ``<article>{input}</article>`` are a legitimate style of prompt).
        Machine-written candidates (LLM proposals, operators) pass the full validator."""
        if origin in USER_ORIGINS:
            return validate_template(text).strip()
        project = self.store.projects.get(project_id)
        verdict = self.validator.check(text, project.template, project.task)
        if verdict.ok:
            return validate_template(verdict.text).strip()
        self.store.rejections.add(
            project_id=project_id,
            text=text,
            reason=verdict.reason,
            origin=origin,
            meta={"parent_id": parent_id, "similarity": verdict.similarity},
        )
        raise CandidateRejected(verdict.reason)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings through the store's cache, so a pool is encoded once per model."""
        return embed_cached(self.store, self.embedder, texts)[0]

    # -- sessions --------------------------------------------------------------------------------
    def _lock(self, key: tuple[int, str]) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(key, threading.RLock())

    def _session(self, project_id: int, annotator: str) -> Session:
        """The live session, rebuilt from storage when the pool changed or a refit failed."""
        key = (project_id, annotator)
        prompts = self.ensure_pool(project_id)
        session = self._sessions.get(key)
        if (
            session is not None
            and not session.stale
            and [p.id for p in session.prompts] == [p.id for p in prompts]
        ):
            return session
        session = self._build(project_id, annotator, prompts, session)
        self._sessions[key] = session
        return session

    def _build(
        self, project_id: int, annotator: str, prompts: list[Prompt], old: Session | None
    ) -> Session:
        rng = np.random.default_rng([self.seed, project_id])
        features = self._embed([p.text for p in prompts])
        strategy = make_strategy(self.strategy_name, features, rng)
        session = Session(prompts=prompts, features=features, strategy=strategy)
        index = session.index()
        if old is not None and old.queued is not None:
            follow = old.queued[1]
            if follow.prompt_a.id in index and follow.prompt_b.id in index:
                # Candidates joined while the user read: the duel reserved to follow (its
                # outputs made ahead, maybe complete) stays reserved, not chosen afresh.
                session.queued = old.queued
        for c in self.store.comparisons.list(project_id, annotator, source="vote"):
            if c.input_id is not None:
                session.input_uses[c.input_id] = session.input_uses.get(c.input_id, 0) + 1
            if c.prompt_a_id in index and c.prompt_b_id in index:
                session.votes.add(index[c.prompt_a_id], index[c.prompt_b_id], c.verdict)
        saved = self.store.engine_state.load(project_id, ENGINE, annotator)
        if saved is not None:
            try:
                state = json.loads(saved[0].decode("utf-8"))
                session.history = [(int(n), float(u)) for n, u in state.get("history", [])]
                warm = {
                    index[int(pid)]: float(v)
                    for pid, v in state.get("warm", {}).items()
                    if int(pid) in index
                }
                strategy.set_warm_state(warm)
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable compare state for project %s; refitting", project_id)
        elif old is not None:
            session.history = old.history
        if len(session.votes):
            self._refit(session)
            session.history = [h for h in session.history if h[0] <= len(session.votes)]
            if not session.history or session.history[-1][0] != len(session.votes):
                # votes recorded while the model could not learn (a failed refit, a crash)
                best = strategy.best()
                if best is not None:
                    utility = float(strategy.utilities()[0][best])
                    session.history.append((len(session.votes), utility))
                self._save(project_id, annotator, session)
        return session

    def _refit(self, session: Session) -> None:
        with single_thread_blas():
            session.strategy.update(session.votes)
        self.refits += 1

    def _save(self, project_id: int, annotator: str, session: Session) -> None:
        session.unsaved = 0
        state: dict[str, object] = {
            "strategy": self.strategy_name,
            "votes": len(session.votes),
            "history": session.history,
        }
        warm = session.strategy.warm_state()
        if warm:
            state["warm"] = {str(session.prompts[k].id): v for k, v in warm.items()}
        self.store.engine_state.save(
            project_id,
            ENGINE,
            annotator,
            json.dumps(state).encode("utf-8"),
            meta={"votes": len(session.votes), "strategy": self.strategy_name},
        )

    def _rng(self, project_id: int, annotator: str, votes: int) -> random.Random:
        # Sides, inputs and duel ids are reproducible for a seed and independent of timing.
        return random.Random(f"{self.seed}:{project_id}:{annotator}:{votes}")

    # -- duels -----------------------------------------------------------------------------------
    def next_duel(self, project_id: int, annotator: str, after: Duel | None = None) -> Duel:
        """The duel to show now; with ``after`` (the duel on screen, not voted yet), the duel that
        will follow it, so its outputs can be generated while the user reads.

        The follow-up comes from the same fit as the duel on screen (no refit): the best pair
        other than that one, on another input, which is what a "believer" fantasy (pretending
        the duel on screen ended in a tie) mostly yields at a third of the cost. The vote on
        ``after`` promotes the reserved duel, and the next call without ``after`` returns it.
        """
        with self._lock((project_id, annotator)):
            session = self._session(project_id, annotator)
            inputs = self._duel_inputs(project_id, session)
            if after is None:
                return self._current(project_id, annotator, session, inputs)
            if session.queued is not None and session.queued[0] == after.id:
                return session.queued[1]
            duel = self._reserve_after(project_id, annotator, session, after, inputs)
            session.queued = (after.id, duel)
            return duel

    def _duel_inputs(self, project_id: int, session: Session, fresh: bool = True) -> list[Input]:
        """The inputs to rotate over: read afresh when a screen asks for a duel, reused on the
        vote path (``inputs_changed`` drops them when the application adds inputs)."""
        if len(session.prompts) < 2:
            raise ValidationError(
                "Comparing needs at least two prompts. Add a prompt of your own or let the "
                "engine propose candidates."
            )
        if fresh or session.inputs is None:
            session.inputs = self.store.inputs.list(project_id)
        inputs = session.inputs
        if not inputs:
            raise ValidationError(
                "This project has no inputs yet. Import or type a few inputs to compare on."
            )
        return inputs

    def _current(
        self, project_id: int, annotator: str, session: Session, inputs: list[Input]
    ) -> Duel:
        if session.pending_duel is not None:
            return session.pending_duel
        rng = self._rng(project_id, annotator, len(session.votes))
        if session.pending is None:
            session.pending = self._choose(session, rng)
        session.pending_duel = self._make_duel(
            project_id, session, session.pending, inputs, rng, {}
        )
        return session.pending_duel

    def _reserve_after(
        self,
        project_id: int,
        annotator: str,
        session: Session,
        after: Duel,
        inputs: list[Input],
    ) -> Duel:
        """The duel to follow ``after``, chosen from the current fit (no refit): the best pair
        other than the one on screen, on another input."""
        index = session.index()
        rng = random.Random(f"{self.seed}:{project_id}:{annotator}:after:{after.id}")
        a, b = index.get(after.prompt_a.id), index.get(after.prompt_b.id)
        avoid = (a, b) if a is not None and b is not None else None
        pair = self._choose(session, rng, avoid)
        return self._make_duel(project_id, session, pair, inputs, rng, {after.input.id: 1})

    def _make_duel(
        self,
        project_id: int,
        session: Session,
        pair: tuple[int, int],
        inputs: list[Input],
        rng: random.Random,
        extra_uses: dict[int, int],
    ) -> Duel:
        a, b = pair

        # Rotate inputs: the least-used input next, so the winner must win across inputs.
        def uses(i: Input) -> int:
            return session.input_uses.get(i.id, 0) + extra_uses.get(i.id, 0)

        fewest = min(uses(i) for i in inputs)
        candidates = [i for i in inputs if uses(i) == fewest]
        chosen = candidates[rng.randrange(len(candidates))]
        return Duel(
            id=uuid.UUID(int=rng.getrandbits(128), version=4).hex,
            project_id=project_id,
            input=chosen,
            prompt_a=session.prompts[a],
            prompt_b=session.prompts[b],
            left="a" if rng.random() < 0.5 else "b",
        )

    def _choose(
        self, session: Session, rng: random.Random, avoid: tuple[int, int] | None = None
    ) -> tuple[int, int]:
        np_rng = np.random.default_rng(rng.getrandbits(64))
        return session.strategy.choose(np_rng, avoid)

    def record_vote(
        self, duel: Duel, verdict: str, annotator: str, comment: str = ""
    ) -> Comparison:
        return self.vote(duel, verdict, annotator, comment).comparison

    def vote(self, duel: Duel, verdict: str, annotator: str, comment: str = "") -> VoteResult:
        """Record a verdict and return what the screen needs next, with one refit.

        One commit: the comparison, together with the engine state of the fit before it (the
        state lags one vote; a restart refits from the stored comparisons anyway). The vote is
        on disk before the model is touched; if the refit fails, the vote is kept and the
        session is rebuilt from storage on the next call."""
        key = (duel.project_id, annotator)
        with self._lock(key):
            session = self._sessions.get(key)
            with self.store.transaction():
                comparison = self.store.comparisons.add(
                    project_id=duel.project_id,
                    verdict=verdict,
                    annotator=annotator,
                    input_id=duel.input.id,
                    prompt_a_id=duel.prompt_a.id,
                    prompt_b_id=duel.prompt_b.id,
                    output_a=duel.output_a,
                    output_b=duel.output_b,
                    left=duel.left,
                    comment=comment,
                    meta={"duel_id": duel.id, "strategy": self.strategy_name},
                )
                if session is not None and session.unsaved >= SAVE_EVERY and not session.stale:
                    self._save(duel.project_id, annotator, session)
            try:
                return self._learn(duel, comparison, annotator)
            except Exception:
                log.exception(
                    "refit after vote %s failed; will rebuild from storage", comparison.id
                )
                session = self._sessions.get(key)
                if session is not None:
                    session.stale = True
                return VoteResult(comparison, None, None, 0, None)

    def _learn(self, duel: Duel, comparison: Comparison, annotator: str) -> VoteResult:
        project_id = duel.project_id
        session = self._sessions.get((project_id, annotator))
        if session is None or session.stale:
            session = self._session(project_id, annotator)  # rebuilt (one refit): has this vote
        else:
            index = session.index()
            session.input_uses[duel.input.id] = session.input_uses.get(duel.input.id, 0) + 1
            if duel.prompt_a.id in index and duel.prompt_b.id in index:
                session.votes.add(
                    index[duel.prompt_a.id], index[duel.prompt_b.id], comparison.verdict
                )
            self._refit(session)
        session.unsaved += 1
        best = session.strategy.best()
        if best is not None:
            utility = float(session.strategy.utilities()[0][best])
            session.history.append((len(session.votes), utility))
        session.pending = None
        session.pending_duel = None
        queued, session.queued = session.queued, None
        index = session.index()
        if (
            queued is not None
            and queued[0] == duel.id
            and queued[1].prompt_a.id in index
            and queued[1].prompt_b.id in index
        ):
            # The duel reserved while the user read this one: its outputs may be ready already.
            follow = queued[1]
            session.pending = (index[follow.prompt_a.id], index[follow.prompt_b.id])
            session.pending_duel = follow
        following: Duel | None = None
        reserved: Duel | None = None
        try:
            inputs = self._duel_inputs(project_id, session, fresh=False)
        except ValidationError:
            inputs = []
        if inputs:
            following = self._current(project_id, annotator, session, inputs)
            reserved = self._reserve_after(project_id, annotator, session, following, inputs)
            session.queued = (following.id, reserved)
        return VoteResult(
            comparison, following, reserved, len(session.votes), self._report(session)
        )

    # -- reports ---------------------------------------------------------------------------------
    def leaderboard(self, project_id: int, annotator: str) -> list[LeaderboardRow]:
        with self._lock((project_id, annotator)):
            session = self._session(project_id, annotator)
            mean, spread = session.strategy.utilities()
            counts = tally((v.a, v.b, v.verdict) for v in session.votes.items)
            shown = session.votes.shown()
            rows = [
                LeaderboardRow(
                    prompt=p,
                    utility=float(mean[k]),
                    uncertainty=float(spread[k]),
                    votes=counts.votes[k],
                    wins=counts.wins[k],
                    win_rate=counts.win_rate(k),
                    shown=k in shown,
                )
                for k, p in enumerate(session.prompts)
            ]
        # Shown prompts first: the reported best is always a prompt the user has seen.
        return sorted(rows, key=lambda r: (not r.shown, -r.utility, r.prompt.id))

    def best(self, project_id: int, annotator: str) -> BestReport | None:
        with self._lock((project_id, annotator)):
            return self._report(self._session(project_id, annotator))

    def _report(self, session: Session) -> BestReport | None:
        strategy = session.strategy
        top = strategy.best()
        if top is None:
            return None
        mean = strategy.utilities()[0]
        shown = sorted(session.votes.shown() - {top}, key=lambda k: -mean[k])
        n_votes = sum(1 for v in session.votes.items if v.verdict != "skip")
        # with no other shown prompt there is nothing to beat yet: an even chance
        confidence = float(strategy.win_probability(top, shown[0])) if shown else 0.5
        challenger = strategy.challenger_probability(top)
        suggest = (
            n_votes >= MIN_VOTES_TO_STOP
            and confidence >= STOP_CONFIDENCE
            and challenger < 1.0 - STOP_CONFIDENCE
        )
        if suggest:
            message = (
                f"The leader beats the runner-up with probability {confidence:.0%} and no "
                "other candidate is likely to overtake it: more votes will probably not change "
                "the winner. Export it, or propose new candidates to keep improving."
            )
        elif n_votes < MIN_VOTES_TO_STOP:
            said = f"{n_votes} vote" if n_votes == 1 else f"{n_votes} votes"
            message = f"{said} so far; keep comparing to be sure of the winner."
        else:
            message = (
                f"The leader beats the runner-up with probability {confidence:.0%}; "
                "more votes can still change the winner."
            )
        return BestReport(
            prompt=session.prompts[top],
            utility=float(mean[top]),
            confidence=confidence,
            votes=n_votes,
            suggest_stop=suggest,
            message=message,
        )

    def inputs_changed(self, project_id: int) -> None:
        """Inputs were added or removed: the next duel reads them again."""
        with self._guard:
            sessions = [s for (pid, _), s in list(self._sessions.items()) if pid == project_id]
        for session in sessions:
            session.inputs = None

    def vote_count(self, project_id: int, annotator: str) -> int:
        """Votes (skips included) this annotator cast on the current pool."""
        with self._lock((project_id, annotator)):
            return len(self._session(project_id, annotator).votes)

    def utility_history(self, project_id: int, annotator: str) -> list[tuple[int, float]]:
        with self._lock((project_id, annotator)):
            return list(self._session(project_id, annotator).history)

    # -- proposals -------------------------------------------------------------------------------
    def propose(
        self,
        project_id: int,
        annotator: str,
        n: int = 4,
        progress: Callable[[float, str], None] | None = None,
        operators: Sequence[str] | None = None,
        background: bool = False,
    ) -> list[Prompt]:
        made = self.proposer.propose(
            project_id,
            annotator,
            n=n,
            progress=progress,
            operators=operators,
            background=background,
        )
        self._pool_changed(project_id)  # again: the candidates are committed now
        return made
