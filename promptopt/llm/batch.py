"""Several requests decoded as one batch by a backend, read back as independent streams.

The backend's ``stream_batch`` yields chunks tagged with their request's index. One worker
thread (started by the first reader) drains it into one queue per request, so each response
can be read alone, in any order or from different threads, and one that ends early (a short
output) finishes without waiting for the others. The time limit of each member starts when the
backend signals that its work began, as for single calls.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from promptopt.llm.base import Chunk, LLMError, LLMRequest, LLMTimeoutError

_END = object()


class WorkClock:
    """The time limit of one call, counting only the backend's own work: for a backend that
    signals it, the time between ``started`` and ``paused`` chunks; before it starts (or while
    paused) the call may wait up to ``wait_s`` for the backend to take it (again)."""

    def __init__(self, model: str, timeout_s: float, wait_s: float, signals_start: bool) -> None:
        self.model = model
        self.timeout_s = timeout_s
        self.wait_s = wait_s
        self.working = not signals_start
        self.left = timeout_s
        self.deadline = time.monotonic() + (timeout_s if self.working else wait_s)

    def see(self, chunk: Chunk) -> None:
        now = time.monotonic()
        if chunk.started and not self.working:
            self.working = True
            self.deadline = now + self.left
        elif chunk.paused and self.working:
            self.working = False
            self.left = max(0.0, self.deadline - now)
            self.deadline = now + self.wait_s

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def expired(self) -> LLMTimeoutError:
        if self.working:
            return LLMTimeoutError(
                f"{self.model} did not answer within {self.timeout_s:.0f}s. Try again, pick a "
                "faster model, or raise the time limit (PROMPTOPT_LLM_TIMEOUT)."
            )
        return LLMTimeoutError(
            f"{self.model} was busy with other work for {self.wait_s:.0f}s and did not get to "
            "this call. Try again in a moment."
        )


class BatchRun:
    """One ``stream_batch`` call shared by the responses of its requests."""

    def __init__(
        self, backend: Any, requests: list[LLMRequest], *, timeout_s: float, wait_s: float
    ) -> None:
        self.backend = backend
        self.requests = requests
        self.timeout_s = timeout_s
        self.wait_s = wait_s
        self._queues: list[queue.Queue[Any]] = [queue.Queue() for _ in requests]
        self._open = [True] * len(requests)  # False once the reader gave up or finished
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def member(self, index: int) -> Iterator[Chunk]:
        """The chunks of request ``index``; starts the batch on the first read of any member."""
        self._start()
        request = self.requests[index]
        signals_start = bool(getattr(self.backend, "signals_start", False))
        clock = WorkClock(request.model, self.timeout_s, self.wait_s, signals_start)
        try:
            while True:
                remaining = clock.remaining()
                if remaining <= 0:
                    raise queue.Empty
                item = self._queues[index].get(timeout=remaining)
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    if isinstance(item, LLMError):
                        raise item
                    raise LLMError(f"{request.model} failed: {item}") from item
                if item.started or item.paused:
                    clock.see(item)
                    continue
                yield item
                if item.usage is not None:
                    return
        except queue.Empty:
            raise clock.expired() from None
        finally:
            self._close(index)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._work, daemon=True, name="promptopt-llm-batch"
            )
            self._thread.start()

    def _close(self, index: int) -> None:
        with self._lock:
            was_open = self._open[index]
            self._open[index] = False
        cancel = getattr(self.backend, "cancel_event", None)
        if was_open and callable(cancel):
            # A reader that stopped early (or timed out) frees its row of the batch; for a
            # finished member the backend has already forgotten it and this does nothing.
            cancel(self.requests[index])

    def _work(self) -> None:
        try:
            stream = self.backend.stream_batch(self.requests)
            try:
                for index, item in stream:
                    self._queues[index].put(item)
                    with self._lock:
                        if not any(self._open):
                            return  # every reader is gone; closing the stream stops the backend
            finally:
                close = getattr(stream, "close", None)
                if callable(close):
                    close()
            for q in self._queues:
                q.put(_END)
        except BaseException as exc:
            for q in self._queues:
                q.put(exc)
