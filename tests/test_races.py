"""The two races found in review, run concurrently: storing one embedding from two paths at once,
and an edit whose memory item was committed separately from it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from promptopt.edit import EditService
from promptopt.llm import FakeLLM, create_client
from promptopt.projects import create_project
from promptopt.storage import open_store


def _run_together(jobs: list[Callable[[], Any]]) -> list[BaseException]:
    """Start every job at the same instant; return what they raised."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as exc:  # collected, then asserted on by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_the_same_embedding_stored_from_many_threads_gives_one_row(store: Any) -> None:
    vector = np.ones(4, dtype=np.float32)
    for round_ in range(10):
        ids: list[int] = []
        text = f"text {round_}"
        errors = _run_together(
            [lambda ids=ids, text=text: ids.append(store.embeddings.put("m", text, vector))] * 8
        )
        assert errors == []
        assert len(set(ids)) == 1 and len(ids) == 8
    count = store.database.db.execute("SELECT count(*) FROM embedding").fetchone()[0]
    assert count == 10


def test_two_processes_worth_of_connections_agree_on_one_row(store: Any) -> None:
    # A second Store on the same file has its own write lock, like a second process.
    other = open_store(store.path)
    try:
        vector = np.ones(4, dtype=np.float32)
        for round_ in range(10):
            ids: list[int] = []
            text = f"shared {round_}"
            jobs = [
                lambda s=s, ids=ids, text=text: ids.append(s.embeddings.put("m", text, vector))
                for s in (store, other)
            ]
            assert _run_together(jobs * 3) == []
            assert len(set(ids)) == 1
    finally:
        other.database.close()


def test_background_input_embedding_and_prepare_collide_safely(
    store: Any, fake_embedder: Any
) -> None:
    client = create_client(store, fake=FakeLLM(default="out"))
    inputs = [f"document number {i} about the weather" for i in range(40)]
    project = create_project(store, "race", "Summarize: {input}", "", "fake", inputs=inputs)
    service = EditService(store, client, fake_embedder)
    items = store.inputs.list(project.id)
    jobs: list[Callable[[], Any]] = [lambda: service.embed_inputs(project.id)]
    jobs += [lambda i=i: service.prepare(project.id, "ann", i.id) for i in items[:6]]
    assert _run_together(jobs) == []
    count = store.database.db.execute("SELECT count(*) FROM embedding").fetchone()[0]
    assert count == len(inputs)


def test_an_edit_and_its_memory_item_commit_together(store: Any, fake_embedder: Any) -> None:
    """A reader polling while edits are submitted never sees an edit without its memory item."""
    client = create_client(store, fake=FakeLLM(default="a short phrase"))
    project = create_project(store, "atomic", "{input}", "", "fake", inputs=["x", "y", "z"])
    service = EditService(store, client, fake_embedder, k=1)
    items = store.inputs.list(project.id)
    drafts = [service.prepare(project.id, f"a{i}", items[i % 3].id) for i in range(6)]
    done = threading.Event()
    orphans: list[int] = []
    sql = (
        "SELECT count(*) FROM edit WHERE id NOT IN "
        "(SELECT edit_id FROM memory WHERE edit_id IS NOT NULL)"
    )

    def watch() -> None:
        reader = open_store(store.path)
        try:
            while not done.is_set():
                orphans.append(reader.database.db.execute(sql).fetchone()[0])
        finally:
            reader.database.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        jobs = [
            lambda d=d: service.submit(d, "the output", f"edited by {d.annotator}", d.annotator)
            for d in drafts
        ]
        assert _run_together(jobs) == []
    finally:
        done.set()
        watcher.join(timeout=30)
    assert orphans and max(orphans) == 0
    assert store.database.db.execute(sql).fetchone()[0] == 0


def test_a_crash_before_the_memory_item_leaves_no_edit(
    store: Any, fake_embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = create_client(store, fake=FakeLLM(default="phrase"))
    project = create_project(store, "crash", "{input}", "", "fake", inputs=["x"])
    service = EditService(store, client, fake_embedder)
    draft = service.prepare(project.id, "ann", store.inputs.list(project.id)[0].id)

    def crash(**_: Any) -> Any:
        raise RuntimeError("power cut")

    monkeypatch.setattr(store.memory, "add", crash)
    with pytest.raises(RuntimeError):
        service.submit(draft, "output", "edited output", "ann")
    assert store.edits.list(project.id, "ann") == []
    assert store.database.db.execute("SELECT count(*) FROM comparison").fetchone()[0] == 0
