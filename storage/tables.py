"""The table layer under the repositories: sqlite-utils tables that know their schema, and the
base repository that turns rows into models."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

import sqlite_utils
from sqlite_utils.db import Table

from .db import Database
from .errors import NotFoundError
from .models import from_row


def utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


M = TypeVar("M")


class SchemaTable(Table):
    """A table the migrations made. Before each call sqlite-utils asks SQLite whether the table
    exists and what its primary key is (two or three statements a call); for these tables the
    answers are fixed, and an edit submit took 111 statements with them."""

    def exists(self) -> bool:
        return True

    @property
    def pks(self) -> list[str]:
        return ["id"]

    @property
    def use_rowid(self) -> bool:
        return False

    def add_missing_columns(self, records: Any) -> SchemaTable:
        return self  # the schema is the migrations' business, never a write's


class Repository(Generic[M]):
    table: ClassVar[str]
    model: type[M]

    def __init__(self, database: Database) -> None:
        self.database = database

    def _table(self, db: sqlite_utils.Database | None = None) -> SchemaTable:
        return SchemaTable(db or self.database.db, self.table)

    def _where(
        self,
        where: str | None = None,
        params: Sequence[Any] = (),
        order_by: str = "id",
        limit: int | None = None,
    ) -> list[M]:
        rows = self._table().rows_where(where, list(params), order_by=order_by, limit=limit)
        return [from_row(self.model, row) for row in rows]

    def _first(self, where: str, params: Sequence[Any], order_by: str = "id") -> M | None:
        return next(iter(self._where(where, params, order_by, limit=1)), None)

    def _row(self, table: SchemaTable, row_id: int) -> dict[str, Any]:
        try:
            return table.get(row_id)
        except sqlite_utils.db.NotFoundError:
            raise NotFoundError(f"No {self.table} with id {row_id}.") from None

    def get(self, row_id: int) -> M:
        return from_row(self.model, self._row(self._table(), row_id))

    @staticmethod
    def _insert_into(table: SchemaTable, values: dict[str, Any]) -> int:
        return int(cast(int, table.insert(values).last_pk))

    def _insert(self, values: dict[str, Any]) -> M:
        with self.database.transaction() as db:
            row_id = self._insert_into(self._table(db), values)
        # Built from the values written: reading the row back cost three statements per write.
        return from_row(self.model, {**values, "id": row_id})

    def _update(self, row_id: int, fields: dict[str, Any]) -> M:
        with self.database.transaction() as db:
            table = self._table(db)
            row = self._row(table, row_id)
            if fields:
                table.update(row_id, fields)
        return from_row(self.model, {**row, **fields})


def where_equal(project_id: int, **equal: Any) -> tuple[str, list[Any]]:
    """``project_id = ? AND name = ? ...`` for the filters that are set."""
    where, params = ["project_id = ?"], [project_id]
    for name, value in equal.items():
        if value is not None:
            where.append(f"{name} = ?")
            params.append(value)
    return " AND ".join(where), params
