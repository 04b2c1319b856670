"""Errors as the person in front of the screen reads them."""

from __future__ import annotations

from promptopt.llm import LLMError
from promptopt.storage import NotFoundError, StorageError, ValidationError


class NoProject(RuntimeError):
    """A screen needs an open project."""


def describe_error(exc: BaseException) -> str:
    """One readable line. Engine and storage errors already say what to do."""
    if isinstance(exc, NoProject):
        return str(exc)
    if isinstance(exc, LLMError):
        text = str(exc).rstrip()
        end = "" if text.endswith((".", "!", "?")) else "."
        return f"The model call failed: {text}{end} Press Retry; nothing you entered was lost."
    if isinstance(exc, ValidationError | NotFoundError | StorageError | ValueError):
        return str(exc)
    return f"Something went wrong ({type(exc).__name__}: {exc}). Nothing you entered was lost."


__all__ = ["NoProject", "NotFoundError", "ValidationError", "describe_error"]
