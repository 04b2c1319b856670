"""The repository API: the only code in promptopt that reads or writes SQL.

``Store`` groups one small repository per table. Every write runs inside ``Database.transaction``
and is committed before the method returns, so a caller that acknowledges a vote or an edit
after calling here never acknowledges something that is not on disk. Reads and writes go through
sqlite-utils' own ``get``/``insert``/``update``/``lookup``/``rows_where``; a written row comes back
built from the values written, not read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .db import Database
from .errors import ValidationError
from .models import (
    Comparison,
    Edit,
    Input,
    LLMCall,
    MemoryItem,
    Preference,
    Project,
    Prompt,
    Rejection,
    from_row,
)
from .tables import Repository, text_hash, to_json, utcnow, where_equal

VERDICTS = ("a", "b", "tie", "both_bad", "skip")
PROJECT_FIELDS = frozenset(
    ["name", "template", "task", "generator_model", "optimizer_model", "settings", "prompt_id"]
)


def _check_settings(settings: dict[str, Any]) -> None:
    """Refuse a server address that carries a credential (``user:password@`` or a query string
    such as ``?api_key=``): it would be stored in the database and shown in the Project tab.
    The message never repeats the address, so the credential is not echoed either."""
    url = settings.get("api_base")
    if not url:
        return
    parts = urlsplit(str(url).strip())
    if "@" in parts.netloc or parts.query:
        raise ValidationError(
            "The API base URL contains a user name, password or query string; credentials are "
            "never stored. Give the address alone (for example http://host:8000/v1) and put "
            "user:password in the environment variable PROMPTOPT_API_BASE_AUTH of the server "
            "(or in the variable the project's api_base_auth_env setting names)."
        )


class ProjectRepo(Repository[Project]):
    table, model = "project", Project

    def create(
        self,
        name: str,
        template: str,
        *,
        task: str = "",
        generator_model: str | None = None,
        optimizer_model: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Project:
        name = name.strip()
        if not name:
            raise ValidationError("A project needs a name.")
        if self.find(name) is not None:
            raise ValidationError(f"A project named {name!r} already exists; pick another name.")
        _check_settings(settings or {})
        now = utcnow()
        return self._insert(
            {
                "name": name,
                "template": template,
                "task": task,
                "generator_model": generator_model,
                "optimizer_model": optimizer_model,
                "settings": to_json(settings or {}),
                "created_at": now,
                "updated_at": now,
            }
        )

    def find(self, name: str) -> Project | None:
        return self._first("name = ?", [name.strip()])

    def list(self) -> list[Project]:
        return self._where(order_by="name")

    def update(self, project_id: int, **fields: Any) -> Project:
        unknown = set(fields) - PROJECT_FIELDS
        if unknown:
            raise ValidationError(f"Unknown project fields: {', '.join(sorted(unknown))}")
        if "name" in fields:
            fields["name"] = str(fields["name"]).strip()
            other = self.find(fields["name"])
            if not fields["name"]:
                raise ValidationError("A project needs a name.")
            if other is not None and other.id != project_id:
                raise ValidationError(f"A project named {fields['name']!r} already exists.")
        if "settings" in fields:
            _check_settings(fields["settings"] or {})
            fields["settings"] = to_json(fields["settings"])
        return self._update(project_id, {**fields, "updated_at": utcnow()})

    def delete(self, project_id: int) -> None:
        """Delete a project and everything recorded under it, in one transaction."""
        self.get(project_id)
        with self.database.transaction() as db:
            db.execute("UPDATE project SET prompt_id = NULL WHERE id = ?", [project_id])
            for table in ("memory", "engine_state", "rejection"):
                db.execute(f"DELETE FROM [{table}] WHERE project_id = ?", [project_id])
            db.execute("DELETE FROM preference WHERE project_id = ?", [project_id])
            db.execute("DELETE FROM edit WHERE project_id = ?", [project_id])
            db.execute("DELETE FROM comparison WHERE project_id = ?", [project_id])
            db.execute("UPDATE llm_call SET project_id = NULL WHERE project_id = ?", [project_id])
            db.execute("UPDATE prompt SET parent_id = NULL WHERE project_id = ?", [project_id])
            db.execute("DELETE FROM prompt WHERE project_id = ?", [project_id])
            db.execute("DELETE FROM input WHERE project_id = ?", [project_id])
            db.execute("DELETE FROM project WHERE id = ?", [project_id])


class InputRepo(Repository[Input]):
    table, model = "input", Input

    def add_many(self, project_id: int, texts: Iterable[str], source: str = "typed") -> list[int]:
        texts = [t for t in texts if t is not None and str(t).strip()]
        if not texts:
            return []
        now = utcnow()
        ids: list[int] = []
        with self.database.transaction() as db:
            # Positions read inside the write transaction, so that two imports never share one.
            start = db.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM input WHERE project_id = ?",
                [project_id],
            ).fetchone()[0]
            # One prepared statement rather than sqlite-utils' per-row insert, which inspects
            # the table each time: a 10 MB import is 100,000 rows.
            cursor = db.conn.cursor()
            sql = (
                "INSERT INTO input (project_id, text, source, position, created_at) "
                "VALUES (?, ?, ?, ?, ?)"
            )
            for offset, text in enumerate(texts):
                cursor.execute(sql, (project_id, str(text), source, start + offset, now))
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def add(self, project_id: int, text: str, source: str = "typed") -> Input:
        ids = self.add_many(project_id, [text], source)
        if not ids:
            raise ValidationError("An input cannot be empty.")
        return self.get(ids[0])

    def list(self, project_id: int) -> list[Input]:
        return self._where("project_id = ?", [project_id], order_by="position, id")

    def delete(self, input_id: int) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM input WHERE id = ?", [input_id])


class PromptRepo(Repository[Prompt]):
    table, model = "prompt", Prompt

    def add(
        self,
        project_id: int,
        text: str,
        origin: str,
        *,
        parent_id: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Prompt:
        if not text or not text.strip():
            raise ValidationError("A prompt cannot be empty.")
        return self._insert(
            {
                "project_id": project_id,
                "text": text,
                "origin": origin,
                "parent_id": parent_id,
                "meta": to_json(meta or {}),
                "active": 1,
                "created_at": utcnow(),
            }
        )

    def list(self, project_id: int, *, active_only: bool = True) -> list[Prompt]:
        where = "project_id = ?" + (" AND active = 1" if active_only else "")
        return self._where(where, [project_id])

    def set_active(self, prompt_id: int, active: bool, *, merged_into: int | None = None) -> None:
        with self.database.transaction() as db:
            table = self._table(db)
            meta = json.loads(self._row(table, prompt_id)["meta"] or "{}")
            if merged_into is not None:
                meta["merged_into"] = merged_into
            table.update(prompt_id, {"active": int(active), "meta": to_json(meta)})


class CallRepo(Repository[LLMCall]):
    table, model = "llm_call", LLMCall

    def log(
        self,
        *,
        model: str,
        messages: Any,
        params: dict[str, Any],
        output: str | None,
        project_id: int | None = None,
        purpose: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cost: float | None = None,
        latency_ms: float | None = None,
        cache_key: str | None = None,
        cached: bool = False,
        error: str | None = None,
    ) -> int:
        row = {
            "project_id": project_id,
            "purpose": purpose,
            "model": model,
            "messages": to_json(messages),
            "params": to_json(params),
            "output": output,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost": cost,
            "latency_ms": latency_ms,
            "cache_key": cache_key,
            "cached": int(cached),
            "error": error,
            "created_at": utcnow(),
        }
        return self._insert(row).id

    def cached_output(self, cache_key: str) -> LLMCall | None:
        return self._first(
            "cache_key = ? AND error IS NULL AND output IS NOT NULL", [cache_key], "id DESC"
        )

    def list(self, project_id: int | None = None, limit: int = 200) -> list[LLMCall]:
        where, params = ("project_id = ?", [project_id]) if project_id is not None else (None, [])
        return self._where(where, params, "id DESC", limit)


class ComparisonRepo(Repository[Comparison]):
    table, model = "comparison", Comparison

    def add(
        self,
        *,
        project_id: int,
        verdict: str,
        annotator: str,
        input_id: int | None = None,
        prompt_a_id: int | None = None,
        prompt_b_id: int | None = None,
        output_a: str | None = None,
        output_b: str | None = None,
        left: str | None = None,
        comment: str = "",
        source: str = "vote",
        meta: dict[str, Any] | None = None,
    ) -> Comparison:
        if verdict not in VERDICTS:
            raise ValidationError(f"Unknown verdict {verdict!r}; use one of {', '.join(VERDICTS)}.")
        if left not in (None, "a", "b"):
            raise ValidationError("left must be 'a' or 'b'.")
        return self._insert(
            {
                "project_id": project_id,
                "input_id": input_id,
                "prompt_a_id": prompt_a_id,
                "prompt_b_id": prompt_b_id,
                "output_a": output_a,
                "output_b": output_b,
                "left": left,
                "verdict": verdict,
                "annotator": annotator,
                "comment": comment or "",
                "source": source,
                "meta": to_json(meta or {}),
                "created_at": utcnow(),
            }
        )

    def list(
        self, project_id: int, annotator: str | None = None, source: str | None = None
    ) -> list[Comparison]:
        where, params = where_equal(project_id, annotator=annotator, source=source)
        return self._where(where, params)

    def count(self, project_id: int, annotator: str | None = None) -> int:
        where, params = where_equal(project_id, annotator=annotator)
        return int(self._table().count_where(where, params))


class EditRepo(Repository[Edit]):
    table, model = "edit", Edit

    def add(
        self,
        *,
        project_id: int,
        annotator: str,
        output: str,
        edited: str,
        input_id: int | None = None,
        prompt_id: int | None = None,
        word_distance: int | None = None,
        char_distance: int | None = None,
        applied_preference: str | None = None,
        status: str = "pending",
    ) -> Edit:
        return self._insert(
            {
                "project_id": project_id,
                "input_id": input_id,
                "prompt_id": prompt_id,
                "annotator": annotator,
                "output": output,
                "edited": edited,
                "word_distance": word_distance,
                "char_distance": char_distance,
                "applied_preference": applied_preference,
                "status": status,
                "created_at": utcnow(),
            }
        )

    def update(self, edit_id: int, **fields: Any) -> Edit:
        return self._update(edit_id, fields)

    def list(
        self, project_id: int, annotator: str | None = None, status: str | None = None
    ) -> list[Edit]:
        where, params = where_equal(project_id, annotator=annotator, status=status)
        return self._where(where, params)


class PreferenceRepo(Repository[Preference]):
    table, model = "preference", Preference

    def add(
        self,
        *,
        project_id: int,
        annotator: str,
        text: str,
        source: str = "edit",
        pinned: bool = False,
        kind: str = "inferred",
        status: str = "pending",
        spec: dict[str, Any] | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> Preference:
        now = utcnow()
        return self._insert(
            {
                "project_id": project_id,
                "annotator": annotator,
                "text": text,
                "count": 1,
                "pinned": int(pinned),
                "deleted": 0,
                "source": source,
                "kind": kind,
                "status": status,
                "fix": 0,
                "spec": to_json(spec or {}),
                "evidence": to_json(evidence or {}),
                "created_at": now,
                "updated_at": now,
            }
        )

    def find_text(self, project_id: int, annotator: str, text: str) -> Preference | None:
        return self._first(
            "project_id = ? AND annotator = ? AND lower(trim(text)) = lower(trim(?))",
            [project_id, annotator, text],
            order_by="deleted, id",
        )

    def list(
        self, project_id: int, annotator: str, *, include_deleted: bool = False
    ) -> list[Preference]:
        where = "project_id = ? AND annotator = ?" + ("" if include_deleted else " AND deleted = 0")
        return self._where(where, [project_id, annotator], "pinned DESC, count DESC, id")

    def update(self, preference_id: int, **fields: Any) -> Preference:
        allowed = {"text", "count", "pinned", "deleted"}
        allowed |= {"status", "fix", "kind", "spec", "evidence"}  # learning earns its place
        unknown = set(fields) - allowed
        if unknown:
            raise ValidationError(f"Unknown preference fields: {', '.join(sorted(unknown))}")
        fields = {k: to_json(v) if k in ("spec", "evidence") else v for k, v in fields.items()}
        return self._update(preference_id, {**fields, "updated_at": utcnow()})

    def increment(self, preference_id: int) -> Preference:
        with self.database.transaction() as db:
            # count + 1 in SQL, not read-modify-write: two learners may count the same phrase.
            db.execute(
                "UPDATE preference SET count = count + 1, updated_at = ? WHERE id = ?",
                [utcnow(), preference_id],
            )
            return from_row(Preference, self._row(self._table(db), preference_id))


class EmbeddingRepo(Repository[np.ndarray]):
    table = "embedding"

    def put(self, model: str, text: str, vector: np.ndarray) -> int:
        """Store a vector for (model, text) once; return its row id.

        sqlite-utils' lookup (select, insert when missing) inside one write transaction: two
        writers of the same text (the background input embedding and a round's prepare, or two
        processes) both get the one row instead of one of them failing on the unique index."""
        vec = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        with self.database.transaction() as db:
            return int(
                self._table(db).lookup(
                    {"model": model, "text_hash": text_hash(text)},
                    {"dim": int(vec.shape[0]), "vector": vec.tobytes(), "created_at": utcnow()},
                )
            )

    def _vector_rows(self, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return list(self._table().rows_where(where, list(params), select="id, model, vector"))

    def lookup(self, model: str, text: str) -> np.ndarray | None:
        rows = self._vector_rows("model = ? AND text_hash = ?", [model, text_hash(text)])
        return np.frombuffer(rows[0]["vector"], dtype=np.float32) if rows else None

    def get(self, embedding_id: int) -> np.ndarray:
        return np.frombuffer(self._row(self._table(), embedding_id)["vector"], dtype=np.float32)

    def model_of(self, embedding_id: int) -> str:
        """The name of the model that produced this vector."""
        return str(self._row(self._table(), embedding_id)["model"])

    def get_many(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        if not ids:
            return {}
        rows = self._vector_rows(f"id IN ({','.join('?' for _ in ids)})", list(ids))
        return {int(r["id"]): np.frombuffer(r["vector"], dtype=np.float32) for r in rows}


class MemoryRepo(Repository[MemoryItem]):
    table, model = "memory", MemoryItem

    def add(
        self,
        *,
        project_id: int,
        annotator: str,
        embedding_id: int,
        input_id: int | None = None,
        preference_id: int | None = None,
        edit_id: int | None = None,
        comparison_id: int | None = None,
    ) -> MemoryItem:
        return self._insert(
            {
                "project_id": project_id,
                "annotator": annotator,
                "embedding_id": embedding_id,
                "input_id": input_id,
                "preference_id": preference_id,
                "edit_id": edit_id,
                "comparison_id": comparison_id,
                "created_at": utcnow(),
            }
        )

    def update(self, memory_id: int, **fields: Any) -> MemoryItem:
        return self._update(memory_id, fields)

    def list(self, project_id: int, annotator: str) -> list[MemoryItem]:
        return self._where("project_id = ? AND annotator = ?", [project_id, annotator])

    def vectors(self, project_id: int, annotator: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of this annotator's memory, for (re)building a FAISS index."""
        rows = self.database.db.execute(
            "SELECT m.id, e.vector FROM memory m JOIN embedding e ON e.id = m.embedding_id "
            "WHERE m.project_id = ? AND m.annotator = ? ORDER BY m.id",
            [project_id, annotator],
        ).fetchall()
        ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def count(self, project_id: int, annotator: str) -> int:
        where = "project_id = ? AND annotator = ?"
        return int(self._table().count_where(where, [project_id, annotator]))


