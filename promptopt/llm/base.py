"""Types shared by every LLM backend: the request, the streamed chunks, the finished completion.

A backend is one small protocol: ``stream(request)`` yields ``Chunk``s (text deltas, then one
final chunk carrying usage). Timeouts, retries, caching and logging live in ``LLMClient``, once,
for every backend.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from promptopt.llm.secrets import public_url


class LLMError(RuntimeError):
    """An LLM call failed; the message says what to do."""


class TransientLLMError(LLMError):
    """Worth retrying: rate limits, timeouts of the provider, 5xx, dropped connections."""


class LLMTimeoutError(LLMError):
    """The call took longer than the client's time limit."""


class EmptyOutputError(LLMError):
    """The model finished without writing anything (or only whitespace)."""


class MissingKeyError(LLMError):
    """The provider needs an API key that is not set in the environment."""


class UnknownModelError(LLMError):
    """The model name does not name any provider or local model."""


# Output length of a project that sets none: room for a summary or a short answer (~100 words).
# Decoding time grows with it, and a pair is read in seconds; a project that wants long texts
# raises its own max_tokens.
DEFAULT_MAX_TOKENS = 128


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str
    content: str


class GenerationParams(BaseModel):
    """Options of one call. Unknown keys are refused, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1, le=32768)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | None = None


class Priority:
    """How urgent a call is, which its owner may raise while it runs: a pair made ahead becomes
    the one the user waits for when a vote promotes it before it finished. Ranks: 0 somebody
    waits for it on screen, 1 made ahead of the reader (a pair the user will wait for soon), 2
    other background work; a backend with one shared model serves lower ranks first."""

    FOREGROUND, AHEAD, BACKGROUND = 0, 1, 2

    def __init__(self, background: bool = True, *, ahead: bool = False) -> None:
        self._level = self.FOREGROUND
        if background:
            self._level = self.AHEAD if ahead else self.BACKGROUND

    @property
    def level(self) -> int:
        return self._level

    @property
    def background(self) -> bool:
        return self._level != self.FOREGROUND

    def promote(self) -> None:
        """From now on the call goes before all other work (a backend checks between tokens)."""
        self._level = self.FOREGROUND


@dataclass
class LLMRequest:
    model: str
    messages: list[dict[str, str]]
    params: GenerationParams
    api_base: str | None = None
    # Work nobody waits for on screen (prefetch, proposals): a backend with one shared model
    # serves it after calls the user waits for. Not part of the request's identity.
    background: bool = False
    # When set, it decides instead of ``background`` and may be promoted while the call runs.
    priority: Priority | None = None

    def is_background(self) -> bool:
        return self.priority.background if self.priority is not None else self.background

    def rank(self) -> int:
        """0 foreground, 1 made ahead, 2 background (see ``Priority``)."""
        if self.priority is not None:
            return self.priority.level
        return Priority.BACKGROUND if self.background else Priority.FOREGROUND

    def cache_key(self) -> str:
        payload = {
            "model": self.model,
            "messages": self.messages,
            "params": self.params.model_dump(),
            # The server, not its credential: a key hash must not change with a password.
            "api_base": public_url(self.api_base),
        }
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None


@dataclass
class Chunk:
    """A text delta, or the final usage. ``started`` marks the moment a backend that queues for
    a shared resource (the local model's lock) begins (or resumes) its own work, ``paused`` the
    moment it steps aside for another job: the time limit counts only the time in between, so
    waiting behind other work never counts against a call."""

    text: str = ""
    usage: Usage | None = None
    started: bool = False
    paused: bool = False


@dataclass
class Completion:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    cached: bool = False
    call_id: int | None = None

    @property
    def total_tokens(self) -> int:
        return (self.usage.prompt_tokens or 0) + (self.usage.completion_tokens or 0)


class Backend(Protocol):
    """Turns one request into a stream of chunks. Raise TransientLLMError for retryable faults.

    Optional attributes the client looks for:
    - ``signals_start: bool``: the backend yields ``Chunk(started=True)`` when its own work
      begins; until then the client waits up to its queue limit instead of the time limit;
    - ``max_batch: int`` (> 1) and ``stream_batch(requests) -> Iterator[tuple[int, Chunk |
      BaseException]]``: several requests decoded together; the items are tagged with the
      request's index, the chunk carrying ``usage`` is the last one of its request, and an
      exception fails only its own request (one raised by the iterator fails them all);
    - ``cancel_event(request)``: stop working on ``request`` (time limit, or reader gone).
    """

    def stream(self, request: LLMRequest) -> Iterator[Chunk]: ...


BatchItem = tuple[int, "Chunk | BaseException"]


def normalise_messages(messages: Any) -> list[dict[str, str]]:
    """Accept a string, Message objects or dicts; return plain validated dicts."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    out: list[dict[str, str]] = []
    for m in messages:
        msg = m if isinstance(m, Message) else Message.model_validate(m)
        if msg.role not in ("system", "user", "assistant"):
            raise LLMError(f"Unknown message role {msg.role!r}; use system, user or assistant.")
        out.append({"role": msg.role, "content": msg.content})
    if not out:
        raise LLMError("A call needs at least one message.")
    return out
