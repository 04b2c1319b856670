"""Decoding several sequences of the offline model as one batch, streaming each on its own.

Why a batch: decoding a 135M model on a CPU is memory-bound. Every step reads all the weights
whatever the batch size, so the two outputs of a pair (and the reserved pair after them) cost
about as much as one when they are decoded together.

How: the prompts are left-padded to one length; each step feeds every unfinished row its last
token, samples each row with its own settings (temperature, top-p, seed), and turns each row's
tokens into text deltas for its own stream. A row ends alone (end of sequence, its token limit,
one of its stop strings, or its reader gone) and leaves the batch, so the others go on without
it.

The model is shared by every caller in the process, behind a ``ModelLock`` that serves callers
waiting for the screen before background work, and lets a background batch step aside between
two tokens when such a caller arrives.

At interpreter exit every decode ends at its next token and the exit waits for it to leave
torch (``stop_decoding``): a daemon thread still inside a torch kernel while the interpreter
tears torch down aborts the process ("terminate called without an active exception").
"""

from __future__ import annotations

import atexit
import inspect
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from promptopt.llm.base import Chunk, LLMRequest, Usage

PROMOTE_POLL_S = 0.05  # how often a waiting background job asks whether it was promoted
Rank = bool | int  # 0 (or False) foreground, 1 made ahead, 2 (or True) background
Urgency = Rank | Callable[[], Rank]


def rank_of(urgency: Urgency) -> int:
    value = urgency() if callable(urgency) else urgency
    if isinstance(value, bool):
        return 2 if value else 0
    return min(max(int(value), 0), 2)


EXIT_WAIT_S = 30.0  # at exit, the longest wait for a decode to reach its next token

_STOPPING = threading.Event()
_LOCKS: weakref.WeakSet[ModelLock] = weakref.WeakSet()


def stop_decoding(timeout: float = EXIT_WAIT_S) -> bool:
    """End every decode in this process at its next token and hold every model lock, so that no
    thread is (or gets) inside the model afterwards. Registered to run at interpreter exit;
    returns whether every lock was taken in time."""
    _STOPPING.set()
    deadline = time.monotonic() + timeout
    taken = True
    for lock in list(_LOCKS):
        # Kept, not released: a job that was waiting must not start a decode now.
        taken = lock.acquire(timeout=max(0.0, deadline - time.monotonic())) and taken
    return taken


atexit.register(stop_decoding)


