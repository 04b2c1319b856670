"""Producing duels for the Compare screen ahead of time.

While the user reads a pair, the next one (its duel and both outputs) is already being generated
on a per-session worker thread, so a vote shows the next pair without waiting for the LLM. The
worker streams into a ``PendingPair``; the page polls it, so a pair that is not finished yet still
appears token by token. One worker thread per session keeps a session's LLM work in order and
never lets one user's generations hold up another's.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from promptopt.generation import GenerationSettings, generate
from promptopt.llm import LLMClient
from promptopt.storage import Store

POLL_S = 0.03
# next_duel never calls an LLM (< 100 ms by contract); wait a little longer than that for it.
CHOOSE_WAIT_S = 0.5


@dataclass
class PendingPair:
    project_id: int
    annotator: str
    duel: Any = None
    after: Any = None  # for a prefetch: the duel on screen that this one follows
    left: list[str] = field(default_factory=list)
    right: list[str] = field(default_factory=list)
    error: str | None = None
    chosen: threading.Event = field(default_factory=threading.Event)  # duel is known
    done: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)

    def texts(self) -> tuple[str, str]:
        return "".join(self.left), "".join(self.right)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class SessionWorker:
    """One daemon thread running a session's jobs in order.

    Not a ThreadPoolExecutor: the interpreter joins those at exit, so stopping the server would
    wait for a generation in progress (minutes with a slow local model). A daemon worker simply
    ends with the process; an abandoned generation is only a cache entry lost."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        threading.Thread(target=self._run, daemon=True, name="promptopt-pair").start()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._jobs.put(lambda: fn(*args))

    def shutdown(self, cancel_futures: bool = False) -> None:
        if cancel_futures:
            with self._jobs.mutex:
                self._jobs.queue.clear()
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a job reports its own errors; the worker must outlive them
                logging.getLogger("promptopt.ui").exception("pair job failed")


@dataclass
class _Session:
    executor: SessionWorker
    prefetched: PendingPair | None = None


class PairProducer:
    """Per-session workers that make duels. ``describe_error`` turns an exception into text."""

    def __init__(
        self,
        store: Store,
        client: LLMClient,
        compare: Callable[[], Any],
        describe_error: Callable[[BaseException], str],
        max_sessions: int = 256,
    ) -> None:
        self.store = store
        self.client = client
        self._compare = compare
        self._describe = describe_error
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self.max_sessions = max_sessions

    def _session(self, session_id: str) -> _Session:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                if len(self._sessions) >= self.max_sessions:
                    # Sessions whose page closed without the unload event: drop the oldest.
                    oldest = next(iter(self._sessions))
                    self._sessions.pop(oldest).executor.shutdown()
                session = _Session(SessionWorker())
                self._sessions[session_id] = session
            return session

    def start(
        self, session_id: str, project_id: int, annotator: str, duel: Any = None
    ) -> PendingPair:
        """Start making a pair now (or regenerate the outputs of ``duel``, for a retry)."""
        pending = PendingPair(project_id, annotator, duel=duel)
        self._session(session_id).executor.submit(self._produce, pending)
        return pending

    def prefetch(self, session_id: str, project_id: int, annotator: str, after: Any) -> None:
        """Make the duel that the engine reserves to follow ``after`` (the duel on screen)."""
        session = self._session(session_id)
        current = session.prefetched
        if (
            current is not None
            and _matches(current, project_id, annotator)
            and _same_duel(current.after, after)
        ):
            return
        pending = PendingPair(project_id, annotator, after=after)
        session.prefetched = pending
        session.executor.submit(self._produce, pending)

    def take(
        self, session_id: str, project_id: int, annotator: str, voted: Any = None
    ) -> PendingPair:
        """After a vote on ``voted``: the pair prefetched to follow it, else a fresh one.

        The engine promotes the duel it reserved for after ``voted`` (``next_duel(after=...)``),
        so the prefetched outputs are what the next screen shows. A prefetch made for another
        duel, or one that came out as the very duel just voted on, is dropped."""
        session = self._session(session_id)
        pending, session.prefetched = session.prefetched, None
        if (
            voted is not None
            and pending is not None
            and _matches(pending, project_id, annotator)
            and _same_duel(pending.after, voted)
        ):
            pending.chosen.wait(CHOOSE_WAIT_S)
            if not _same_duel(pending.duel, voted):
                return pending
        return self.start(session_id, project_id, annotator)

    def discard(self, session_id: str) -> None:
        """Forget the prefetched pair (the project or the pool changed)."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is not None:
            session.prefetched = None

    def drop(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.executor.shutdown(cancel_futures=True)

    def _produce(self, pending: PendingPair) -> None:
        try:
            if pending.duel is None:
                engine = self._compare()
                if pending.after is not None:
                    pending.duel = engine.next_duel(
                        pending.project_id, pending.annotator, after=pending.after
                    )
                else:
                    pending.duel = engine.next_duel(pending.project_id, pending.annotator)
            pending.chosen.set()
            duel = pending.duel
            project = self.store.projects.get(pending.project_id)
            settings = GenerationSettings.from_project(project)
            first, second = (duel.prompt_a, duel.prompt_b)
            if duel.left != "a":
                first, second = second, first
            for prompt, parts in ((first, pending.left), (second, pending.right)):
                parts.clear()
                response = generate(
                    self.client,
                    prompt.text,
                    duel.input.text,
                    settings,
                    project_id=pending.project_id,
                    purpose="compare",
                )
                for delta in response:
                    parts.append(delta)
                response.completion()  # logs the call
            left, right = pending.texts()
            duel.output_a, duel.output_b = (left, right) if duel.left == "a" else (right, left)
        except Exception as exc:  # shown on the page with a Retry button
            pending.error = self._describe(exc)
        finally:
            pending.chosen.set()
            pending.done.set()


def _matches(pending: PendingPair, project_id: int, annotator: str) -> bool:
    return (
        pending.project_id == project_id
        and pending.annotator == annotator
        and (pending.error is None or not pending.done.is_set())
    )


def _same_duel(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if a.id == b.id:
        return True
    return (a.input.id, {a.prompt_a.id, a.prompt_b.id}) == (
        b.input.id,
        {b.prompt_a.id, b.prompt_b.id},
    )
