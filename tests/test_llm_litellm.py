"""The litellm backend with ``litellm.completion`` replaced: no test reaches the network.

The stand-in streams through litellm's own mock path (``mock_response``), so the chunks have
exactly the shape real providers produce, usage chunk included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from promptopt.llm import (
    GenerationParams,
    LLMError,
    MissingKeyError,
    TransientLLMError,
    UnknownModelError,
    create_client,
)
from promptopt.llm.base import LLMRequest
from promptopt.llm.litellm_backend import LiteLLMBackend, import_litellm, redact_secrets
from promptopt.storage import Store

litellm = import_litellm()
REAL_COMPLETION = litellm.completion
KEY = "sk-test-litellm-backend-0000"


class Recorder:
    """Replaces litellm.completion: records kwargs, then answers or raises."""

    def __init__(self, answer: str = "Hello from the mock", usage: bool = True) -> None:
        self.answer = answer
        self.usage = usage
        self.calls: list[dict[str, Any]] = []
        self.raise_first: list[BaseException] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self.raise_first:
            raise self.raise_first.pop(0)
        # litellm's mock path ignores the provider; api_base/api_key would only be passed on.
        mocked = {k: v for k, v in kwargs.items() if k not in ("api_base", "api_key")}
        chunks = list(REAL_COMPLETION(**mocked, mock_response=self.answer))
        if not self.usage:
            chunks = [c for c in chunks if getattr(c, "usage", None) is None]
        return iter(chunks)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(litellm, "completion", rec)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return rec


def _request(model: str = "gpt-4o-mini", **params: Any) -> LLMRequest:
    return LLMRequest(
        model=model,
        messages=[{"role": "user", "content": "Say hello."}],
        params=GenerationParams(**params),
    )


def test_streams_text_then_usage_and_cost(recorder: Recorder) -> None:
    chunks = list(LiteLLMBackend().stream(_request(temperature=0.0, max_tokens=32, seed=3)))
    text = "".join(c.text for c in chunks)
    assert text == "Hello from the mock"
    assert len([c for c in chunks if c.text]) > 1  # really streamed, not one block
    final = chunks[-1]
    assert final.text == "" and final.usage is not None
    assert final.usage.prompt_tokens and final.usage.completion_tokens
    assert final.usage.cost is not None and final.usage.cost > 0  # gpt-4o-mini has a price
    (call,) = recorder.calls
    assert call["stream"] is True
    assert call["stream_options"] == {"include_usage": True}
    assert (call["temperature"], call["max_tokens"], call["seed"]) == (0.0, 32, 3)
    assert "top_p" not in call and "stop" not in call  # unset options are not sent
    assert call["num_retries"] == 0  # the client retries, not litellm


def test_usage_is_counted_when_the_provider_sends_none(recorder: Recorder) -> None:
    recorder.usage = False
    final = list(LiteLLMBackend().stream(_request()))[-1]
    assert final.usage is not None
    assert final.usage.prompt_tokens and final.usage.completion_tokens


def test_unpriced_model_has_no_cost_and_api_base_passes_through(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A vLLM server: OpenAI-compatible, any model name, usually no key.
    monkeypatch.delenv("OPENAI_API_KEY")
    request = _request("openai/my-finetune")
    request.api_base = "http://localhost:8000/v1"
    final = list(LiteLLMBackend().stream(request))[-1]
    assert final.usage is not None and final.usage.cost is None
    (call,) = recorder.calls
    assert call["api_base"] == "http://localhost:8000/v1"
    assert call["api_key"] == "not-needed"  # a placeholder, since the server needs none


def test_api_base_through_the_client_is_logged_without_keys(
    recorder: Recorder, store: Store
) -> None:
    client = create_client(store)
    completion = client.complete(
        "hi", model="openai/my-finetune", api_base="http://gpu-box:8000/v1"
    )
    assert completion.text == "Hello from the mock"
    assert recorder.calls[0]["api_base"] == "http://gpu-box:8000/v1"
    assert "api_key" not in recorder.calls[0]  # the real key stays in the environment
    (row,) = store.calls.list()
    assert row.params["api_base"] == "http://gpu-box:8000/v1"
    assert KEY not in repr(row)


def test_stream_options_only_where_supported(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")
    list(LiteLLMBackend().stream(_request("anthropic/claude-3-5-haiku-latest")))
    assert "stream_options" not in recorder.calls[0]


def test_ollama_needs_no_key(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_BASE", raising=False)
    chunks = list(LiteLLMBackend().stream(_request("ollama/llama3.2")))
    assert "".join(c.text for c in chunks) == "Hello from the mock"


def test_missing_key_is_reported_before_any_call(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="GROQ_API_KEY"):
        list(LiteLLMBackend().stream(_request("groq/llama-3.1-8b-instant")))
    assert recorder.calls == []


def test_unknown_model(recorder: Recorder) -> None:
    with pytest.raises(UnknownModelError, match="openai/<model>"):
        list(LiteLLMBackend().stream(_request("mystery-model-9000")))
    assert recorder.calls == []


def _exc(name: str) -> Callable[[], BaseException]:
    cls = getattr(litellm.exceptions, name)
    if name == "Timeout":
        return lambda: cls(message="timed out", model="gpt-4o-mini", llm_provider="openai")
    if name in ("BadRequestError", "NotFoundError", "ContextWindowExceededError"):
        return lambda: cls(message=f"{name} happened", model="gpt-4o-mini", llm_provider="openai")
    return lambda: cls(message=f"{name} happened", llm_provider="openai", model="gpt-4o-mini")


@pytest.mark.parametrize(
    "name",
    [
        "RateLimitError",
        "Timeout",
        "APIConnectionError",
        "ServiceUnavailableError",
        "InternalServerError",
        "BadGatewayError",
    ],
)
def test_transient_errors_are_retryable(recorder: Recorder, name: str) -> None:
    recorder.raise_first = [_exc(name)()]
    with pytest.raises(TransientLLMError):
        list(LiteLLMBackend().stream(_request()))


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("AuthenticationError", "OPENAI_API_KEY"),
        ("BadRequestError", "rejected the request"),
        ("NotFoundError", "does not know the model"),
        ("ContextWindowExceededError", "too long"),
    ],
)
def test_other_errors_are_final_and_readable(recorder: Recorder, name: str, fragment: str) -> None:
    recorder.raise_first = [_exc(name)()]
    with pytest.raises(LLMError, match=fragment) as info:
        list(LiteLLMBackend().stream(_request()))
    assert not isinstance(info.value, TransientLLMError)
    assert "litellm." not in str(info.value)


def test_unexpected_exception_becomes_llm_error(recorder: Recorder) -> None:
    recorder.raise_first = [ValueError("socket went sideways")]
    with pytest.raises(LLMError, match="socket went sideways"):
        list(LiteLLMBackend().stream(_request()))


def test_client_retries_a_rate_limit_then_succeeds(recorder: Recorder, store: Store) -> None:
    recorder.raise_first = [_exc("RateLimitError")(), _exc("ServiceUnavailableError")()]
    client = create_client(store, backoff_s=0.0)
    assert client.complete("hi", model="gpt-4o-mini").text == "Hello from the mock"
    assert len(recorder.calls) == 3


def test_redact_secrets_hides_key_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-1234567890")
    text = redact_secrets(f"failed with {KEY} and tok-1234567890")
    assert "tok-1234567890" not in text and "<MY_SERVICE_TOKEN>" in text
