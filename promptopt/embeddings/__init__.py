"""Sentence embeddings (offline default all-MiniLM-L6-v2, GPU when present) and FAISS search."""

from __future__ import annotations

import threading

from promptopt.embeddings.base import Embedder, FakeEmbedder, normalise
from promptopt.embeddings.index import Hit, VectorIndex

_shared: dict[str, Embedder] = {}
_lock = threading.Lock()


def create_embedder(name: str = "default", *, device: str | None = None) -> Embedder:
    """The factory for real and fake embedders. ``fake`` gives the deterministic test double;
    ``default`` the offline MiniLM; any other value is a sentence-transformers model folder.
    Real models are loaded once per process and shared (they are thread-safe for encode)."""
    if name.startswith("fake"):
        return FakeEmbedder()
    key = f"{name}@{device}"
    with _lock:
        if key not in _shared:
            from promptopt.embeddings.encoder import SentenceTransformerEmbedder

            _shared[key] = SentenceTransformerEmbedder(
                None if name == "default" else name, device=device
            )
        return _shared[key]


__all__ = ["Embedder", "FakeEmbedder", "Hit", "VectorIndex", "create_embedder", "normalise"]
