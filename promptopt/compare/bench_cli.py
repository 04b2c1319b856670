"""``promptopt bench compare``: one simulated run (``promptopt.compare.bench``) or a summary over
many pools (``promptopt.compare.bench_summary``). The command line lives here so that neither
module imports the other's caller."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from promptopt.compare.bench import embed_texts, load_pool, quality, simulate
from promptopt.compare.bench_summary import run_summary
from promptopt.compare.model import single_thread_blas
from promptopt.compare.selection import STRATEGIES


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", type=Path, help="one prompt-pool JSON file")
    parser.add_argument("--model", help="which model's accuracies to use (pools with accs)")
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--user-scale", type=float, default=10.0, help="M of the simulated user")
    parser.add_argument("--method", choices=STRATEGIES, default="default")
    parser.add_argument("--out", type=Path, help="where to write the JSON result")
    parser.add_argument("--embedder", default="default", help="embedding model (default MiniLM)")
    parser.add_argument("--summary", action="store_true", help="run many pools and tabulate")
    parser.add_argument("--pools", type=Path, help="folder of pools for --summary")
    parser.add_argument("--models", help="comma-separated models for --summary (default: 3)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds for --summary")
    parser.add_argument("--methods", default="random,default,apohf")
    parser.add_argument(
        "--apohf-limit",
        type=int,
        default=0,
        help="run apohf on only K (pool, model) instances, spread evenly (it is slow)",
    )
    parser.add_argument("--user-scales", default="10,1")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for --summary")
    parser.add_argument("--plot", type=Path, help="PNG of quality vs votes (with --summary)")


def run(args: argparse.Namespace) -> int:
    if args.summary:
        return run_summary(args)
    if args.pool is None or args.out is None:
        raise ValueError("Pass --pool FILE and --out FILE.json (or --summary --pools DIR).")
    pool = load_pool(args.pool, args.model)
    features = embed_texts(pool.texts, args.embedder)
    with single_thread_blas():
        result = simulate(
            pool,
            features,
            method=args.method,
            rounds=args.rounds,
            seed=args.seed,
            user_scale=args.user_scale,
        )
    payload: dict[str, Any] = {
        "pool": str(args.pool),
        "model": args.model,
        "method": args.method,
        "seed": args.seed,
        "user_scale": args.user_scale,
        "best_per_round": [pool.ids[i] for i in result.best],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1))
    print(
        f"{pool.name} {args.method}: quality after {args.rounds} votes "
        f"{quality(pool, result.best[-1]):.3f}; engine time {np.mean(result.seconds) * 1000:.1f} "
        f"ms/round (p95 {np.percentile(result.seconds, 95) * 1000:.1f}); wrote {args.out}"
    )
    return 0