class ModelLock:
    """One model, one job at a time; jobs the user waits for go first, then pairs made ahead of
    the reader, then other background work (proposals, verification).

    A job's rank is 0 (foreground), 1 (made ahead) or 2 (background); ``True``/``False`` mean 2
    and 0. A job waits while any job of a lower rank waits, and a running batch asks
    ``waiting_before(its rank)`` between tokens and pauses (releases, then re-acquires) if so."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._waiting = [0, 0, 0]  # waiters by rank
        _LOCKS.add(self)

    def acquire(self, *, background: Urgency = False, timeout: float | None = None) -> bool:
        """``background`` may be a function: a waiter asks it again now and then, so a job
        promoted while it waits (a pair made ahead that the user now waits for) goes before
        the others from then on."""
        deadline = None if timeout is None else time.monotonic() + timeout
        counted: int | None = None  # the rank this waiter is counted under
        with self._cond:
            try:
                while True:
                    rank = rank_of(background)
                    if rank != counted:
                        if counted is not None:
                            self._waiting[counted] -= 1
                        self._waiting[rank] += 1
                        counted = rank
                    if not self._held and not any(self._waiting[:rank]):
                        self._held = True
                        return True
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    if rank and callable(background):
                        left = PROMOTE_POLL_S if left is None else min(left, PROMOTE_POLL_S)
                    self._cond.wait(left)
            finally:
                if counted is not None:
                    self._waiting[counted] -= 1
                    # A waiter of a higher rank may have been held back only by this one.
                    self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def foreground_waiting(self) -> bool:
        return self.waiting_before(1)

    def waiting_before(self, rank: int) -> bool:
        """Whether a job of a lower rank than ``rank`` waits."""
        with self._cond:
            return any(self._waiting[:rank])

    def __enter__(self) -> ModelLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class Threads:
    """torch's thread counts: a prompt is compute-bound (hundreds of positions per product), so
    it takes every core it is given; a step is memory-bound, where one thread on a small busy
    machine loses less at thread barriers than two gain (see ``local.default_threads``)."""

    prompt_threads: int
    step_threads: int
    # Rows whose prompts are read at once, one thread each (``LeanLlama.forward``'s workers).
    prompt_rows: int = 1

    def prompt(self) -> None:
        _set_threads(self.prompt_threads)

    def steps(self) -> None:
        _set_threads(self.step_threads)


def _set_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


class StopScanner:
    """Turns a row's growing text into deltas, cut before the first stop string. A stop string
    may arrive split over several tokens, so the last ``len(longest stop) - 1`` characters are
    held back until they cannot start one."""

    def __init__(self, stops: list[str] | None) -> None:
        self.stops = [s for s in (stops or []) if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.sent = 0  # characters of the text already emitted
        self.stopped = False

    def feed(self, text: str, *, final: bool = False) -> str:
        """The delta to emit for the row's whole text so far; sets ``stopped`` at a stop."""
        if self.stopped:
            return ""
        if text.endswith("\ufffd") and not final:
            text = text[:-1]  # half of a multi-byte character: wait for the rest
        start = max(0, self.sent - self.hold)
        hits = [i for i in (text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            end = min(hits)
        elif final:
            end = len(text)
        else:
            end = max(self.sent, len(text) - self.hold)
        delta = text[self.sent : end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return delta


@dataclass
class Row:
    """One sequence of the batch."""

    index: int
    request: LLMRequest
    prompt_ids: list[int]
    cancel: threading.Event
    generator: Any  # torch.Generator or None (greedy)
    scanner: StopScanner
    tokens: list[int] = field(default_factory=list)

    def text(self, tokenizer: Any, ended: bool) -> str:
        """The row's whole text so far (without the end-of-sequence token). Decoded whole each
        step: 0.08 ms on average over a 256-token output, nothing next to a forward step."""
        ids = self.tokens[:-1] if ended else self.tokens
        return str(tokenizer.decode(ids, skip_special_tokens=True))


def decode_batch(
    loaded: Any,
    requests: list[LLMRequest],
    cancels: list[threading.Event],
    *,
    background: Urgency = False,
    threads: Threads | None = None,
) -> Iterator[tuple[int, Chunk]]:
    """Yield ``(request index, chunk)``: ``started`` for all, then text deltas, then one usage
    chunk per request as it ends. ``loaded`` is a ``LoadedModel`` (model, tokenizer, device,
    lock). ``background`` may be a function, asked again between tokens. ``threads``: torch's
    thread counts for the prompts and for the steps after (set while this batch holds the
    model, since they are process-wide)."""
    lock: ModelLock = loaded.lock
    lock.acquire(background=background)
    try:
        for i in range(len(requests)):
            yield i, Chunk(started=True)
        yield from _decode_locked(loaded, requests, cancels, background=background, threads=threads)
    finally:
        lock.release()


def _decode_locked(
    loaded: Any,
    requests: list[LLMRequest],
    cancels: list[threading.Event],
    *,
    background: Urgency,
    threads: Threads | None = None,
) -> Iterator[tuple[int, Chunk]]:
    import torch

    tokenizer, model, device = loaded.tokenizer, loaded.model, loaded.device
    rows = [_row(tokenizer, i, r, cancels[i]) for i, r in enumerate(requests)]
    eos = _eos_ids(tokenizer, model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    width = max(len(r.prompt_ids) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows])
    mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows])
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    longest = max(r.request.params.max_tokens for r in rows)
    starts = [width - len(r.prompt_ids) for r in rows]
    workers = threads.prompt_rows if threads is not None else 1
    stepper = _stepper(loaded, width + longest + 1, starts, workers)
    active = list(rows)
    with torch.inference_mode():
        if threads is not None:
            threads.prompt()
        while active:
            logits = stepper.step(ids, mask, positions)
            if threads is not None:
                threads.steps()
            keep: list[int] = []
            for k, row in enumerate(active):
                token = _sample(logits[k], row)
                row.tokens.append(token)
                ended = token in eos
                limit = len(row.tokens) >= row.request.params.max_tokens
                final = ended or limit or row.cancel.is_set() or _STOPPING.is_set()
                delta = row.scanner.feed(row.text(tokenizer, ended), final=final)
                if delta:
                    yield row.index, Chunk(text=delta)
                if final or row.scanner.stopped:
                    yield row.index, Chunk(usage=_usage(row))
                else:
                    keep.append(k)
            if len(keep) < len(active):
                if not keep:
                    break
                index = torch.tensor(keep, device=device)
                stepper.keep(index)
                mask = mask[index]
                positions = positions[index]
                active = [active[k] for k in keep]
            ids = torch.tensor([[row.tokens[-1]] for row in active], device=device)
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            positions = positions[:, -1:] + 1
            rank = rank_of(background)
            if rank and loaded.lock.waiting_before(rank):
                yield from _step_aside(loaded.lock, active, background)


class _HFStepper:
    """transformers' own forward and cache (the GPU path, and fp32/bf16 on a CPU)."""

    def __init__(self, model: Any) -> None:
        from transformers.cache_utils import DynamicCache

        self.model = model
        self.cache = DynamicCache()
        # transformers 5.x renames the forward's cache argument; older ones know only the first.
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        # Only the last position's logits are needed: at prefill that is one row of the
        # vocabulary-sized head instead of one per prompt token.
        self.extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    def step(self, ids: Any, mask: Any, positions: Any) -> Any:
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self.cache_arg: self.cache},
            **self.extra,
        )
        return out.logits[:, -1, :].float()

    def keep(self, index: Any) -> None:
        self.cache.batch_select_indices(index)


