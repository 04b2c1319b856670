"""The Edit engine's own cost per round, without LLM calls: embed the input (one query through
the real embedder), retrieve its neighbours (FAISS + SQLite lookups), store the round (edit,
preference count, memory item, index update). Measured through ``EditService.prepare`` and
``EditService.accept`` (which make no LLM call when the neighbours agree) at several memory sizes.

``measure_overhead`` is also what ``promptopt bench services`` can call.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from promptopt.edit.service import EditService
from promptopt.embeddings import Embedder
from promptopt.llm import FakeLLM, create_client
from promptopt.storage import Store, open_store


def _fill(store: Store, project_id: int, annotator: str, dim: int, n: int, seed: int) -> None:
    """n memory items with random unit vectors, all pointing at one preference."""
    rng = np.random.default_rng(seed)
    pref = store.preferences.add(project_id=project_id, annotator=annotator, text="be brief")
    batch = 5000
    for start in range(0, n, batch):
        size = min(batch, n - start)
        vectors = rng.standard_normal((size, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        # One transaction per batch: the per-round path commits once per write, filling does not.
        with store.transaction() as db:
            emb = db.table("embedding")
            mem = db.table("memory")
            for i in range(size):
                eid = emb.insert(
                    {
                        "model": "synthetic",
                        "dim": dim,
                        "text_hash": f"synthetic-{start + i}",
                        "vector": vectors[i].tobytes(),
                    }
                ).last_pk
                mem.insert(
                    {
                        "project_id": project_id,
                        "annotator": annotator,
                        "embedding_id": eid,
                        "preference_id": pref.id,
                    }
                )


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def measure_overhead(
    embedder: Embedder, texts: list[str], sizes: list[int], queries: int = 100, seed: int = 0
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    embedder.encode(["warm up"])
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="promptopt-overhead-") as tmp:
            store = open_store(Path(tmp) / "overhead.db")
            project = store.projects.create(
                "overhead", "Summarize:\n{input}", generator_model="fake"
            )
            annotator = "bench"
            fill_start = time.perf_counter()
            _fill(store, project.id, annotator, embedder.dim, size, seed)
            fill_s = time.perf_counter() - fill_start
            client = create_client(store, fake=FakeLLM())
            # threshold -1: random memory vectors are never similar to real text, and the
            # measurement must include handling k real neighbours.
            service = EditService(store, client, embedder, k=5, threshold=-1.0, meta_model="fake")
            build_start = time.perf_counter()
            service.memory.index(project.id, annotator)
            build_s = time.perf_counter() - build_start
            embed_ms: list[float] = []
            retrieve_ms: list[float] = []
            store_ms: list[float] = []
            total_ms: list[float] = []
            for q in range(queries):
                # A unique text each round, so the embedding cache never answers.
                text = f"{texts[q % len(texts)]} (round {q} of size {size})"
                item = store.inputs.add(project.id, text)
                t0 = time.perf_counter()
                service.memory.embed(text)  # encode + store the vector
                t1 = time.perf_counter()
                # prepare() now finds the vector in SQLite: what remains is retrieval.
                draft = service.prepare(project.id, annotator, item.id)
                t2 = time.perf_counter()
                service.accept(draft, "An output the user accepts as it is.", annotator)
                t3 = time.perf_counter()
                embed_ms.append((t1 - t0) * 1000)
                retrieve_ms.append((t2 - t1) * 1000)
                store_ms.append((t3 - t2) * 1000)
                total_ms.append((t3 - t0) * 1000)
            assert len(draft.neighbours) == 5
            rows.append(
                {
                    "memory_items": size,
                    "queries": queries,
                    "round_p50_ms": _pct(total_ms, 50),
                    "round_p95_ms": _pct(total_ms, 95),
                    # retrieve + store: the engine's work around the embedding model
                    "engine_p50_ms": _pct(
                        [r + s for r, s in zip(retrieve_ms, store_ms, strict=True)], 50
                    ),
                    "engine_p95_ms": _pct(
                        [r + s for r, s in zip(retrieve_ms, store_ms, strict=True)], 95
                    ),
                    "embed_p50_ms": _pct(embed_ms, 50),
                    "embed_p95_ms": _pct(embed_ms, 95),
                    "retrieve_p50_ms": _pct(retrieve_ms, 50),
                    "retrieve_p95_ms": _pct(retrieve_ms, 95),
                    "store_p50_ms": _pct(store_ms, 50),
                    "store_p95_ms": _pct(store_ms, 95),
                    "fill_s": round(fill_s, 1),
                    "index_build_s": round(build_s, 2),
                    "embedder": embedder.name,
                }
            )
            store.database.close()
    return rows


def overhead_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'items':>8} {'round p50':>9} {'round p95':>9} {'embed p50':>9} {'embed p95':>9} "
        f"{'retr p95':>8} {'store p95':>9} {'no-embed p95':>12}  (ms)"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['memory_items']:>8} {r['round_p50_ms']:>9} {r['round_p95_ms']:>9} "
            f"{r['embed_p50_ms']:>9} {r['embed_p95_ms']:>9} {r['retrieve_p95_ms']:>8} "
            f"{r['store_p95_ms']:>9} {r['engine_p95_ms']:>12}"
        )
    return "\n".join(lines)
