"""The embedder (fake and the real offline MiniLM) and the FAISS index over SQLite row ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from promptopt.embeddings import FakeEmbedder, VectorIndex, create_embedder
from promptopt.storage import Store


def _memory_index(store: Store, embedder: object, texts: list[str]) -> tuple[int, list[int]]:
    project = store.projects.create("P", "Do {input}")
    vectors = embedder.encode(texts)  # type: ignore[attr-defined]
    ids = []
    for text, vec in zip(texts, vectors, strict=True):
        emb = store.embeddings.put(embedder.name, text, vec)  # type: ignore[attr-defined]
        ids.append(store.memory.add(project_id=project.id, annotator="u", embedding_id=emb).id)
    return project.id, ids


def test_fake_embedder_is_deterministic_and_normalised() -> None:
    a, b = FakeEmbedder(), FakeEmbedder()
    va = a.encode(["the cat sat", "stock prices fell", ""])
    np.testing.assert_array_equal(va, b.encode(["the cat sat", "stock prices fell", ""]))
    np.testing.assert_allclose(np.linalg.norm(va, axis=1), 1.0, rtol=1e-5)
    assert va.dtype == np.float32
    near = float(va[0] @ a.encode(["the cat sat down"])[0])
    far = float(va[0] @ va[1])
    assert near > far


def test_factory_builds_fake_and_shares_real() -> None:
    assert isinstance(create_embedder("fake"), FakeEmbedder)


def test_index_drops_padding_and_uses_row_ids() -> None:
    index = VectorIndex(dim=4)
    vecs = np.eye(4, dtype=np.float32)[:2]
    index.add([101, 202], vecs)
    (hits,) = index.search(vecs[0], k=5)  # k larger than the index: no -1 ids come back
    assert [h.id for h in hits] == [101, 202]
    assert hits[0].score == pytest.approx(1.0)
    index.remove([101])
    assert [h.id for h in index.search(vecs[0], k=5)[0]] == [202]
    assert VectorIndex(dim=4).search(vecs[0], k=3) == [[]]


def test_index_rejects_wrong_dimension() -> None:
    with pytest.raises(ValueError, match="dimension"):
        VectorIndex(dim=4).add([1], np.ones((1, 3), dtype=np.float32))


def test_index_persists_and_rebuilds_from_sqlite(store: Store, tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    texts = ["apples and pears", "the football match", "pears and apples pie", "a rugby match"]
    project_id, ids = _memory_index(store, embedder, texts)
    path = tmp_path / "indexes" / "memory.faiss"

    def loader() -> tuple[np.ndarray, np.ndarray]:
        return store.memory.vectors(project_id, "u")

    index = VectorIndex.load_or_rebuild(embedder.dim, path, embedder.name, loader)
    assert path.exists() and len(index) == 4
    top = index.search(embedder.encode(["apples"])[0], k=2)[0]
    assert {h.id for h in top} == {ids[0], ids[2]}

    # Deleting the index file: it is rebuilt from SQLite with the same answers.
    path.unlink()
    rebuilt = VectorIndex.load_or_rebuild(embedder.dim, path, embedder.name, loader)
    assert [h.id for h in rebuilt.search(embedder.encode(["apples"])[0], k=2)[0]] == [
        h.id for h in top
    ]
    # A stale index (SQLite gained a row) is rebuilt too.
    emb = store.embeddings.put(embedder.name, "apples", embedder.encode(["apples"])[0])
    new_id = store.memory.add(project_id=project_id, annotator="u", embedding_id=emb).id
    fresh = VectorIndex.load_or_rebuild(embedder.dim, path, embedder.name, loader)
    assert len(fresh) == 5
    assert fresh.search(embedder.encode(["apples"])[0], k=1)[0][0].id == new_id
    # A corrupt file is rebuilt, not trusted.
    path.write_bytes(b"garbage")
    assert len(VectorIndex.load_or_rebuild(embedder.dim, path, embedder.name, loader)) == 5


@pytest.mark.slow
def test_real_embedder_near_texts_retrieve_each_other(
    real_embedder: object, store: Store, tmp_path: Path
) -> None:
    texts = [
        "The central bank raised interest rates to fight inflation.",
        "Our chocolate cake recipe needs eggs, flour and cocoa.",
        "The striker scored twice in the second half of the final.",
        "Bake the sponge at 180 degrees until golden.",
        "Stock markets fell after the rate decision.",
    ]
    vectors = real_embedder.encode(texts)  # type: ignore[attr-defined]
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    project_id, ids = _memory_index(store, real_embedder, texts)
    path = tmp_path / "m.faiss"

    def loader() -> tuple[np.ndarray, np.ndarray]:
        return store.memory.vectors(project_id, "u")

    index = VectorIndex.load_or_rebuild(384, path, real_embedder.name, loader)  # type: ignore[attr-defined]
    query = real_embedder.encode(["How long should I bake a cake?"])[0]  # type: ignore[attr-defined]
    assert {h.id for h in index.search(query, k=2)[0]} == {ids[1], ids[3]}
    finance = real_embedder.encode(["Interest rate hike hits shares"])[0]  # type: ignore[attr-defined]
    assert {h.id for h in index.search(finance, k=2)[0]} == {ids[0], ids[4]}
    path.unlink()
    rebuilt = VectorIndex.load_or_rebuild(384, path, real_embedder.name, loader)  # type: ignore[attr-defined]
    assert {h.id for h in rebuilt.search(query, k=2)[0]} == {ids[1], ids[3]}


def test_empty_memory_builds_an_empty_index(tmp_path: Path) -> None:
    def loader() -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)

    index = VectorIndex.load_or_rebuild(8, tmp_path / "e.faiss", "m", loader)
    assert len(index) == 0
    assert index.search(np.ones(8, dtype=np.float32), k=3) == [[]]
    index.add([], np.zeros((0, 8), dtype=np.float32))
    assert len(index) == 0