class EngineStateRepo(Repository[tuple[bytes, dict[str, Any]]]):
    table = "engine_state"

    def save(
        self,
        project_id: int,
        engine: str,
        annotator: str,
        state: bytes,
        meta: dict[str, Any] | None = None,
    ) -> None:
        with self.database.transaction() as db:
            db.execute(
                "INSERT INTO engine_state (project_id, engine, annotator, state, meta, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(project_id, engine, annotator) DO UPDATE "
                "SET state = excluded.state, meta = excluded.meta, "
                "updated_at = excluded.updated_at",
                [project_id, engine, annotator, state, to_json(meta or {}), utcnow()],
            )

    def load(self, project_id: int, engine: str, annotator: str) -> tuple[bytes, dict] | None:
        rows = self._table().rows_where(
            "project_id = ? AND engine = ? AND annotator = ?",
            [project_id, engine, annotator],
            select="state, meta",
        )
        row = next(iter(rows), None)
        return None if row is None else (row["state"], json.loads(row["meta"] or "{}"))


class RejectionRepo(Repository[Rejection]):
    """Candidate prompts the validator refused; append-only."""

    table, model = "rejection", Rejection

    def add(
        self,
        *,
        project_id: int,
        text: str,
        reason: str,
        origin: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Rejection:
        return self._insert(
            {
                "project_id": project_id,
                "text": text,
                "reason": reason,
                "origin": origin,
                "meta": to_json(meta or {}),
                "created_at": utcnow(),
            }
        )

    def list(self, project_id: int, limit: int = 200) -> list[Rejection]:
        return self._where("project_id = ?", [project_id], "id DESC", limit)


class Store:
    """Every repository over one database. Cheap to build; share one per process."""

    def __init__(self, database: Database | None = None) -> None:
        self.database = database or Database()
        self.projects = ProjectRepo(self.database)
        self.inputs = InputRepo(self.database)
        self.prompts = PromptRepo(self.database)
        self.calls = CallRepo(self.database)
        self.comparisons = ComparisonRepo(self.database)
        self.edits = EditRepo(self.database)
        self.preferences = PreferenceRepo(self.database)
        self.embeddings = EmbeddingRepo(self.database)
        self.memory = MemoryRepo(self.database)
        self.engine_state = EngineStateRepo(self.database)
        self.rejections = RejectionRepo(self.database)

    @property
    def path(self) -> Path:
        return self.database.path

    def transaction(self) -> Any:
        """Group several repository writes into one atomic unit (nested blocks are savepoints)."""
        return self.database.transaction()


def open_store(path: Path | str | None = None) -> Store:
    return Store(Database(path))
