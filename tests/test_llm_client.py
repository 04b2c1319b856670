"""LLMClient behaviour through the fake backend: streaming, retries, time limit, cache, call log,
and the errors a user sees for missing keys, unknown models and bad parameters."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from promptopt.llm import (
    CallContext,
    FakeLLM,
    GenerationParams,
    LLMClient,
    LLMError,
    LLMTimeoutError,
    MissingKeyError,
    TransientLLMError,
    UnknownModelError,
    create_client,
)
from promptopt.storage import Store

MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Name a colour."},
]


@pytest.fixture
def project_id(store: Store) -> int:
    return store.projects.create("llm-client", "Rewrite: {input}").id


# -- streaming ---------------------------------------------------------------------------------


def test_stream_yields_deltas_then_completion(client: LLMClient, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(["deep sea blue"])
    response = client.stream(MESSAGES, model="fake")
    deltas = list(response)
    assert deltas == ["deep", " sea", " blue"]
    completion = response.completion()
    assert completion.text == "deep sea blue"
    assert completion.model == "fake"
    assert completion.usage.completion_tokens == 3
    assert completion.usage.prompt_tokens == 5  # words in the two messages, as the fake counts
    assert not completion.cached
    assert fake_llm.last_messages == MESSAGES


def test_a_stopped_call_keeps_its_text_is_logged_and_never_cached(
    store: Store, project_id: int
) -> None:
    """Cutting an output short keeps what was written; the call log shows it was cut, and the
    cache never serves the unfinished text as the full answer."""
    slow = FakeLLM(default="one two three four five six seven eight", word_delay_s=0.01)
    client = create_client(store, fake=slow, backoff_s=0.0)
    ctx = CallContext(purpose="compare", project_id=project_id)
    response = client.stream(MESSAGES, model="fake", context=ctx, use_cache=True)
    seen = []
    for delta in response:
        seen.append(delta)
        if len(seen) == 3:
            break
    completion = response.stop("Cut short by the user.")
    assert completion.text == "one two three"
    assert response.completion() is completion
    row = store.calls.list(project_id)[0]
    assert row.output == "one two three"
    assert row.error == "Cut short by the user."
    again = client.stream(MESSAGES, model="fake", context=ctx, use_cache=True)
    assert again.completion().text == "one two three four five six seven eight"
    assert not again.completion().cached


def test_complete_accepts_a_plain_string(client: LLMClient, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(["red"])
    assert client.complete("Name a colour.", model="fake").text == "red"
    assert fake_llm.last_messages == [{"role": "user", "content": "Name a colour."}]


# -- retries -----------------------------------------------------------------------------------


def test_transient_error_is_retried_then_succeeds(store: Store) -> None:
    fake = FakeLLM([TransientLLMError("rate limited"), TransientLLMError("busy"), "green"])
    client = create_client(store, fake=fake, backoff_s=0.0)
    assert client.complete(MESSAGES, model="fake").text == "green"
    assert len(fake.history) == 3
    rows = store.calls.list()
    assert [r.error for r in rows] == [None]  # retries inside one call: one row


def test_retries_exhausted_raise_llm_error_and_log_it(store: Store) -> None:
    fake = FakeLLM([TransientLLMError("rate limited")] * 5)
    slept: list[float] = []
    client = create_client(store, fake=fake, backoff_s=0.01, max_retries=2, sleep=slept.append)
    with pytest.raises(LLMError, match="after 3 attempt") as info:
        client.complete(MESSAGES, model="fake")
    assert not isinstance(info.value, TransientLLMError)  # callers see a final failure
    assert len(fake.history) == 3
    assert len(slept) == 2 and slept[1] > slept[0] * 0.9  # exponential backoff (with jitter)
    (row,) = store.calls.list()
    assert row.output is None
    assert row.error is not None and "rate limited" in row.error


def test_non_transient_error_is_not_retried(client: LLMClient, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue([LLMError("content refused")])
    with pytest.raises(LLMError, match="content refused"):
        client.complete(MESSAGES, model="fake")
    assert len(fake_llm.history) == 1


# -- time limit --------------------------------------------------------------------------------


def test_slow_backend_times_out_quickly(store: Store) -> None:
    fake = FakeLLM(["too late"], delay_s=3.0)
    client = create_client(store, fake=fake, timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError, match="did not answer within"):
        client.complete(MESSAGES, model="fake")
    assert time.monotonic() - started < 1.5
    (row,) = store.calls.list()
    assert row.error is not None and row.output is None


def test_timeout_calls_the_backends_cancel_hook(store: Store) -> None:
    class Hanging:
        def __init__(self) -> None:
            self.cancelled: list[Any] = []

        def stream(self, request: Any) -> Iterator[Any]:
            time.sleep(2.0)
            yield from ()

        def cancel_event(self, request: Any) -> None:
            self.cancelled.append(request)

    backend = Hanging()
    client = create_client(store, timeout_s=0.1)
    client.register("hang", backend)
    with pytest.raises(LLMTimeoutError):
        client.complete("hello", model="hang/x")
    assert [r.model for r in backend.cancelled] == ["hang/x"]


# -- cache -------------------------------------------------------------------------------------


def test_cache_hit_does_not_reach_the_backend(store: Store, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(["first answer", "second answer", "third answer"])
    client = create_client(store, fake=fake_llm)
    params = GenerationParams(temperature=0.0, seed=1)
    first = client.complete(MESSAGES, model="fake", params=params, use_cache=True)
    second = client.complete(MESSAGES, model="fake", params=params, use_cache=True)
    assert (first.text, first.cached) == ("first answer", False)
    assert (second.text, second.cached) == ("first answer", True)
    assert len(fake_llm.history) == 1

    other_seed = client.complete(
        MESSAGES, model="fake", params=GenerationParams(temperature=0.0, seed=2), use_cache=True
    )
    assert (other_seed.text, other_seed.cached) == ("second answer", False)
    uncached = client.complete(MESSAGES, model="fake", params=params)
    assert (uncached.text, uncached.cached) == ("third answer", False)
    assert len(fake_llm.history) == 3

    # The cache lives in the call log, so a new client (a restarted app) hits it too.
    fresh = create_client(store, fake=FakeLLM(default=None))
    again = fresh.complete(MESSAGES, model="fake", params=params, use_cache=True)
    assert (again.text, again.cached) == ("third answer", True)
    assert [r.cached for r in store.calls.list()] == [1, 0, 0, 1, 0]


def test_failed_call_is_never_served_from_cache(store: Store) -> None:
    fake = FakeLLM([LLMError("boom"), "fine"])
    client = create_client(store, fake=fake)
    with pytest.raises(LLMError):
        client.complete(MESSAGES, model="fake", use_cache=True)
    assert client.complete(MESSAGES, model="fake", use_cache=True).text == "fine"


# -- call log ----------------------------------------------------------------------------------


def test_call_log_records_the_whole_call(
    store: Store, client: LLMClient, fake_llm: FakeLLM, project_id: int
) -> None:
    fake_llm.enqueue(["teal"])
    completion = client.complete(
        MESSAGES,
        model="fake/colours",
        params={"temperature": 0.2, "max_tokens": 16, "seed": 7},
        context=CallContext(purpose="condense", project_id=project_id),
    )
    assert completion.call_id is not None
    row = store.calls.get(completion.call_id)
    assert row.messages == MESSAGES
    assert row.model == "fake/colours"
    assert row.params == {"temperature": 0.2, "max_tokens": 16, "seed": 7}
    assert row.output == "teal"
    assert (row.prompt_tokens, row.completion_tokens) == (5, 1)
    assert row.latency_ms is not None and row.latency_ms >= 0
    assert row.purpose == "condense"
    assert row.project_id == project_id
    assert row.error is None
    assert row.cache_key and len(row.cache_key) == 64


def test_failed_call_leaves_an_error_row(store: Store, project_id: int) -> None:
    fake = FakeLLM([LLMError("the provider refused")])
    client = create_client(store, fake=fake)
    with pytest.raises(LLMError):
        client.complete(MESSAGES, model="fake", context=CallContext("generate", project_id))
    (row,) = store.calls.list(project_id)
    assert row.error is not None and "the provider refused" in row.error
    assert row.output is None
    assert row.messages == MESSAGES


# -- user-facing errors ------------------------------------------------------------------------


def _forbid_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.llm.litellm_backend import import_litellm

    litellm = import_litellm()

    def no_call(**kwargs: Any) -> Any:
        raise AssertionError("litellm.completion must not be reached")

    monkeypatch.setattr(litellm, "completion", no_call)


def test_missing_key_names_the_variable(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _forbid_network(monkeypatch)
    client = create_client(store)
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY") as info:
        client.complete("hello", model="gpt-4o-mini")
    assert "local/smollm2" in str(info.value)  # says what else works
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="ANTHROPIC_API_KEY"):
        client.complete("hello", model="anthropic/claude-3-5-haiku-latest")


def test_unknown_model_explains_how_to_name_models(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forbid_network(monkeypatch)
    client = create_client(store)
    with pytest.raises(UnknownModelError) as info:
        client.complete("hello", model="no-such-model-anywhere")
    message = str(info.value)
    for example in ("gpt-4o-mini", "anthropic/", "ollama/", "openai/", "api_base", "local/smollm2"):
        assert example in message
    with pytest.raises(UnknownModelError, match="local/smollm2"):
        client.complete("hello", model="local/llama-70b")  # refused before any model loads


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"temprature": 0.5}, "temprature"),
        ({"temperature": 5}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_p": 0}, "top_p"),
    ],
)
def test_bad_params_give_a_clear_error(
    client: LLMClient, fake_llm: FakeLLM, params: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(LLMError, match="Invalid generation parameters") as info:
        client.complete("hello", model="fake", params=params)
    assert fragment in str(info.value)
    assert fake_llm.history == []


def test_bad_messages_give_a_clear_error(client: LLMClient) -> None:
    with pytest.raises(LLMError, match="role"):
        client.complete([{"role": "wizard", "content": "hi"}], model="fake")
    with pytest.raises(LLMError, match="at least one message"):
        client.complete([], model="fake")


# -- secrets -----------------------------------------------------------------------------------

SECRET = "sk-test-Zq81SECRETvalue0042"


def _canned_stream(calls: list[dict[str, Any]]) -> Any:
    """A stand-in for litellm.completion: records the call, streams a fixed answer through
    litellm's own mock path (no network)."""
    from promptopt.llm.litellm_backend import import_litellm

    real = import_litellm().completion

    def completion(**kwargs: Any) -> Any:
        calls.append(kwargs)
        mocked = {k: v for k, v in kwargs.items() if k != "api_base"}
        return real(**mocked, mock_response="A canned answer.")

    return completion


