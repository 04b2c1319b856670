"""Storage: migrations, the repository API, transactions, and the refusal to touch bad files."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from promptopt.storage import (
    Database,
    StorageError,
    Store,
    ValidationError,
    default_db_path,
    open_store,
)
from promptopt.storage.migrations import MIGRATIONS, migration_names

EXPECTED_TABLES = {
    "project",
    "input",
    "prompt",
    "llm_call",
    "comparison",
    "edit",
    "preference",
    "embedding",
    "memory",
    "engine_state",
}


def test_db_lives_under_promptopt_home(promptopt_home: Path) -> None:
    assert default_db_path() == promptopt_home / "promptopt.db"
    store = open_store()
    assert store.path == promptopt_home / "promptopt.db"
    assert store.path.exists()


def test_migrations_from_empty_create_every_table(store: Store) -> None:
    tables = set(store.database.db.table_names())
    assert tables >= EXPECTED_TABLES
    assert store.database.schema_version() == migration_names()
    mode = store.database.db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.database.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


@pytest.mark.parametrize("stop_index", range(len(migration_names())))
def test_upgrade_from_every_earlier_version(tmp_path: Path, stop_index: int) -> None:
    """Apply the migrations up to an earlier version, write data, then upgrade: data survives."""
    path = tmp_path / "old.db"
    names = migration_names()
    db = Database(path, migrate=False)
    MIGRATIONS.apply(db.db, stop_before=names[stop_index + 1 :] or None)
    db.db.table("project").insert(
        {"name": "old", "template": "Do {input}", "created_at": "x", "updated_at": "x"}
    )
    db.close()
    upgraded = open_store(path)
    assert upgraded.database.schema_version() == names
    assert [p.name for p in upgraded.projects.list()] == ["old"]
    # Reopening applies nothing twice.
    again = open_store(path)
    assert again.database.schema_version() == names


def test_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    open_store(path).database.db.table("_sqlite_migrations").insert(
        {"migration_set": "promptopt", "name": "9999_future", "applied_at": "2099"}
    )
    before = path.read_bytes()
    with pytest.raises(StorageError, match="newer version of promptopt"):
        open_store(path)
    assert path.read_bytes() == before


def test_corrupt_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="cannot be read"):
        open_store(path)
    assert path.read_bytes() == b"this is not a database" * 100


def test_read_only_database_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ro.db"
    open_store(path).database.close()
    path.chmod(0o444)
    if os.geteuid() == 0:  # root may write anyway; make the permission check see what users see
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if Path(p) == path else real_access(p, mode)
        )
    before = path.read_bytes()
    with pytest.raises(StorageError, match="not writable"):
        open_store(path)
    assert path.read_bytes() == before


def test_unwritable_home_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="PROMPTOPT_HOME"):
        open_store(blocker / "sub" / "promptopt.db")


def test_project_crud_and_unique_names(store: Store) -> None:
    p = store.projects.create("Demo", "Summarize {input}", settings={"k": 5})
    assert p.settings == {"k": 5}
    with pytest.raises(ValidationError, match="already exists"):
        store.projects.create(" Demo ", "x {input}")
    with pytest.raises(ValidationError, match="needs a name"):
        store.projects.create("  ", "x {input}")
    renamed = store.projects.update(p.id, name="Renamed", settings={"k": 1})
    assert (renamed.name, renamed.settings) == ("Renamed", {"k": 1})
    assert store.projects.find("Renamed") is not None


def test_delete_project_removes_everything_under_it(store: Store) -> None:
    p = store.projects.create("Gone", "Do {input}")
    keep = store.projects.create("Kept", "Do {input}")
    (inp,) = store.inputs.add_many(p.id, ["hello"])
    a = store.prompts.add(p.id, "A {input}", "base")
    b = store.prompts.add(p.id, "B {input}", "rephrase", parent_id=a.id)
    store.projects.update(p.id, prompt_id=a.id)
    store.comparisons.add(
        project_id=p.id, verdict="a", annotator="u", input_id=inp, prompt_a_id=a.id,
        prompt_b_id=b.id, left="b",
    )  # fmt: skip
    edit = store.edits.add(project_id=p.id, annotator="u", output="x", edited="y")
    pref = store.preferences.add(project_id=p.id, annotator="u", text="short")
    emb = store.embeddings.put("m", "hello", np.ones(4, dtype=np.float32) / 2)
    store.memory.add(
        project_id=p.id, annotator="u", embedding_id=emb, preference_id=pref.id, edit_id=edit.id
    )
    store.engine_state.save(p.id, "compare", "u", b"state")
    store.calls.log(model="fake", messages=[], params={}, output="o", project_id=p.id)
    store.projects.delete(p.id)
    assert [x.name for x in store.projects.list()] == ["Kept"]
    assert store.comparisons.list(p.id) == []
    assert store.prompts.list(p.id, active_only=False) == []
    # The call log is kept (it is the audit trail) but detached from the project.
    assert store.calls.list()[0].project_id is None
    assert keep.id != p.id


def test_inputs_keep_order_and_skip_blank(store: Store) -> None:
    p = store.projects.create("P", "Do {input}")
    store.inputs.add_many(p.id, ["one", "  ", "two"])
    store.inputs.add(p.id, "three")
    assert [i.text for i in store.inputs.list(p.id)] == ["one", "two", "three"]
    with pytest.raises(ValidationError):
        store.inputs.add(p.id, "   ")


def test_comparison_validates_verdict_and_side(store: Store) -> None:
    p = store.projects.create("P", "Do {input}")
    with pytest.raises(ValidationError, match="Unknown verdict"):
        store.comparisons.add(project_id=p.id, verdict="maybe", annotator="u")
    with pytest.raises(ValidationError, match="left"):
        store.comparisons.add(project_id=p.id, verdict="a", annotator="u", left="middle")
    c = store.comparisons.add(project_id=p.id, verdict="tie", annotator="u", comment="both fine")
    assert store.comparisons.get(c.id).comment == "both fine"
    assert store.comparisons.count(p.id, "u") == 1
    assert store.comparisons.count(p.id, "other") == 0


def test_preferences_profile_operations(store: Store) -> None:
    p = store.projects.create("P", "Do {input}")
    pref = store.preferences.add(project_id=p.id, annotator="u", text="Bullet points")
    store.preferences.increment(pref.id)
    assert store.preferences.find_text(p.id, "u", "  bullet POINTS ").id == pref.id  # type: ignore[union-attr]
    store.preferences.update(pref.id, pinned=1)
    store.preferences.update(pref.id, deleted=1)
    assert store.preferences.list(p.id, "u") == []
    restored = store.preferences.update(pref.id, deleted=0)
    assert (restored.count, restored.pinned) == (2, 1)
    assert store.preferences.list(p.id, "someone else") == []
    with pytest.raises(ValidationError):
        store.preferences.update(pref.id, colour="red")


def test_embeddings_are_stored_once_and_round_trip(store: Store) -> None:
    v = np.arange(8, dtype=np.float32)
    first = store.embeddings.put("m", "text", v)
    assert store.embeddings.put("m", "text", v * 2) == first
    assert store.embeddings.put("other-model", "text", v) != first
    np.testing.assert_array_equal(store.embeddings.get(first), v)
    assert store.embeddings.model_of(first) == "m"
    np.testing.assert_array_equal(store.embeddings.lookup("m", "text"), v)  # type: ignore[arg-type]
    assert store.embeddings.lookup("m", "missing") is None


def test_memory_vectors_for_index_rebuild(store: Store) -> None:
    p = store.projects.create("P", "Do {input}")
    ids = []
    for i in range(3):
        emb = store.embeddings.put("m", f"t{i}", np.full(4, i, dtype=np.float32))
        ids.append(store.memory.add(project_id=p.id, annotator="u", embedding_id=emb).id)
    got_ids, vectors = store.memory.vectors(p.id, "u")
    assert got_ids.tolist() == ids
    assert vectors.shape == (3, 4)
    assert store.memory.count(p.id, "u") == 3
    empty_ids, _ = store.memory.vectors(p.id, "nobody")
    assert len(empty_ids) == 0


def test_engine_state_upsert(store: Store) -> None:
    p = store.projects.create("P", "Do {input}")
    assert store.engine_state.load(p.id, "compare", "u") is None
    store.engine_state.save(p.id, "compare", "u", b"one", {"votes": 1})
    store.engine_state.save(p.id, "compare", "u", b"two", {"votes": 2})
    assert store.engine_state.load(p.id, "compare", "u") == (b"two", {"votes": 2})


def test_transaction_rolls_back_on_error(store: Store) -> None:
    p = store.projects.create("P", "Do {input}")
    with pytest.raises(RuntimeError), store.transaction():
        store.inputs.add_many(p.id, ["kept?"])
        store.comparisons.add(project_id=p.id, verdict="a", annotator="u")
        raise RuntimeError("boom")
    assert store.inputs.list(p.id) == []
    assert store.comparisons.list(p.id) == []


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.comparisons.add(project_id=12345, verdict="a", annotator="u")


def test_the_projects_prompt_is_a_foreign_key(store: Store) -> None:
    """Issue 13, failure 8: ``project.prompt_id`` had no foreign key."""
    fks = {(fk.column, fk.other_table) for fk in store.database.db.table("project").foreign_keys}
    assert ("prompt_id", "prompt") in fks
    p = store.projects.create("P", "Do {input}")
    with pytest.raises(sqlite3.IntegrityError):
        store.projects.update(p.id, prompt_id=9999)


def test_the_foreign_key_migration_keeps_data_and_clears_dangling_prompts(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    db = Database(path, migrate=False)
    MIGRATIONS.apply(db.db, stop_before="0002_project_prompt_foreign_key")
    with db.transaction() as conn:
        rows = conn.table("project")
        rows.insert({"id": 1, "name": "kept", "template": "{input}", "prompt_id": 1})
        rows.insert({"id": 2, "name": "dangling", "template": "{input}", "prompt_id": 77})
        conn.table("prompt").insert({"id": 1, "project_id": 1, "text": "{input}", "origin": "base"})
        conn.table("input").insert({"id": 1, "project_id": 1, "text": "x"})
    db.close()
    upgraded = open_store(path)
    assert [(p.name, p.prompt_id) for p in upgraded.projects.list()] == [
        ("dangling", None),
        ("kept", 1),
    ]
    assert [i.text for i in upgraded.inputs.list(1)] == ["x"]
    with pytest.raises(StorageError, match="already exists"):
        upgraded.projects.create("kept", "{input}")
    indexes = upgraded.database.db.table("project").indexes
    assert any(ix.unique and ix.columns == ["name"] for ix in indexes)


def test_writes_are_visible_to_other_threads_and_connections(store: Store) -> None:
    import threading

    p = store.projects.create("P", "Do {input}")
    errors: list[BaseException] = []

    def vote(n: int) -> None:
        try:
            for _ in range(10):
                store.comparisons.add(project_id=p.id, verdict="a", annotator=f"u{n}")
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=vote, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # A separate connection (another process would see the same) reads every committed vote.
    other = open_store(store.path)
    assert other.comparisons.count(p.id) == 40


def test_call_log_round_trip(store: Store) -> None:
    call_id = store.calls.log(
        model="m",
        messages=[{"role": "user", "content": "héllo"}],
        params={"temperature": 0.1},
        output="out",
        cache_key="k",
        prompt_tokens=3,
        completion_tokens=1,
    )
    call = store.calls.get(call_id)
    assert call.messages == [{"role": "user", "content": "héllo"}]
    assert call.params == {"temperature": 0.1}
    assert store.calls.cached_output("k").output == "out"  # type: ignore[union-attr]


def test_credentials_stored_by_older_versions_are_removed(tmp_path: Path) -> None:
    """Issue 9, failure 2: user:secret@ in api_base sat in settings, call params and errors."""
    secret = "s3cret-Pa55word"
    path = tmp_path / "v3.db"
    db = Database(path, migrate=False)
    MIGRATIONS.apply(db.db, stop_before="0004_no_credentials_in_server_addresses")
    url = f"http://bob:{secret}@gpu:8000/v1?api_key=KEY-{secret}"
    with db.transaction() as conn:
        conn.table("project").insert(
            {"id": 1, "name": "p", "template": "{input}", "settings": json.dumps({"api_base": url})}
        )
        calls = conn.table("llm_call")
        calls.insert({"id": 1, "model": "m", "messages": "[]", "error": f"refused {secret}"})
        calls.insert(
            {"id": 2, "model": "m", "messages": "[]", "params": json.dumps({"api_base": url})}
        )
    db.close()
    upgraded = open_store(path)
    assert upgraded.projects.get(1).settings == {"api_base": "http://gpu:8000/v1"}
    assert upgraded.calls.get(2).params == {"api_base": "http://gpu:8000/v1"}
    assert upgraded.calls.get(1).error == "refused ***"
    upgraded.database.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for file in tmp_path.glob("v3.db*"):
        assert secret.encode() not in file.read_bytes(), file
