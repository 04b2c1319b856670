"""SQLite storage for promptopt through sqlite-utils: schema, migrations and repositories."""

from .db import Database, default_db_path, promptopt_home
from .errors import NotFoundError, StorageError, ValidationError
from .repositories import VERDICTS, Store, open_store

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
