"""Append-only, named schema migrations. Never edit or reorder one that has shipped: add a new one.

Each migration runs once inside a transaction together with its record in ``_sqlite_migrations``
(sqlite-utils' ``Migrations``). Tests apply every prefix of this list and then the rest, so that
an upgrade from any earlier version is exercised.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("promptopt")


def migration_names() -> list[str]:
    return [m.name for m in MIGRATIONS._migrations]


def _t(db: sqlite_utils.Database, name: str) -> sqlite_utils.db.Table:
    return db.table(name)


@MIGRATIONS(name="0001_initial")
def m0001_initial(db: sqlite_utils.Database) -> None:
    now: dict[str, Any] = {"created_at": str}
    _t(db, "project").create(
        {
            "id": int,
            "name": str,
            "task": str,
            "template": str,
            "generator_model": str,
            "optimizer_model": str,
            "settings": str,  # JSON: temperature, max_tokens, k, threshold, ...
            "prompt_id": int,  # the project's current (promoted) prompt
            **now,
            "updated_at": str,
        },
        pk="id",
        not_null={"name", "template"},
        defaults={"task": "", "settings": "{}"},
    )
    _t(db, "project").create_index(["name"], unique=True)

    _t(db, "input").create(
        {"id": int, "project_id": int, "text": str, "source": str, "position": int, **now},
        pk="id",
        foreign_keys=[("project_id", "project", "id")],
        not_null={"project_id", "text"},
    )
    _t(db, "input").create_index(["project_id"])

    _t(db, "prompt").create(
        {
            "id": int,
            "project_id": int,
            "text": str,
            "parent_id": int,
            # base | user | induced | rephrase | revision | preference | response | imported
            "origin": str,
            "meta": str,  # JSON
            "active": int,  # 0 when merged into a near-duplicate or retired
            **now,
        },
        pk="id",
        foreign_keys=[("project_id", "project", "id"), ("parent_id", "prompt", "id")],
        not_null={"project_id", "text", "origin"},
        defaults={"active": 1, "meta": "{}"},
    )
    _t(db, "prompt").create_index(["project_id"])

    _t(db, "llm_call").create(
        {
            "id": int,
            "project_id": int,
            "purpose": str,  # generate | infer-preference | condense | propose | simulate | ...
            "model": str,
            "messages": str,  # JSON list of {"role", "content"}
            "params": str,  # JSON of temperature, max_tokens, seed, ...
            "output": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "cost": float,
            "latency_ms": float,
            "cache_key": str,
            "cached": int,
            "error": str,
            **now,
        },
        pk="id",
        foreign_keys=[("project_id", "project", "id")],
        not_null={"model", "messages"},
        defaults={"cached": 0},
    )
    _t(db, "llm_call").create_index(["project_id"])
    _t(db, "llm_call").create_index(["cache_key"])

    _t(db, "comparison").create(
        {
            "id": int,
            "project_id": int,
            "input_id": int,
            "prompt_a_id": int,
            "prompt_b_id": int,
            "output_a": str,
            "output_b": str,
            "left": str,  # "a" or "b": which output the user saw on the left
            "verdict": str,  # a | b | tie | both_bad | skip
            "annotator": str,
            "comment": str,
            "source": str,  # vote | edit
            "meta": str,
            **now,
        },
        pk="id",
        foreign_keys=[
            ("project_id", "project", "id"),
            ("input_id", "input", "id"),
            ("prompt_a_id", "prompt", "id"),
            ("prompt_b_id", "prompt", "id"),
        ],
        not_null={"project_id", "verdict", "annotator"},
        defaults={"source": "vote", "comment": "", "meta": "{}"},
    )
    _t(db, "comparison").create_index(["project_id", "annotator"])

    _t(db, "embedding").create(
        {
            "id": int,
            "model": str,
            "dim": int,
            "text_hash": str,
            "vector": bytes,  # float32, L2-normalised
            **now,
        },
        pk="id",
        not_null={"model", "dim", "text_hash", "vector"},
    )
    _t(db, "embedding").create_index(["model", "text_hash"], unique=True)

    _t(db, "edit").create(
        {
            "id": int,
            "project_id": int,
            "input_id": int,
            "prompt_id": int,
            "annotator": str,
            "output": str,
            "edited": str,
            "word_distance": int,
            "char_distance": int,
            "applied_preference": str,
            "inferred_preference": str,
            "status": str,  # pending | done | failed | accepted
            "error": str,
            "comparison_id": int,
            **now,
        },
        pk="id",
        foreign_keys=[
            ("project_id", "project", "id"),
            ("input_id", "input", "id"),
            ("prompt_id", "prompt", "id"),
            ("comparison_id", "comparison", "id"),
        ],
        not_null={"project_id", "annotator", "output", "edited"},
        defaults={"status": "pending"},
    )
    _t(db, "edit").create_index(["project_id", "annotator"])

    _t(db, "preference").create(
        {
            "id": int,
            "project_id": int,
            "annotator": str,
            "text": str,
            "count": int,
            "pinned": int,
            "deleted": int,
            "source": str,  # edit | comparison | user
            **now,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "project", "id")],
        not_null={"project_id", "annotator", "text"},
        defaults={"count": 1, "pinned": 0, "deleted": 0, "source": "edit"},
    )
    _t(db, "preference").create_index(["project_id", "annotator"])

    # One row per CIPHER round: the context it saw and the preference it stored for it. These row
    # ids are the FAISS ids of the Edit engine's index.
    _t(db, "memory").create(
        {
            "id": int,
            "project_id": int,
            "annotator": str,
            "input_id": int,
            "embedding_id": int,
            "preference_id": int,
            "edit_id": int,
            "comparison_id": int,
            **now,
        },
        pk="id",
        foreign_keys=[
            ("project_id", "project", "id"),
            ("input_id", "input", "id"),
            ("embedding_id", "embedding", "id"),
            ("preference_id", "preference", "id"),
            ("edit_id", "edit", "id"),
            ("comparison_id", "comparison", "id"),
        ],
        not_null={"project_id", "annotator", "embedding_id"},
    )
    _t(db, "memory").create_index(["project_id", "annotator"])

    # Opaque engine state (e.g. the Compare engine's utility network), so that a restart resumes.
    _t(db, "engine_state").create(
        {
            "id": int,
            "project_id": int,
            "engine": str,
            "annotator": str,
            "state": bytes,
            "meta": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "project", "id")],
        not_null={"project_id", "engine", "annotator"},
    )
    _t(db, "engine_state").create_index(["project_id", "engine", "annotator"], unique=True)


@MIGRATIONS(name="0002_project_prompt_foreign_key")
def m0002_project_prompt_foreign_key(db: sqlite_utils.Database) -> None:
    # The project's promoted prompt becomes a real foreign key, so that SQLite guards it and
    # Datasette links it. A promotion that points at a prompt no longer there is cleared first:
    # the new constraint would otherwise refuse the whole database.
    db.execute(
        "UPDATE project SET prompt_id = NULL WHERE prompt_id IS NOT NULL "
        "AND prompt_id NOT IN (SELECT id FROM prompt)"
    )
    _t(db, "project").transform(add_foreign_keys=[("prompt_id", "prompt", "id")])


@MIGRATIONS(name="0003_preference_kind_status_and_candidate_rejections")
def m0003_learning_earns_its_place(db: sqlite_utils.Database) -> None:
    # Observable preferences and verification (issue 11): what kind of phrase a preference is,
    # whether replaying it on the annotator's history helped, the fact behind an observable one,
    # its evidence, and whether its exact output fix is switched on. Rows from before start as
    # "pending": they are applied again once verified (or if pinned).
    _t(db, "preference").add_column("kind", str, not_null_default="inferred")
    _t(db, "preference").add_column("status", str, not_null_default="pending")
    _t(db, "preference").add_column("fix", int, not_null_default=0)
    _t(db, "preference").add_column("spec", str, not_null_default="{}")
    _t(db, "preference").add_column("evidence", str, not_null_default="{}")
    # Candidate prompts the validator refused, with the reason (shown in Inspect and Propose).
    _t(db, "rejection").create(
        {
            "id": int,
            "project_id": int,
            "text": str,
            "origin": str,
            "reason": str,
            "meta": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("project_id", "project", "id")],
        not_null={"project_id", "text", "reason"},
        defaults={"meta": "{}"},
    )
    _t(db, "rejection").create_index(["project_id"])


def _public_url(url: str) -> str:
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _url_secrets(url: str) -> set[str]:
    parts = urlsplit(url.strip())
    found: set[str] = set()
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.add(userinfo)
        found.update(p for p in (parts.username, parts.password) if p)
        found.update(unquote(p) for p in (parts.username, parts.password) if p)
    for pair in parts.query.split("&") if parts.query else []:
        value = pair.partition("=")[2]
        found.update(v for v in (value, unquote(value)) if v)
    return {s for s in found if len(s) >= 3}


@MIGRATIONS(name="0004_no_credentials_in_server_addresses")
def m0004_no_credentials(db: sqlite_utils.Database) -> None:
    # Issue 9: an api_base such as http://user:secret@host was stored in the project's settings
    # and in every call's params, and servers echoing it put it in call errors. Credentials now
    # come from the environment only (PROMPTOPT_API_BASE_AUTH); drop them from what was stored.
    # secure_delete overwrites the freed bytes, so the secret does not linger in free pages.
    db.execute("PRAGMA secure_delete = ON")
    projects = list(db.query("SELECT id, settings FROM project"))
    calls = list(db.query("SELECT id, params, error FROM llm_call"))
    # First every credential ever stored, so that an error echoing one is cleaned whichever row
    # stored the address.
    secrets: set[str] = set()
    for text in [r["settings"] for r in projects] + [r["params"] for r in calls]:
        url = json.loads(text or "{}").get("api_base")
        if isinstance(url, str):
            secrets |= _url_secrets(url)
    if not secrets:
        return
    ordered = sorted(secrets, key=len, reverse=True)
    for table, column, rows in (("project", "settings", projects), ("llm_call", "params", calls)):
        for row in rows:
            values = json.loads(row[column] or "{}")
            url = values.get("api_base")
            if isinstance(url, str) and _url_secrets(url):
                values["api_base"] = _public_url(url)
                db.execute(
                    f"UPDATE [{table}] SET [{column}] = ? WHERE id = ?",
                    [json.dumps(values, ensure_ascii=False, sort_keys=True), row["id"]],
                )
    for row in calls:
        error = row["error"]
        if not error:
            continue
        for secret in ordered:
            error = error.replace(secret, "***")
        if error != row["error"]:
            db.execute("UPDATE llm_call SET error = ? WHERE id = ?", [error, row["id"]])
