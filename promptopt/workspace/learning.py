"""Learning from edits in the background: ``EditService.learn`` (an LLM call, and whatever
verification follows it) runs on one daemon worker, so submitting an edit returns as soon as it
is stored. The page shows "pending" and asks ``wait`` for the result."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from promptopt.edit.service import EditResult

log = logging.getLogger("promptopt.workspace")


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
