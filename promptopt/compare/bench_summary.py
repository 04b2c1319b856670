"""``promptopt bench compare --summary``: every pool x model x seed x user scale, per method.

Prints the mean quality at 10, 25, 50, 100 and 150 votes and the engine time per round, writes
the raw curves as JSON (``--out``) and a PNG of quality against votes (``--plot``). The reference
method needs about half a second a round, so ``--apohf-limit K`` runs it on K (pool, model)
instances spread over the list only; the second table then compares every method on exactly
that subset.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from promptopt.compare.bench import (
    CHECKPOINTS,
    embed_texts,
    load_pool,
    pool_models,
    quality,
    simulate,
)
from promptopt.compare.model import single_thread_blas

Job = tuple[str, str | None, int, float, str, int]  # pool path, model, seed, M, method, rounds


def _run_job(job: Job, embedder: str) -> dict[str, Any]:
    path, model, seed, scale, method, rounds = job
    pool = load_pool(Path(path), model)
    features = embed_texts(pool.texts, embedder)
    with single_thread_blas():
        result = simulate(pool, features, method=method, rounds=rounds, seed=seed, user_scale=scale)
    return {
        "pool": pool.name,
        "model": model,
        "seed": seed,
        "user_scale": scale,
        "method": method,
        "size": len(pool.ids),
        "quality": [quality(pool, i) for i in result.best],
        "seconds": result.seconds,
    }


def _instances(pools_dir: Path, models: list[str] | None) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for path in sorted(pools_dir.glob("*.json")):
        available = pool_models(path)
        if available is None:
            out.append((str(path), None))
            continue
        chosen = models if models is not None else available[:3]
        out.extend((str(path), m) for m in chosen if m in available)
    if not out:
        raise ValueError(f"No pools (or none with the chosen models) in {pools_dir}.")
    return out


def _table(runs: list[dict[str, Any]], methods: Iterable[str], scales: list[float]) -> list[str]:
    lines = [
        "| method | M | runs | "
        + " | ".join(f"q@{c}" for c in CHECKPOINTS)
        + " | ms/round mean | ms/round p95 |",
        "|---" * (5 + len(CHECKPOINTS)) + "|",
    ]
    for scale in scales:
        for method in methods:
            chosen = [r for r in runs if r["method"] == method and r["user_scale"] == scale]
            if not chosen:
                continue
            curves = np.array([r["quality"] for r in chosen])
            secs = np.concatenate([r["seconds"] for r in chosen]) * 1000
            cells = [
                f"{curves[:, c - 1].mean():.3f}" if curves.shape[1] >= c else "-"
                for c in CHECKPOINTS
            ]
            lines.append(
                f"| {method} | {scale:g} | {len(chosen)} | "
                + " | ".join(cells)
                + f" | {secs.mean():.1f} | {np.percentile(secs, 95):.1f} |"
            )
    return lines


def _catch_up(runs: list[dict[str, Any]], scales: list[float]) -> list[str]:
    """Votes the default needs to reach apohf's quality after its last round."""
    lines = []
    for scale in scales:
        ref = [r for r in runs if r["method"] == "apohf" and r["user_scale"] == scale]
        ours = [r for r in runs if r["method"] == "default" and r["user_scale"] == scale]
        if not ref or not ours:
            continue
        target = float(np.array([r["quality"] for r in ref]).mean(0)[-1])
        curve = np.array([r["quality"] for r in ours]).mean(0)
        hit = np.nonzero(curve >= target)[0]
        reached = f"{int(hit[0]) + 1} votes" if hit.size else "not reached"
        lines.append(
            f"M={scale:g}: apohf after {len(curve)} votes = {target:.3f}; default reaches it "
            f"after {reached}"
        )
    return lines


