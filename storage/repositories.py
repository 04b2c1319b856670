"""The repository API: the only code in promptopt that reads or writes SQL.

``Store`` groups one small repository per table. Every write runs inside ``Database.transaction``
and is committed before the method returns, so a caller that acknowledges a vote or an edit
after calling here never acknowledges something that is not on disk.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .db import Database
from .errors import NotFoundError, ValidationError
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

VERDICTS = ("a", "b", "tie", "both_bad", "skip")


def utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Repo:
    def __init__(self, database: Database) -> None:
        self.database = database

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.database.db.query(sql, params)]

    def _one(self, table: str, row_id: int) -> dict[str, Any]:
        rows = self._rows(f"SELECT * FROM [{table}] WHERE id = ?", [row_id])
        if not rows:
            raise NotFoundError(f"No {table} with id {row_id}.")
        return rows[0]


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


class ProjectRepo(_Repo):
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
        with self.database.transaction() as db:
            row_id = (
                db.table("project")
                .insert(
                    {
                        "name": name,
                        "template": template,
                        "task": task,
                        "generator_model": generator_model,
                        "optimizer_model": optimizer_model,
                        "settings": _json(settings or {}),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                .last_pk
                or 0
            )
        return self.get(int(row_id or 0))

    def get(self, project_id: int) -> Project:
        return from_row(Project, self._one("project", project_id))

    def find(self, name: str) -> Project | None:
        rows = self._rows("SELECT * FROM project WHERE name = ?", [name.strip()])
        return from_row(Project, rows[0]) if rows else None

    def list(self) -> list[Project]:
        return [from_row(Project, r) for r in self._rows("SELECT * FROM project ORDER BY name")]

    def update(self, project_id: int, **fields: Any) -> Project:
        allowed = {
            "name",
            "template",
            "task",
            "generator_model",
            "optimizer_model",
            "settings",
            "prompt_id",
        }
        unknown = set(fields) - allowed
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
            fields["settings"] = _json(fields["settings"])
        self.get(project_id)
        with self.database.transaction() as db:
            db.table("project").update(project_id, {**fields, "updated_at": utcnow()})
        return self.get(project_id)

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


class InputRepo(_Repo):
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

    def get(self, input_id: int) -> Input:
        return from_row(Input, self._one("input", input_id))

    def list(self, project_id: int) -> list[Input]:
        rows = self._rows(
            "SELECT * FROM input WHERE project_id = ? ORDER BY position, id", [project_id]
        )
        return [from_row(Input, r) for r in rows]

    def delete(self, input_id: int) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM input WHERE id = ?", [input_id])


class PromptRepo(_Repo):
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
        with self.database.transaction() as db:
            row_id = (
                db.table("prompt")
                .insert(
                    {
                        "project_id": project_id,
                        "text": text,
                        "origin": origin,
                        "parent_id": parent_id,
                        "meta": _json(meta or {}),
                        "active": 1,
                        "created_at": utcnow(),
                    }
                )
                .last_pk
                or 0
            )
        return self.get(int(row_id or 0))

    def get(self, prompt_id: int) -> Prompt:
        return from_row(Prompt, self._one("prompt", prompt_id))

    def list(self, project_id: int, *, active_only: bool = True) -> list[Prompt]:
        sql = "SELECT * FROM prompt WHERE project_id = ?"
        if active_only:
            sql += " AND active = 1"
        return [from_row(Prompt, r) for r in self._rows(sql + " ORDER BY id", [project_id])]

    def set_active(self, prompt_id: int, active: bool, *, merged_into: int | None = None) -> None:
        prompt = self.get(prompt_id)
        meta = dict(prompt.meta)
        if merged_into is not None:
            meta["merged_into"] = merged_into
        with self.database.transaction() as db:
            db.table("prompt").update(prompt_id, {"active": int(active), "meta": _json(meta)})

    def update_meta(self, prompt_id: int, **values: Any) -> Prompt:
        prompt = self.get(prompt_id)
        with self.database.transaction() as db:
            db.table("prompt").update(prompt_id, {"meta": _json({**prompt.meta, **values})})
        return self.get(prompt_id)


class CallRepo(_Repo):
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
        with self.database.transaction() as db:
            return int(
                db.table("llm_call")
                .insert(
                    {
                        "project_id": project_id,
                        "purpose": purpose,
                        "model": model,
                        "messages": _json(messages),
                        "params": _json(params),
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
                )
                .last_pk
                or 0
            )

    def cached_output(self, cache_key: str) -> LLMCall | None:
        rows = self._rows(
            "SELECT * FROM llm_call WHERE cache_key = ? AND error IS NULL AND output IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            [cache_key],
        )
        return from_row(LLMCall, rows[0]) if rows else None

    def get(self, call_id: int) -> LLMCall:
        return from_row(LLMCall, self._one("llm_call", call_id))

    def list(self, project_id: int | None = None, limit: int = 200) -> list[LLMCall]:
        if project_id is None:
            rows = self._rows("SELECT * FROM llm_call ORDER BY id DESC LIMIT ?", [limit])
        else:
            rows = self._rows(
                "SELECT * FROM llm_call WHERE project_id = ? ORDER BY id DESC LIMIT ?",
                [project_id, limit],
            )
        return [from_row(LLMCall, r) for r in rows]


class ComparisonRepo(_Repo):
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
        with self.database.transaction() as db:
            row_id = (
                db.table("comparison")
                .insert(
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
                        "meta": _json(meta or {}),
                        "created_at": utcnow(),
                    }
                )
                .last_pk
                or 0
            )
        return self.get(int(row_id or 0))

    def get(self, comparison_id: int) -> Comparison:
        return from_row(Comparison, self._one("comparison", comparison_id))

    def list(
        self, project_id: int, annotator: str | None = None, source: str | None = None
    ) -> list[Comparison]:
        sql = "SELECT * FROM comparison WHERE project_id = ?"
        params: list[Any] = [project_id]
        if annotator is not None:
            sql += " AND annotator = ?"
            params.append(annotator)
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        return [from_row(Comparison, r) for r in self._rows(sql + " ORDER BY id", params)]

    def count(self, project_id: int, annotator: str | None = None) -> int:
        return len(self.list(project_id, annotator))


class EditRepo(_Repo):
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
        with self.database.transaction() as db:
            row_id = (
                db.table("edit")
                .insert(
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
                .last_pk
                or 0
            )
        return self.get(int(row_id or 0))

    def get(self, edit_id: int) -> Edit:
        return from_row(Edit, self._one("edit", edit_id))

    def update(self, edit_id: int, **fields: Any) -> Edit:
        self.get(edit_id)
        with self.database.transaction() as db:
            db.table("edit").update(edit_id, fields)
        return self.get(edit_id)

    def list(
        self, project_id: int, annotator: str | None = None, status: str | None = None
    ) -> list[Edit]:
        sql = "SELECT * FROM edit WHERE project_id = ?"
        params: list[Any] = [project_id]
        if annotator is not None:
            sql += " AND annotator = ?"
            params.append(annotator)
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        return [from_row(Edit, r) for r in self._rows(sql + " ORDER BY id", params)]


class PreferenceRepo(_Repo):
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
        with self.database.transaction() as db:
            row_id = (
                db.table("preference")
                .insert(
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
                        "spec": _json(spec or {}),
                        "evidence": _json(evidence or {}),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                .last_pk
                or 0
            )
        return self.get(int(row_id or 0))

    def get(self, preference_id: int) -> Preference:
        return from_row(Preference, self._one("preference", preference_id))

    def find_text(self, project_id: int, annotator: str, text: str) -> Preference | None:
        rows = self._rows(
            "SELECT * FROM preference WHERE project_id = ? AND annotator = ? "
            "AND lower(trim(text)) = lower(trim(?)) ORDER BY deleted, id LIMIT 1",
            [project_id, annotator, text],
        )
        return from_row(Preference, rows[0]) if rows else None

    def list(
        self, project_id: int, annotator: str, *, include_deleted: bool = False
    ) -> list[Preference]:
        sql = "SELECT * FROM preference WHERE project_id = ? AND annotator = ?"
        if not include_deleted:
            sql += " AND deleted = 0"
        rows = self._rows(sql + " ORDER BY pinned DESC, count DESC, id", [project_id, annotator])
        return [from_row(Preference, r) for r in rows]

    def update(self, preference_id: int, **fields: Any) -> Preference:
        allowed = {"text", "count", "pinned", "deleted"}
        allowed |= {"status", "fix", "kind", "spec", "evidence"}  # learning earns its place
        unknown = set(fields) - allowed
        if unknown:
            raise ValidationError(f"Unknown preference fields: {', '.join(sorted(unknown))}")
        fields = {k: _json(v) if k in ("spec", "evidence") else v for k, v in fields.items()}
        self.get(preference_id)
        with self.database.transaction() as db:
            db.table("preference").update(preference_id, {**fields, "updated_at": utcnow()})
        return self.get(preference_id)

    def increment(self, preference_id: int) -> Preference:
        with self.database.transaction() as db:
            db.execute(
                "UPDATE preference SET count = count + 1, updated_at = ? WHERE id = ?",
                [utcnow(), preference_id],
            )
        return self.get(preference_id)


class EmbeddingRepo(_Repo):
    def put(self, model: str, text: str, vector: np.ndarray) -> int:
        """Store a vector for (model, text) once; return its row id.

        Insert-or-ignore and read back in one transaction: two writers of the same text (the
        background input embedding and a round's prepare, or two processes) both get the one
        row instead of one of them failing on the unique index."""
        key = text_hash(text)
        vec = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        with self.database.transaction() as db:
            db.table("embedding").insert(
                {
                    "model": model,
                    "dim": int(vec.shape[0]),
                    "text_hash": key,
                    "vector": vec.tobytes(),
                    "created_at": utcnow(),
                },
                ignore=True,
            )
            row = db.execute(
                "SELECT id FROM embedding WHERE model = ? AND text_hash = ?", [model, key]
            ).fetchone()
        return int(row[0])

    def lookup(self, model: str, text: str) -> np.ndarray | None:
        rows = self._rows(
            "SELECT vector FROM embedding WHERE model = ? AND text_hash = ?",
            [model, text_hash(text)],
        )
        return np.frombuffer(rows[0]["vector"], dtype=np.float32) if rows else None

    def get(self, embedding_id: int) -> np.ndarray:
        row = self._one("embedding", embedding_id)
        return np.frombuffer(row["vector"], dtype=np.float32)

    def model_of(self, embedding_id: int) -> str:
        """The name of the model that produced this vector."""
        return str(self._one("embedding", embedding_id)["model"])

    def get_many(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        if not ids:
            return {}
        marks = ",".join("?" for _ in ids)
        rows = self._rows(f"SELECT id, vector FROM embedding WHERE id IN ({marks})", list(ids))
        return {int(r["id"]): np.frombuffer(r["vector"], dtype=np.float32) for r in rows}


class MemoryRepo(_Repo):
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
        with self.database.transaction() as db:
            row_id = (
                db.table("memory")
                .insert(
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
                .last_pk
                or 0
            )
        return self.get(int(row_id or 0))

    def get(self, memory_id: int) -> MemoryItem:
        return from_row(MemoryItem, self._one("memory", memory_id))

    def update(self, memory_id: int, **fields: Any) -> MemoryItem:
        with self.database.transaction() as db:
            db.table("memory").update(memory_id, fields)
        return self.get(memory_id)

    def list(self, project_id: int, annotator: str) -> list[MemoryItem]:
        rows = self._rows(
            "SELECT * FROM memory WHERE project_id = ? AND annotator = ? ORDER BY id",
            [project_id, annotator],
        )
        return [from_row(MemoryItem, r) for r in rows]

    def vectors(self, project_id: int, annotator: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of this annotator's memory, for (re)building a FAISS index."""
        rows = self._rows(
            "SELECT m.id AS id, e.vector AS vector FROM memory m "
            "JOIN embedding e ON e.id = m.embedding_id "
            "WHERE m.project_id = ? AND m.annotator = ? ORDER BY m.id",
            [project_id, annotator],
        )
        ids = np.array([int(r["id"]) for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        vecs = np.stack([np.frombuffer(r["vector"], dtype=np.float32) for r in rows])
        return ids, vecs

    def count(self, project_id: int, annotator: str) -> int:
        rows = self._rows(
            "SELECT count(*) AS n FROM memory WHERE project_id = ? AND annotator = ?",
            [project_id, annotator],
        )
        return int(rows[0]["n"])


class EngineStateRepo(_Repo):
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
                [project_id, engine, annotator, state, _json(meta or {}), utcnow()],
            )

    def load(self, project_id: int, engine: str, annotator: str) -> tuple[bytes, dict] | None:
        rows = self._rows(
            "SELECT state, meta FROM engine_state WHERE project_id = ? AND engine = ? "
            "AND annotator = ?",
            [project_id, engine, annotator],
        )
        if not rows:
            return None
        return rows[0]["state"], json.loads(rows[0]["meta"] or "{}")


class RejectionRepo(_Repo):
    """Candidate prompts the validator refused; append-only."""

    def add(
        self,
        *,
        project_id: int,
        text: str,
        reason: str,
        origin: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Rejection:
        with self.database.transaction() as db:
            row_id = (
                db.table("rejection")
                .insert(
                    {
                        "project_id": project_id,
                        "text": text,
                        "reason": reason,
                        "origin": origin,
                        "meta": _json(meta or {}),
                        "created_at": utcnow(),
                    }
                )
                .last_pk
            )
        return from_row(Rejection, self._one("rejection", int(row_id or 0)))

    def list(self, project_id: int, limit: int = 200) -> list[Rejection]:
        rows = self._rows(
            "SELECT * FROM rejection WHERE project_id = ? ORDER BY id DESC LIMIT ?",
            [project_id, limit],
        )
        return [from_row(Rejection, r) for r in rows]


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
