"""Several outputs in one call: ``LLMClient.stream_many`` and ``generation.generate_many``,
batched for backends that decode together and one call per job for the others; and the time
limit that starts when a queued backend begins its own work."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from promptopt.generation import GenerationSettings, generate, generate_many
from promptopt.llm import FakeLLM, LLMError, LLMTimeoutError, create_client
from promptopt.llm.base import Chunk, LLMRequest, Usage
from promptopt.storage import Store

SETTINGS = GenerationSettings(model="fake", temperature=0.0, max_tokens=32)
JOBS = [("Summarise: {input}", "a long text"), ("Shorten: {input}", "a long text")]


@pytest.mark.parametrize("batch", [False, True])
def test_generate_many_gives_one_response_per_job(store: Store, batch: bool) -> None:
    def reply(request: LLMRequest) -> str:
        content = request.messages[-1]["content"]
        return "left side words" if content.startswith("Summarise") else "right side"

    fake = FakeLLM(default=reply, batch=batch)
    client = create_client(store, fake=fake)
    responses = generate_many(client, JOBS, SETTINGS, project_id=None, purpose="compare")
    # The second is read first: each response stands on its own.
    assert responses[1].text() == "right side"
    assert responses[0].text() == "left side words"
    assert sorted(m.messages[-1]["content"] for m in fake.history) == [
        "Shorten: a long text",
        "Summarise: a long text",
    ]
    assert fake.batches == ([2] if batch else [])
    completions = [r.completion() for r in responses]
    assert [c.usage.completion_tokens for c in completions] == [3, 2]
    rows = store.calls.list()
    assert sorted(r.output or "" for r in rows) == ["left side words", "right side"]
    assert {r.purpose for r in rows} == {"compare"}


def test_generate_many_matches_generate_and_uses_the_cache(store: Store) -> None:
    fake = FakeLLM(["one", "two", "three"], batch=True)
    client = create_client(store, fake=fake)
    single = generate(client, *JOBS[0], SETTINGS).completion()
    first, second = generate_many(client, JOBS, SETTINGS)
    assert first.completion().cached and first.text() == single.text == "one"
    assert second.text() == "two"
    assert fake.batches == []  # one job left after the cache: no batch needed


def test_batch_streams_interleave_and_read_from_threads(store: Store) -> None:
    fake = FakeLLM(["a b c d", "w x y z"], batch=True)
    client = create_client(store, fake=fake)
    responses = generate_many(client, JOBS, SETTINGS)
    seen: dict[int, list[str]] = {0: [], 1: []}

    def read(i: int) -> None:
        seen[i].extend(responses[i])

    threads = [threading.Thread(target=read, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert "".join(seen[0]) == "a b c d" and "".join(seen[1]) == "w x y z"


def test_a_failing_member_fails_alone(store: Store) -> None:
    fake = FakeLLM([LLMError("refused"), "fine"], batch=True)
    client = create_client(store, fake=fake)
    bad, good = generate_many(client, JOBS, SETTINGS)
    assert good.completion().text == "fine"
    with pytest.raises(LLMError, match="refused"):
        bad.text()
    errors = [r.error for r in store.calls.list()]
    assert sorted(e or "" for e in errors) == ["", "refused"]


def test_batches_are_split_at_the_backends_size(store: Store) -> None:
    fake = FakeLLM(batch=True)
    client = create_client(store, fake=fake)
    jobs = [(f"Variant {i}: {{input}}", "x") for i in range(6)]
    responses = generate_many(client, jobs, SETTINGS)
    assert [r.text() for r in responses] == ["OK"] * 6
    assert fake.batches == [4, 2]


class Queued:
    """A backend behind a shared lock, like the local model: it signals when its work starts."""

    signals_start = True
    max_batch = 4

    def __init__(self, hold_s: float, work_s: float) -> None:
        self.lock = threading.Lock()
        self.hold_s = hold_s
        self.work_s = work_s
        self.cancelled: list[LLMRequest] = []

    def stream(self, request: LLMRequest) -> Iterator[Chunk]:
        for _, item in self.stream_batch([request]):
            assert isinstance(item, Chunk)
            yield item

    def stream_batch(self, requests: list[LLMRequest]) -> Iterator[tuple[int, Any]]:
        with self.lock:
            for i in range(len(requests)):
                yield i, Chunk(started=True)
            time.sleep(self.work_s)
            for i in range(len(requests)):
                yield i, Chunk(text=f"done {i}")
                yield i, Chunk(usage=Usage(1, 1))

    def cancel_event(self, request: LLMRequest) -> None:
        self.cancelled.append(request)

    def occupy(self) -> threading.Thread:
        """Another job holding the model for ``hold_s``."""

        def hold() -> None:
            with self.lock:
                time.sleep(self.hold_s)

        thread = threading.Thread(target=hold)
        thread.start()
        time.sleep(0.05)
        return thread


@pytest.mark.parametrize("many", [False, True])
def test_waiting_for_the_model_does_not_count_against_the_time_limit(
    store: Store, many: bool
) -> None:
    backend = Queued(hold_s=0.6, work_s=0.1)
    client = create_client(store, timeout_s=0.4)
    client.register("queued", backend)
    other = backend.occupy()
    if many:
        texts = [r.text() for r in client.stream_many(["a", "b"], model="queued/x")]
        assert texts == ["done 0", "done 1"]
    else:
        assert client.complete("a", model="queued/x").text == "done 0"
    other.join()


@pytest.mark.parametrize("many", [False, True])
def test_the_time_limit_still_counts_the_models_work(store: Store, many: bool) -> None:
    backend = Queued(hold_s=0.0, work_s=0.8)
    client = create_client(store, timeout_s=0.2)
    client.register("queued", backend)
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError, match="did not answer within"):
        if many:
            client.stream_many(["a", "b"], model="queued/x")[0].text()
        else:
            client.complete("a", model="queued/x")
    assert time.monotonic() - started < 0.7
    assert backend.cancelled  # the backend was told to stop


def test_a_call_that_never_starts_says_the_model_was_busy(store: Store) -> None:
    backend = Queued(hold_s=1.0, work_s=0.0)
    client = create_client(store, timeout_s=5.0, queue_wait_s=0.2)
    client.register("queued", backend)
    other = backend.occupy()
    with pytest.raises(LLMTimeoutError, match="busy with other work"):
        client.complete("a", model="queued/x")
    other.join()


def test_project_output_length_and_stops_reach_the_call(store: Store) -> None:
    from promptopt.llm.base import DEFAULT_MAX_TOKENS

    project = store.projects.create("lengths", "Summarise: {input}")
    settings = GenerationSettings.from_project(store.projects.get(project.id))
    assert settings.max_tokens == DEFAULT_MAX_TOKENS <= 160  # a summary, not an essay
    assert settings.params().stop is None
    store.projects.update(project.id, settings={"max_tokens": 40, "stop": ["\n\n", ""]})
    settings = GenerationSettings.from_project(store.projects.get(project.id))
    fake = FakeLLM()
    client = create_client(store, fake=fake)
    generate_many(client, JOBS, GenerationSettings(**{**vars(settings), "model": "fake"}))[0].text()
    assert fake.history[0].params.max_tokens == 40
    assert fake.history[0].params.stop == ["\n\n"]


def test_bench_pair_writes_exactly_the_five_figures(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from promptopt.cli import main
    from promptopt.llm import bench_pair
    from promptopt.llm.client import LLMClient

    fake = FakeLLM(default="one two three", batch=True, delay_s=0.01)

    def client(**kwargs: Any) -> LLMClient:
        made = LLMClient(**kwargs)
        made.register("fake", fake)
        return made

    monkeypatch.setattr(bench_pair, "LLMClient", client)
    out = tmp_path / "pair.json"
    argv = ["bench", "pair", "--model", "fake", "--max-tokens", "8", "--repeat", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures) == {
        "single_s",
        "pair_s",
        "reference_pair_s",
        "tokens_per_s",
        "first_token_s",
    }
    assert all(isinstance(v, float | int) and v >= 0 for v in figures.values())
    printed = capsys.readouterr().out
    assert "pair / single = " in printed and "reference / pair = " in printed
    assert 2 in fake.batches  # the pair went to the backend as one batch