def test_no_api_key_value_reaches_the_call_log(
    store: Store, monkeypatch: pytest.MonkeyPatch, project_id: int
) -> None:
    from promptopt.llm.litellm_backend import import_litellm

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(import_litellm(), "completion", _canned_stream(calls))
    client = create_client(store)
    completion = client.complete(
        MESSAGES, model="gpt-4o-mini", context=CallContext("generate", project_id)
    )
    assert completion.text == "A canned answer."
    assert len(calls) == 1 and "api_key" not in calls[0]  # litellm reads the env itself

    # A provider error that echoes the key must not carry it into the log either.
    def leaky(**kwargs: Any) -> Any:
        import litellm

        raise litellm.exceptions.BadRequestError(
            message=f"Bad request with key {SECRET}", model="gpt-4o-mini", llm_provider="openai"
        )

    monkeypatch.setattr(import_litellm(), "completion", leaky)
    with pytest.raises(LLMError) as info:
        client.complete(MESSAGES, model="gpt-4o-mini", context=CallContext("generate", project_id))
    assert SECRET not in str(info.value)

    assert len(store.calls.list(project_id)) == 2
    conn = sqlite3.connect(store.path)
    try:
        for row in conn.execute("SELECT * FROM llm_call"):
            assert all(SECRET not in str(value) for value in row)
    finally:
        conn.close()


def test_empty_model_output_is_an_error_and_retry_asks_again(store: Any, client: Any) -> None:
    """Issue 9, failure 6: an empty reply was shown as a finished pair and could be voted on."""
    from promptopt.generation import GenerationSettings, generate, generate_many
    from promptopt.llm import EmptyOutputError

    settings = GenerationSettings(model="fake", seed=1)
    client.backends["fake"].enqueue(["  \n ", "\t"])
    with pytest.raises(EmptyOutputError, match="Retry"):
        generate(client, "{input}", "x", settings).text()
    first, second = generate_many(client, [("{input}", "x"), ("{input}", "y")], settings)
    with pytest.raises(EmptyOutputError):
        first.completion()
    assert second.text() == "OK"  # one empty output does not fail its sibling
    # Both empty calls are logged, and neither is served from the cache on Retry.
    client.backends["fake"].enqueue(["a real answer"])
    assert generate(client, "{input}", "x", settings).completion().text == "a real answer"
    outputs = [c.output for c in store.calls.list()]
    assert outputs.count("  \n ") == 1 and outputs.count("a real answer") == 1
