"""Opening the promptopt database: location, pragmas, migrations and the safety checks.

A database that is newer than this code, corrupt, or not writable raises StorageError with a
message that says what to do; it is never overwritten or "repaired" silently.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from .errors import StorageError
from .migrations import MIGRATIONS, migration_names

DB_FILENAME = "promptopt.db"


def promptopt_home() -> Path:
    """The folder that holds the database, the model cache and derived indexes.

    ``PROMPTOPT_HOME`` wins; otherwise the platform's user data directory.
    """
    env = os.environ.get("PROMPTOPT_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("promptopt", appauthor=False))


def default_db_path() -> Path:
    return promptopt_home() / DB_FILENAME


class Database:
    """The one SQLite file, shared safely across Gradio's worker threads.

    Each thread gets its own connection (sqlite3 connections must not be shared while in a
    transaction); WAL mode lets readers proceed while one writer commits. Writes are
    serialised by a process-wide lock so that ``transaction()`` blocks never interleave.
    """

    def __init__(self, path: Path | str | None = None, *, migrate: bool = True) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._check_location()
        db = self.db  # opens and validates the first connection
        if migrate:
            self._migrate(db)

    # -- connections -------------------------------------------------------------------------
    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's sqlite-utils handle."""
        handle: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if handle is None:
            handle = self._connect()
            self._local.db = handle
        return handle

    def _connect(self) -> sqlite_utils.Database:
        try:
            conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 30000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode and str(mode[0]).lower() != "wal":
                # WAL is refused on some network file systems; the rollback journal still works.
                pass
            conn.execute("PRAGMA synchronous = NORMAL")
            # A read of the schema is where a corrupt or non-SQLite file shows itself.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                f"The database at {self.path} cannot be read ({exc}). It may be corrupt or not a "
                "promptopt database. It has not been changed. Move it aside (or point "
                "PROMPTOPT_HOME at another folder) and start again; restore it from a backup if "
                "you need its data."
            ) from exc
        return sqlite_utils.Database(conn)

    def _check_location(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the data folder {folder} ({exc.strerror}). Set PROMPTOPT_HOME to "
                "a folder you can write to."
            ) from exc
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise StorageError(
                f"The database {self.path} is not writable. Fix its permissions or set "
                "PROMPTOPT_HOME to a folder you can write to."
            )
        if not self.path.exists() and not os.access(folder, os.W_OK):
            raise StorageError(
                f"The data folder {folder} is not writable. Fix its permissions or set "
                "PROMPTOPT_HOME to a folder you can write to."
            )

    def _migrate(self, db: sqlite_utils.Database) -> None:
        applied = {m.name for m in MIGRATIONS.applied(db)}
        unknown = applied - set(migration_names())
        if unknown:
            raise StorageError(
                f"The database {self.path} was written by a newer version of promptopt "
                f"(it has migrations this version does not know: {', '.join(sorted(unknown))}). "
                "It has not been changed. Upgrade promptopt (pip install -U promptopt) to open it."
            )
        try:
            with self._write_lock:
                MIGRATIONS.apply(db)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise StorageError(
                    f"The database {self.path} is read-only. Fix its permissions or set "
                    "PROMPTOPT_HOME to a folder you can write to."
                ) from exc
            raise

    def schema_version(self) -> list[str]:
        """Names of the migrations applied to this database, in order."""
        return [m.name for m in MIGRATIONS.applied(self.db)]

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """All writes go through here: one atomic block, rolled back on any error."""
        with self._write_lock:
            db = self.db
            try:
                with self._atomic(db):
                    yield db
            except sqlite3.OperationalError as exc:
                if "readonly" in str(exc):
                    raise StorageError(
                        f"Could not save to {self.path}: the database is read-only. Nothing "
                        "was written; fix its permissions and try again."
                    ) from exc
                raise

    @staticmethod
    @contextlib.contextmanager
    def _atomic(db: sqlite_utils.Database) -> Iterator[None]:
        """``db.atomic()``, except that the outermost block takes the write lock at BEGIN.

        A deferred BEGIN reads first and asks for the write lock later; when another process
        (or another Store on the same file) committed in between, SQLite cannot upgrade the stale
        read snapshot and fails at once with "database is locked" instead of waiting out the busy
        timeout. BEGIN IMMEDIATE waits its turn."""
        if db.conn.in_transaction:
            with db.atomic():  # a savepoint inside the caller's transaction
                yield
            return
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        try:
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        handle: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if handle is not None:
            handle.close()
            self._local.db = None
