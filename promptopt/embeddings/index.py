"""A FAISS inner-product index whose ids are SQLite row ids; derived data, rebuilt when stale.

The index file sits next to the database with a small JSON sidecar recording what it was built
from (embedding model, dimension, count and largest id). When the file is missing, unreadable or
its sidecar disagrees with what SQLite holds now, the index is rebuilt from SQLite.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promptopt.threads import single_thread

# Past this many vectors an exact Flat scan gets slower than an IVF probe; measured with
# `promptopt bench services` (see README). Below it, exact search is both faster and exact.
IVF_THRESHOLD = 200_000

Loader = Callable[[], tuple[np.ndarray, np.ndarray]]


@dataclass
class Hit:
    id: int
    score: float


class VectorIndex:
    """Thread-safe FAISS IndexIDMap2(IndexFlatIP) with persistence and staleness checks."""

    def __init__(self, dim: int, path: Path | None = None, model: str = "") -> None:
        import faiss

        self.dim = dim
        self.path = path
        self.model = model
        self._faiss = faiss
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.RLock()
        self._max_id = -1

    # -- building ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        ids_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids_arr) == 0:
            return
        vecs = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids_arr), -1)
        if vecs.shape[1] != self.dim:
            raise ValueError(f"vector dimension {vecs.shape[1]} does not match index {self.dim}")
        with self._lock:
            self._index.add_with_ids(vecs, ids_arr)
            self._max_id = max(self._max_id, int(ids_arr.max()))

    def remove(self, ids: list[int]) -> None:
        with self._lock:
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]

    def search(self, query: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k by inner product for each query row; FAISS's -1 padding is dropped."""
        q = np.ascontiguousarray(query, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        with self._lock:
            if len(self) == 0 or k <= 0:
                return [[] for _ in range(len(q))]
            # A few queries against a flat index are matrix-vector products: OpenMP threads only
            # fight over the cores (see promptopt.threads).
            limit = single_thread("openmp") if len(q) <= 4 else contextlib.nullcontext()
            with limit:
                scores, ids = self._index.search(q, min(k, len(self)))
        return [
            [Hit(int(i), float(s)) for i, s in zip(id_row, score_row, strict=True) if i != -1]
            for id_row, score_row in zip(ids, scores, strict=True)
        ]

    # -- persistence ------------------------------------------------------------------------
    def _sidecar(self) -> Path:
        assert self.path is not None
        return self.path.with_suffix(self.path.suffix + ".json")

    def fingerprint(self) -> dict[str, object]:
        return {"model": self.model, "dim": self.dim, "count": len(self), "max_id": self._max_id}

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with self._lock:
            self._faiss.write_index(self._index, str(tmp))
            tmp.replace(self.path)
            self._sidecar().write_text(json.dumps(self.fingerprint()))

    @classmethod
    def load_or_rebuild(
        cls, dim: int, path: Path | None, model: str, loader: Loader
    ) -> VectorIndex:
        """Open the persisted index if it matches what SQLite holds; else rebuild from it.

        ``loader`` returns (ids, vectors) from SQLite: the source of truth.
        """
        ids, vectors = loader()
        expected = {
            "model": model,
            "dim": dim,
            "count": len(ids),
            "max_id": int(ids.max()) if len(ids) else -1,
        }
        index = cls(dim, path, model)
        if path is not None and path.exists() and index._sidecar().exists():
            try:
                recorded = json.loads(index._sidecar().read_text())
                if recorded == expected:
                    loaded = index._faiss.read_index(str(path))
                    if loaded.ntotal == len(ids) and loaded.d == dim:
                        index._index = loaded
                        index._max_id = expected["max_id"]  # type: ignore[assignment]
                        return index
            except (OSError, ValueError, RuntimeError):
                pass  # unreadable or stale: fall through to a rebuild
        index.add(ids, vectors)
        index.save()
        return index
