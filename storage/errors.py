"""Errors raised by storage. Messages say what went wrong and what to do."""


class StorageError(RuntimeError):
    """The database cannot be opened or written; the message says how to fix it."""


class NotFoundError(StorageError, LookupError):
    """A row that was asked for does not exist."""


class ValidationError(StorageError, ValueError):
    """Input that cannot be stored as given; the message says what to change."""
