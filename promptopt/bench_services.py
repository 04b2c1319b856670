"""`promptopt bench services`: load and speed figures of the offline LLM, the embedder and FAISS.

Prints numbers (and optionally writes them as JSON); it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-llm", action="store_true", help="skip the offline LLM figures")
    parser.add_argument("--llm-model", default="local/smollm2", help="model to time")
    parser.add_argument(
        "--device", default=None, help="embedding device (default: cuda when present, else cpu)"
    )
    parser.add_argument(
        "--faiss-sizes", default="10000,100000", help="index sizes for the top-5 search"
    )
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
    }


def bench_embedder(device: str | None = None) -> dict[str, Any]:
    from promptopt.embeddings.encoder import SentenceTransformerEmbedder

    started = time.perf_counter()
    embedder = SentenceTransformerEmbedder(device=device)
    embedder.load()
    load_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    words = [
        "the",
        "a",
        "model",
        "prompt",
        "user",
        "summary",
        "news",
        "recipe",
        "market",
        "team",
        "result",
        "data",
    ]
    texts = [" ".join(rng.choice(words, size=40)) for _ in range(512)]
    embedder.encode(texts[:32])  # warm-up
    out: dict[str, Any] = {"device": embedder.device, "load_s": load_s}
    for batch in (1, 32, 256):
        reps = max(1, 512 // batch)
        t = time.perf_counter()
        for i in range(reps):
            chunk = texts[(i * batch) % 512 : (i * batch) % 512 + batch] or texts[:batch]
            embedder.encode(chunk)
        elapsed = time.perf_counter() - t
        out[f"texts_per_s_batch_{batch}"] = reps * batch / elapsed
    single = []
    for text in texts[:50]:
        t = time.perf_counter()
        embedder.encode([text])
        single.append((time.perf_counter() - t) * 1000)
    out["single_text"] = _percentiles(single)
    return out


def bench_faiss(sizes: list[int], dim: int = 384) -> dict[str, Any]:
    from promptopt.embeddings import VectorIndex, normalise

    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for n in sizes:
        vectors = normalise(rng.standard_normal((n, dim)).astype(np.float32))
        index = VectorIndex(dim)
        t = time.perf_counter()
        index.add(np.arange(1, n + 1), vectors)
        build_s = time.perf_counter() - t
        queries = normalise(rng.standard_normal((200, dim)).astype(np.float32))
        samples = []
        for q in queries:
            t = time.perf_counter()
            index.search(q, 5)
            samples.append((time.perf_counter() - t) * 1000)
        out[str(n)] = {"build_s": build_s, **_percentiles(samples)}
    return out


def run(args: argparse.Namespace) -> int:
    import platform

    import torch

    figures: dict[str, Any] = {
        "machine": {
            "cpu_count": __import__("os").cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
            "python": platform.python_version(),
        }
    }
    if not args.skip_llm:
        from promptopt.llm.bench import bench_llm

        figures["llm"] = bench_llm(args.llm_model)
        _print_section("offline LLM " + args.llm_model, figures["llm"])
    figures["embedder_cpu" if not args.device else f"embedder_{args.device}"] = emb = (
        bench_embedder(args.device or "cpu")
    )
    _print_section(f"embedder all-MiniLM-L6-v2 on {emb['device']}", emb)
    if torch.cuda.is_available() and not args.device:
        figures["embedder_cuda"] = gpu = bench_embedder("cuda")
        _print_section("embedder all-MiniLM-L6-v2 on cuda", gpu)
    sizes = [int(s) for s in args.faiss_sizes.split(",") if s.strip()]
    figures["faiss_top5"] = bench_faiss(sizes)
    _print_section("FAISS IndexIDMap2(FlatIP) top-5, 384-d", figures["faiss_top5"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2))
        print(f"\nwrote {args.out}")
    return 0


def _print_section(title: str, values: dict[str, Any], indent: str = "  ") -> None:
    print(f"{title}:" if indent == "  " else f"{indent[:-2]}{title}:")
    for key, value in values.items():
        if isinstance(value, dict):
            _print_section(key, value, indent + "  ")
        elif isinstance(value, float):
            print(f"{indent}{key}: {value:.3f}" if value < 100 else f"{indent}{key}: {value:.1f}")
        else:
            print(f"{indent}{key}: {value}")


__all__ = ["bench_embedder", "bench_faiss", "configure", "run"]
