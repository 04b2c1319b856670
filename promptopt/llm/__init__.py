"""One LLM client over litellm, the offline default model, and a fake for tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from promptopt.llm.base import (
    Completion,
    EmptyOutputError,
    GenerationParams,
    LLMError,
    LLMTimeoutError,
    MissingKeyError,
    Priority,
    TransientLLMError,
    UnknownModelError,
)
from promptopt.llm.client import (
    LOCAL_DEFAULT,
    CallContext,
    LLMClient,
    StreamingResponse,
    default_model,
)
from promptopt.llm.fake import FakeLLM

if TYPE_CHECKING:
    from promptopt.storage import Store


def create_client(
    store: Store | None = None,
    *,
    fake: FakeLLM | None = None,
    timeout_s: float | None = None,
    **kwargs: object,
) -> LLMClient:
    """The factory for real and fake clients alike. With ``fake``, model names ``fake`` and
    ``fake/...`` are answered by it; every other name still routes to the real backends."""
    import os

    if timeout_s is None:
        timeout_s = float(os.environ.get("PROMPTOPT_LLM_TIMEOUT", "120"))
    client = LLMClient(store=store, timeout_s=timeout_s, **kwargs)  # type: ignore[arg-type]
    if fake is not None:
        client.register("fake", fake)
    return client


__all__ = [
    "LOCAL_DEFAULT",
    "CallContext",
    "Completion",
    "EmptyOutputError",
    "FakeLLM",
    "GenerationParams",
    "LLMClient",
    "LLMError",
    "LLMTimeoutError",
    "MissingKeyError",
    "Priority",
    "StreamingResponse",
    "TransientLLMError",
    "UnknownModelError",
    "create_client",
    "default_model",
]
