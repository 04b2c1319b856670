"""The pair pipeline: duels for the Compare screen, generated ahead of the reader.

Each session (one browser tab) has one daemon worker that runs its jobs in order: the pair to
show, then the pair the engine reserved to follow it (``CompareService.vote`` returns both from
one refit). The worker streams both outputs of a pair into a ``PendingPair`` with one
``generate_many`` call (the local model decodes them as one batch); the page polls it, so a pair
that is not finished yet still appears token by token. A session that leaves its screen
``pause``s: queued work is dropped and a reservation being generated stops at its next token,
so the machine serves the screen the user is on.

Two head starts: a project opened on the Project screen has its first pair ``prepare``d at once
(the pool seeded by an operator that needs no model), so it is well on its way when Compare
opens; and the reserved pair. Both run as background work until somebody waits for them: the
moment Compare shows one (a vote promoted it before it finished), its calls are promoted to
foreground priority, while they wait for the model or between two tokens. A pair being written
can be ``cut_short``: both outputs stop and keep what they have, ready for a vote.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from promptopt.compare.service import CompareService, Duel
from promptopt.generation import GenerationSettings, generate_many
from promptopt.llm import LLMClient, Priority
from promptopt.workspace.sides import screen_prompts, to_prompts

# How often the page gets a pair's new text while it is written: 10 updates a second reads as
# smooth streaming, and each costs the server and the browser some CPU, which the model lacks on a
# small machine (first pair with the offline model, 3 runs each: 13.0 s at 0.03 s, 11.0 s at 0.1).
POLL_S = 0.1
CANCELLED = "Generation stopped: the screen was left."
CUT_REASON = "Cut short by the user; the text so far was kept."

log = logging.getLogger("promptopt.workspace")


@dataclass
class PendingPair:
    project_id: int
    annotator: str
    duel: Duel | None = None
    left: list[str] = field(default_factory=list)
    right: list[str] = field(default_factory=list)
    error: str | None = None
    chosen: threading.Event = field(default_factory=threading.Event)  # duel is known
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)
    # Made ahead (a reservation, a first pair): nobody waits for it yet, so on-screen work goes
    # first, until it is shown and ``promote``d.
    background: bool = False
    cut: threading.Event = field(default_factory=threading.Event)  # the user asked to stop
    cut_short: bool = False  # finished by a cut: the outputs are what was written by then
    before: Callable[[], object] | None = None  # runs first in the worker (seeding the pool)
    after: Callable[[], object] | None = None  # runs once the pair is complete
    priority: Priority = field(init=False)

    def __post_init__(self) -> None:
        # Made ahead: before other background work (the user will wait for it soon).
        self.priority = Priority(background=self.background, ahead=True)

    def promote(self) -> None:
        """Somebody waits for this pair now: its calls go before background work."""
        self.background = False
        self.priority.promote()

    def texts(self) -> tuple[str, str]:
        return "".join(self.left), "".join(self.right)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def usable(self) -> bool:
        """Finished well or still running (a failed or stopped pair is made again)."""
        return self.error is None and not self.cancelled.is_set()


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

    def clear(self) -> None:
        with self._jobs.mutex:
            self._jobs.queue.clear()

    def shutdown(self) -> None:
        self.clear()
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a job reports its own errors; the worker must outlive them
                log.exception("pair job failed")


@dataclass
class _Session:
    worker: SessionWorker
    # Pairs made ahead, by duel id: the reservation, and the pair on screen while it streams.
    made: dict[str, PendingPair] = field(default_factory=dict)
    on_screen: PendingPair | None = None  # the pair last handed to the page: never stopped
    first: PendingPair | None = None  # a project's first pair, prepared before Compare opens
    paused: bool = False


class PairPipeline:
    """Per-session workers that make duels. ``describe_error`` turns an exception into text."""

    def __init__(
        self,
        compare: CompareService,
        client: LLMClient,
        settings_for: Callable[[int], GenerationSettings],
        describe_error: Callable[[BaseException], str],
        max_sessions: int = 256,
    ) -> None:
        self.compare = compare
        self.client = client
        self._settings_for = settings_for
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
                    self._sessions.pop(oldest).worker.shutdown()
                session = _Session(SessionWorker())
                self._sessions[session_id] = session
            return session

    def show(
        self, session_id: str, project_id: int, annotator: str, duel: Duel | None = None
    ) -> PendingPair:
        """The pair to put on screen: ``duel``'s outputs (made ahead when it was reserved, else
        generated now), or, without a duel, the engine's current one."""
        session = self._session(session_id)
        session.paused = False
        ahead = session.made.get(duel.id) if duel is not None else self._take_first(session)
        if ahead is not None and (ahead.project_id, ahead.annotator) != (project_id, annotator):
            _stop(ahead)
            ahead = None
        if ahead is not None and ahead.usable():
            ahead.promote()
            session.on_screen = ahead
            return ahead
        pending = PendingPair(project_id, annotator, duel=duel)
        session.on_screen = pending
        if duel is not None:
            session.made = {duel.id: pending}
        else:
            session.made = {}
        session.worker.submit(self._produce, pending)
        return pending

    def prepare(
        self,
        session_id: str,
        project_id: int,
        annotator: str,
        before: Callable[[], object] | None = None,
        after: Callable[[], object] | None = None,
    ) -> PendingPair:
        """Start making the project's first pair before Compare opens (the project was just
        opened), as background work; ``before`` runs first in the worker (seeding the pool),
        ``after`` once the pair is complete. ``show`` without a duel hands it over and promotes
        it."""
        session = self._session(session_id)
        first = session.first
        if first is not None:
            if (first.project_id, first.annotator) == (project_id, annotator) and first.usable():
                return first  # already on its way
            _stop(first)
        pending = PendingPair(project_id, annotator, background=True)
        pending.before, pending.after = before, after
        session.first = pending
        session.worker.submit(self._produce, pending)
        return pending

    def first(self, session_id: str) -> PendingPair | None:
        """The first pair being prepared for the session, if any (for the benchmark and tests)."""
        with self._lock:
            session = self._sessions.get(session_id)
        return None if session is None else session.first

    @staticmethod
    def _take_first(session: _Session) -> PendingPair | None:
        first, session.first = session.first, None
        return first

    def cut_short(self, session_id: str) -> str | None:
        """Stop both outputs of the pair on screen and keep what was written; None when done,
        else why not (the page shows it)."""
        with self._lock:
            session = self._sessions.get(session_id)
        pending = None if session is None else session.on_screen
        if pending is None or pending.done.is_set():
            return "Both outputs are already complete."
        if not (pending.left and pending.right):
            return "Wait until both outputs have started, then cut them short."
        pending.cut.set()
        return None

    def regenerate(self, session_id: str, duel: Duel, annotator: str) -> PendingPair:
        """Generate ``duel``'s outputs again (Retry after a failure)."""
        self._session(session_id).made.pop(duel.id, None)
        return self.show(session_id, duel.project_id, annotator, duel)

    def reserve(self, session_id: str, duel: Duel, annotator: str) -> None:
        """Generate a reserved duel while the user reads the one on screen (not when paused)."""
        session = self._session(session_id)
        if session.paused or duel.id in session.made:
            return
        pending = PendingPair(duel.project_id, annotator, duel=duel, background=True)
        pending.chosen.set()
        # Keep the pair on screen (it may still stream) and this reservation; drop older ones.
        keep = {k: v for k, v in session.made.items() if not v.done.is_set()}
        session.made = {**keep, duel.id: pending}
        session.worker.submit(self._produce, pending)

    def pause(self, session_id: str) -> None:
        """The session left the Compare screen: stop the pairs made ahead (the pair on screen
        is finished, so that it is there when the user comes back)."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return
        session.paused = True
        if session.first is not None:
            _stop(session.first)
            session.first = None
        keep = session.on_screen
        if keep is None or keep.done.is_set():
            session.worker.clear()
        for pending in session.made.values():
            if pending is not keep:
                _stop(pending)
        session.made = {} if keep is None else {k: v for k, v in session.made.items() if v is keep}

    def ahead(self, session_id: str, duel_id: str) -> PendingPair | None:
        """The pair being made ahead for ``duel_id``, if any (for the benchmark and tests)."""
        with self._lock:
            session = self._sessions.get(session_id)
        return None if session is None else session.made.get(duel_id)

    def resume(self, session_id: str) -> None:
        self._session(session_id).paused = False

    def paused(self, session_id: str) -> bool:
        with self._lock:
            session = self._sessions.get(session_id)
        return session is not None and session.paused

    def discard(self, session_id: str) -> None:
        """Forget pairs made ahead (the project, the annotator or the pool changed)."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is not None:
            session.made = {}
            if session.first is not None:
                _stop(session.first)
                session.first = None

    def drop(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            for pending in [*session.made.values(), session.first]:
                if pending is not None:
                    _stop(pending)
            session.worker.shutdown()

    def _produce(self, pending: PendingPair) -> None:
        try:
            if pending.cancelled.is_set():
                pending.error = CANCELLED
                return
            if pending.before is not None:
                pending.before()
            if pending.duel is None:
                pending.duel = self.compare.next_duel(pending.project_id, pending.annotator)
            pending.chosen.set()
            self._generate(pending, pending.duel)
        except Exception as exc:  # shown on the page with a Retry button
            pending.error = self._describe(exc)
        finally:
            pending.chosen.set()
            pending.done.set()
        if pending.after is not None:
            try:
                pending.after()
            except Exception:  # work that follows the pair; the pair itself is fine
                log.exception("work after the pair failed")

    def _generate(self, pending: PendingPair, duel: Duel) -> None:
        settings = self._settings_for(pending.project_id)
        first, second = screen_prompts(duel)
        responses = generate_many(
            self.client,
            [(first.text, duel.input.text), (second.text, duel.input.text)],
            settings,
            project_id=pending.project_id,
            purpose="compare",
            priority=pending.priority,
        )
        # Both sides at once: the batch fills both streams together, and a side read only after
        # the other would appear all at once at the end instead of token by token.
        failures: list[BaseException] = []

        def read(response: Any, parts: list[str]) -> None:
            parts.clear()
            try:
                for delta in response:
                    if pending.cancelled.is_set():
                        return
                    parts.append(delta)
                    if pending.cut.is_set():
                        response.stop(CUT_REASON)  # logged with what it wrote, never cached
                        return
                response.completion()  # logs the call
            except BaseException as exc:
                failures.append(exc)

        reader = threading.Thread(
            target=read, args=(responses[1], pending.right), daemon=True, name="promptopt-right"
        )
        reader.start()
        read(responses[0], pending.left)
        reader.join()
        if failures:
            raise failures[0]
        if pending.cancelled.is_set():
            pending.error = CANCELLED
            return
        pending.cut_short = pending.cut.is_set()
        left, right = pending.texts()
        duel.output_a, duel.output_b = to_prompts(duel, left, right)


def _stop(pending: PendingPair) -> None:
    """Stop a pair being made: a queued job never runs, a running one ends at its next token;
    either way whoever waits on it is released at once."""
    if pending.done.is_set():
        return
    pending.cancelled.set()
    pending.error = CANCELLED
    pending.chosen.set()
    pending.done.set()
