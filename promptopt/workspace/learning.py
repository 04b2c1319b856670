"""Learning from edits: what an edit measurably changed is observed at once (no LLM,
milliseconds, ``observe_stored``), so the profile shows it as soon as the edit is stored; the
slow half, ``EditService.learn`` (an LLM inference, then verification by replays), runs on one
daemon worker. The page shows "pending" and asks ``wait`` for the result."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import replace

from promptopt.edit.learning import LearnReport
from promptopt.edit.service import EditResult, EditService
from promptopt.storage.models import Preference

log = logging.getLogger("promptopt.workspace")


def observe_stored(service: EditService, edit_id: int) -> list[Preference]:
    """The observable preferences that hold around a stored edit and its similar past edits,
    upserted with their evidence; [] for the reference policy (it only infers) or when the
    analysis fails (the edit is stored; ``learn`` observes again in the background)."""
    if service.policy != "default":
        return []
    try:
        edit = service.store.edits.get(edit_id)
        item = next(
            (
                m
                for m in service.store.memory.list(edit.project_id, edit.annotator)
                if m.edit_id == edit.id
            ),
            None,
        )
        if item is None:
            return []
        vector = service.store.embeddings.get(item.embedding_id)
        return service.learner.observe_around(edit, vector)
    except Exception:
        log.exception("observing edit %s failed; learning will observe it again", edit_id)
        return []


def with_observed(service: EditService, result: EditResult) -> EditResult:
    """A just-stored edit's result with what is observed around it (``learned.observed``)."""
    return replace(result, learned=LearnReport(observed=observe_stored(service, result.edit.id)))


class BackgroundLearner:
    def __init__(self, learn: Callable[[int], EditResult]) -> None:
        self._learn = learn
        self._jobs: queue.Queue[int] = queue.Queue()
        self._done: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def schedule(self, edit_id: int) -> None:
        with self._lock:
            if edit_id in self._done:
                return
            self._done[edit_id] = threading.Event()
            if self._thread is None:
                # Daemon: stopping the server never waits for an inference; the edit stays
                # "pending" in SQLite and is learned from on retry.
                self._thread = threading.Thread(
                    target=self._run, daemon=True, name="promptopt-learn"
                )
                self._thread.start()
        self._jobs.put(edit_id)

    def wait(self, edit_id: int, timeout: float | None = None) -> bool:
        """True once the scheduled learning of ``edit_id`` finished (well or not)."""
        with self._lock:
            event = self._done.get(edit_id)
        return True if event is None else event.wait(timeout)

    def _run(self) -> None:
        while True:
            edit_id = self._jobs.get()
            try:
                self._learn(edit_id)
            except Exception:  # the edit stays pending with its error; a retry learns again
                log.exception("learning from edit %s failed", edit_id)
            finally:
                with self._lock:
                    event = self._done.pop(edit_id, None)
                if event is not None:
                    event.set()
