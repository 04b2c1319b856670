"""SQLite storage for promptopt through sqlite-utils: schema, migrations and repositories."""

from storage.db import Database, default_db_path, promptopt_home
from storage.errors import NotFoundError, StorageError, ValidationError
from storage.repositories import VERDICTS, Store, open_store

__all__ = [
    "VERDICTS",
    "Database",
    "NotFoundError",
    "StorageError",
    "Store",
    "ValidationError",
    "default_db_path",
    "open_store",
    "promptopt_home",
]
