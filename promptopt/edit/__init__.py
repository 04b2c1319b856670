"""The Edit engine: latent preferences learned from user edits (after CIPHER)."""

from promptopt.edit.distance import char_distance, word_distance
from promptopt.edit.service import DEFAULT_THRESHOLD, Draft, EditResult, EditService, ProfileEntry

__all__ = [
    "DEFAULT_THRESHOLD",
    "Draft",
    "EditResult",
    "EditService",
    "ProfileEntry",
    "char_distance",
    "word_distance",
]