class _LeanStepper:
    """The lean forward (``promptopt.llm.lean``) with its preallocated cache."""

    def __init__(self, lean: Any, capacity: int, starts: list[int], workers: int) -> None:
        self.lean = lean
        self.cache = lean.new_cache(capacity, starts)
        self.workers = workers  # rows whose prompts are read at once

    def step(self, ids: Any, mask: Any, positions: Any) -> Any:
        # The cache knows each row's padding; the mask is transformers' way of saying it.
        return self.lean.forward(ids, positions, self.cache, workers=self.workers)

    def keep(self, index: Any) -> None:
        self.cache.keep(index)


def _stepper(
    loaded: Any, capacity: int, starts: list[int], workers: int = 1
) -> _HFStepper | _LeanStepper:
    """The lean forward when the model has one, else transformers' (whose prompts are one
    forward for every row: ``workers`` is for the lean one)."""
    lean = getattr(loaded, "lean", None)
    if lean is not None:
        return _LeanStepper(lean, capacity, starts, workers)
    return _HFStepper(loaded.model)


def _step_aside(
    lock: ModelLock, active: list[Row], background: Urgency
) -> Iterator[tuple[int, Chunk]]:
    """Let a job the user waits for run first; this batch keeps its state and goes on after."""
    for row in active:
        yield row.index, Chunk(paused=True)
    lock.release()
    lock.acquire(background=background)
    for row in active:
        yield row.index, Chunk(started=True)


def _row(tokenizer: Any, index: int, request: LLMRequest, cancel: threading.Event) -> Row:
    import torch

    encoded = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True)
    ids = encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
    params = request.params
    generator = None
    if params.temperature > 0:
        generator = torch.Generator()
        if params.seed is not None:
            generator.manual_seed(params.seed)
        else:
            generator.seed()
    return Row(index, request, list(ids), cancel, generator, StopScanner(params.stop))


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


def _sample(logits: Any, row: Row) -> int:
    import torch

    params = row.request.params
    if row.generator is None:
        return int(torch.argmax(logits).item())
    scaled = logits / params.temperature
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p is not None and params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest set of tokens whose mass reaches top_p (at least one).
        outside = sorted_probs.cumsum(-1) - sorted_probs >= params.top_p
        sorted_probs[outside] = 0.0
        choice = torch.multinomial(sorted_probs.cpu(), 1, generator=row.generator)
        return int(order[int(choice.item())].item())
    return int(torch.multinomial(probs.cpu(), 1, generator=row.generator).item())


def _usage(row: Row) -> Usage:
    return Usage(prompt_tokens=len(row.prompt_ids), completion_tokens=len(row.tokens), cost=0.0)
