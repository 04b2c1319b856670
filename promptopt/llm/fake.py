"""A fake LLM for tests, registered on the client through the same path as real backends.

``FakeLLM(["reply one", "reply two"])`` answers with queued replies in order (then with
``default``, or a function of the request); every request is recorded in ``history``. An
exception instance in the queue is raised instead of answering, which is how tests make a call
fail, retry or time out. ``FakeLLM(batch=True)`` also decodes several requests as one batch
(as the local model does), interleaving their words; ``batches`` records each batch's size.
``word_delay_s`` makes it stream slowly (a pause before each word), as a model on a CPU does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from promptopt.llm.base import Chunk, LLMRequest, Usage

Reply = str | BaseException | Callable[[LLMRequest], str]


class FakeLLM:
    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = "OK",
        delay_s: float = 0.0,
        chunk_words: int = 1,
        batch: bool = False,
        word_delay_s: float = 0.0,
    ) -> None:
        self.queue: list[Reply] = list(replies)
        self.word_delay_s = word_delay_s
        self.default = default
        self.delay_s = delay_s
        self.chunk_words = chunk_words
        self.history: list[LLMRequest] = []
        self.batches: list[int] = []
        self.max_batch = 4 if batch else 1
        self._lock = threading.Lock()

    def enqueue(self, replies: Iterable[Reply]) -> None:
        with self._lock:
            self.queue.extend(replies)

    def _next(self, request: LLMRequest) -> str:
        with self._lock:
            self.history.append(request)
            reply = self.queue.pop(0) if self.queue else self.default
        if reply is None:
            raise AssertionError("FakeLLM ran out of queued replies and has no default")
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            return reply(request)
        return reply

    def stream(self, request: LLMRequest) -> Iterator[Chunk]:
        text = self._next(request)
        if self.delay_s:
            time.sleep(self.delay_s)
        words = text.split(" ")
        for i in range(0, len(words), self.chunk_words):
            if self.word_delay_s:
                time.sleep(self.word_delay_s)
            piece = " ".join(words[i : i + self.chunk_words])
            yield Chunk(text=piece if i == 0 else " " + piece)
        prompt_tokens = sum(len(m["content"].split()) for m in request.messages)
        yield Chunk(usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words)))

    def stream_batch(
        self, requests: list[LLMRequest]
    ) -> Iterator[tuple[int, Chunk | BaseException]]:
        with self._lock:
            self.batches.append(len(requests))
        pieces: list[list[Chunk]] = []
        for index, request in enumerate(requests):
            try:
                text = self._next(request)
            except Exception as exc:  # fails only this member, as in a real batch
                yield index, exc
                pieces.append([])
                continue
            words = text.split(" ")
            chunks = [Chunk(text=w if i == 0 else " " + w) for i, w in enumerate(words)]
            prompt_tokens = sum(len(m["content"].split()) for m in request.messages)
            chunks.append(
                Chunk(usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words)))
            )
            pieces.append(chunks)
        if self.delay_s:
            time.sleep(self.delay_s)
        for step in range(max((len(p) for p in pieces), default=0)):
            if self.word_delay_s:
                time.sleep(self.word_delay_s)
            for index, chunks in enumerate(pieces):
                if step < len(chunks):
                    yield index, chunks[step]

    @property
    def last_messages(self) -> list[dict[str, Any]]:
        return self.history[-1].messages if self.history else []
