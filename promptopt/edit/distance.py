"""Edit distances: word-level Levenshtein (the reference metric) and character-level, both by
rapidfuzz's C++ Levenshtein over word lists or characters (two unrelated 100k-character texts in
0.4 s). The test suite holds them to the textbook dynamic programme."""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein


def words(text: str) -> list[str]:
    """Whitespace tokens, as in the reference: punctuation stays attached to its word."""
    return text.split()


def word_distance(original: str, edited: str) -> int:
    """Word-level Levenshtein distance: the user's cost in the CIPHER experiments."""
    return int(Levenshtein.distance(words(original), words(edited)))


def char_distance(original: str, edited: str) -> int:
    return int(Levenshtein.distance(original, edited))
