"""The CIPHER memory: one (context embedding, preference) item per round, searchable by context.

SQLite holds the items (``memory`` rows pointing at ``embedding`` and ``preference`` rows); the
FAISS index over them is derived data, kept in process per (project, annotator), updated
incrementally on every new item and rebuilt from SQLite when its file is missing or stale.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promptopt.embeddings import Embedder, VectorIndex
from promptopt.embeddings.cache import embed_cached
from promptopt.storage import Store


@dataclass
class Neighbour:
    memory_id: int
    score: float
    preference_id: int | None


def index_path(store: Store, project_id: int, annotator: str) -> Path:
    """The index file next to the database; annotator names are hashed into safe file names."""
    digest = hashlib.sha1(annotator.encode("utf-8")).hexdigest()[:16]
    return store.path.parent / "indexes" / f"memory-{project_id}-{digest}.faiss"


class ContextMemory:
    """Embeds contexts (with the vector cache in SQLite) and finds the nearest past ones."""

    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._indexes: dict[tuple[int, str], VectorIndex] = {}
        self._lock = threading.Lock()

    def embed(self, text: str) -> tuple[int, np.ndarray]:
        """(embedding row id, normalised vector); a text seen before is not encoded again."""
        model = self.embedder.name
        cached = self.store.embeddings.lookup(model, text)
        if cached is not None and cached.shape[0] == self.embedder.dim:
            return self.store.embeddings.put(model, text, cached), cached
        vector = self.embedder.encode([text])[0]
        return self.store.embeddings.put(model, text, vector), vector

    def embed_many(self, texts: list[str], batch_size: int = 64) -> int:
        """Encode the texts that have no stored vector yet; returns how many. Inputs embedded
        ahead of time (at import) make a round's own cost retrieval and storage only."""
        return embed_cached(self.store, self.embedder, texts, batch_size)[1]

    def index(self, project_id: int, annotator: str) -> VectorIndex:
        key = (project_id, annotator)
        with self._lock:
            found = self._indexes.get(key)
            if found is None:
                path = index_path(self.store, project_id, annotator)
                found = VectorIndex.load_or_rebuild(
                    self.embedder.dim,
                    path,
                    self.embedder.name,
                    lambda: self._vectors(project_id, annotator),
                )
                self._indexes[key] = found
            return found

    def _vectors(self, project_id: int, annotator: str) -> tuple[np.ndarray, np.ndarray]:
        ids, vectors = self.store.memory.vectors(project_id, annotator)
        if vectors.shape[1] != self.embedder.dim:
            # The embedding model changed since these items were stored: re-embed their inputs
            # so that old memory stays searchable instead of being dropped.
            vectors = self._reembed(project_id, annotator, ids)
        return ids, vectors

    def _reembed(self, project_id: int, annotator: str, ids: np.ndarray) -> np.ndarray:
        items = {m.id: m for m in self.store.memory.list(project_id, annotator)}
        out = np.zeros((len(ids), self.embedder.dim), dtype=np.float32)
        for row, memory_id in enumerate(ids.tolist()):
            item = items[memory_id]
            text = self.store.inputs.get(item.input_id).text if item.input_id else ""
            embedding_id, vector = self.embed(text)
            self.store.memory.update(memory_id, embedding_id=embedding_id)
            out[row] = vector
        return out

    def add(
        self,
        project_id: int,
        annotator: str,
        *,
        embedding_id: int,
        vector: np.ndarray,
        input_id: int | None,
        preference_id: int | None,
        edit_id: int | None,
        comparison_id: int | None = None,
    ) -> int:
        """Store one item and add it to the live index; returns the memory row id."""
        self.index(project_id, annotator)
        memory_id = self.record(
            project_id,
            annotator,
            embedding_id=embedding_id,
            input_id=input_id,
            preference_id=preference_id,
            edit_id=edit_id,
            comparison_id=comparison_id,
        )
        self.publish(project_id, annotator, memory_id, vector)
        return memory_id

    def record(
        self,
        project_id: int,
        annotator: str,
        *,
        embedding_id: int,
        input_id: int | None,
        preference_id: int | None,
        edit_id: int | None,
        comparison_id: int | None = None,
    ) -> int:
        """Store the item's row only. Call it inside the transaction that stores the edit, so
        that an edit never exists without the memory item that makes it retrievable; then
        ``publish`` after the commit (build ``index`` before the transaction)."""
        return self.store.memory.add(
            project_id=project_id,
            annotator=annotator,
            embedding_id=embedding_id,
            input_id=input_id,
            preference_id=preference_id,
            edit_id=edit_id,
            comparison_id=comparison_id,
        ).id

    def publish(self, project_id: int, annotator: str, memory_id: int, vector: np.ndarray) -> None:
        """Add a committed item to the live index (derived data: were this lost in a crash, the
        index file is stale and is rebuilt from SQLite)."""
        self.index(project_id, annotator).add([memory_id], vector[None, :])

    def nearest(
        self,
        project_id: int,
        annotator: str,
        vector: np.ndarray,
        k: int,
        threshold: float,
    ) -> list[Neighbour]:
        """The k most similar past contexts with cosine >= threshold, best first."""
        if k <= 0:
            return []
        index = self.index(project_id, annotator)
        hits = index.search(vector, k)[0]
        out: list[Neighbour] = []
        for hit in hits:
            if hit.score < threshold:
                break
            item = self.store.memory.get(hit.id)
            out.append(Neighbour(hit.id, hit.score, item.preference_id))
        return out

    def save(self) -> None:
        """Persist every live index (the per-round path never writes the file: at 100k items
        that would be a 150 MB write each round; a stale file is rebuilt from SQLite)."""
        with self._lock:
            for index in self._indexes.values():
                index.save()
