"""Small wording helpers shared by every layer that talks to a person (CLI, UI, exports).
Imports nothing of ours, so any layer may use it."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """ "1 input", "2 inputs", "0 inputs"."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