def _plot(
    runs: list[dict[str, Any]],
    methods: list[str],
    scales: list[float],
    out: Path,
    subset_runs: list[dict[str, Any]] | None = None,
) -> None:
    """Solid lines: every run of a method. Dashed: the same methods on the apohf subset only, so
    that apohf is compared on the pools it ran on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(scales), figsize=(5.5 * len(scales), 4), squeeze=False)
    for ax, scale in zip(axes[0], scales, strict=True):
        for method in methods:
            chosen = [r for r in runs if r["method"] == method and r["user_scale"] == scale]
            if not chosen:
                continue
            curve = np.array([r["quality"] for r in chosen]).mean(0)
            line = ax.plot(
                np.arange(1, len(curve) + 1), curve, label=f"{method} ({len(chosen)} runs)"
            )
            same = [
                r
                for r in subset_runs or []
                if r["method"] == method and r["user_scale"] == scale and method != "apohf"
            ]
            if same:
                part = np.array([r["quality"] for r in same]).mean(0)
                ax.plot(
                    np.arange(1, len(part) + 1),
                    part,
                    linestyle="--",
                    color=line[0].get_color(),
                    label=f"{method}, apohf's pools ({len(same)} runs)",
                )
        ax.set_title(f"simulated user M = {scale:g}")
        ax.set_xlabel("votes")
        ax.set_ylabel("quality of reported prompt")
        ax.set_ylim(-0.6, 1.05)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run_summary(args: argparse.Namespace) -> int:
    if args.pools is None:
        raise ValueError("--summary needs --pools DIR (a folder of prompt-pool JSON files).")
    models = [m for m in args.models.split(",") if m] if args.models else None
    seeds = [int(s) for s in args.seeds.split(",") if s]
    scales = [float(s) for s in args.user_scales.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    instances = _instances(args.pools, models)
    for path, _model in instances:  # embed every pool once, before any worker starts
        embed_texts(load_pool(Path(path), _model).texts, args.embedder)
    if 0 < args.apohf_limit < len(instances):  # spread evenly, so every kind of pool is in it
        picks = np.linspace(0, len(instances) - 1, args.apohf_limit).round().astype(int)
        subset = {instances[int(k)] for k in picks}
    else:
        subset = set(instances)
    jobs: list[Job] = []
    for scale in scales:
        for method in methods:
            for inst in instances:
                if method == "apohf" and inst not in subset:
                    continue
                jobs.extend((inst[0], inst[1], seed, scale, method, args.rounds) for seed in seeds)
    # The slow jobs first, so that parallel workers finish together.
    jobs.sort(key=lambda j: j[4] != "apohf")
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    jobs_n = max(1, int(getattr(args, "jobs", 1) or 1))
    if jobs_n == 1:
        runs = [_run_job(j, args.embedder) for j in jobs]
    else:
        with ProcessPoolExecutor(jobs_n) as pool:
            runs = list(pool.map(_run_job, jobs, [args.embedder] * len(jobs)))
    elapsed = time.perf_counter() - start
    lines = [
        f"{len(instances)} (pool, model) instances x {len(seeds)} seeds; {args.rounds} rounds; "
        f"{elapsed:.0f}s",
        "",
        "All instances:",
        *_table(runs, [m for m in methods if m != "apohf" or subset == set(instances)], scales),
    ]
    subset_runs: list[dict[str, Any]] | None = None
    if "apohf" in methods and subset != set(instances):
        subset_runs = [
            r for r in runs if any(r["pool"] == Path(p).stem and r["model"] == m for p, m in subset)
        ]
        lines += [
            "",
            f"The apohf subset ({len(subset)} instances):",
            *_table(subset_runs, methods, scales),
        ]
        lines += _catch_up(subset_runs, scales)
    else:
        lines += _catch_up(runs, scales)
    print("\n".join(lines))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": lines, "runs": runs}))
    if args.plot is not None:
        _plot(runs, methods, scales, args.plot, subset_runs)
        print(f"plot: {args.plot}")
    return 0
