"""``promptopt bench compare``: the Compare engine on scored prompt pools with a simulated user.

One run (the contract):
    promptopt bench compare --pool FILE --model NAME --rounds N --seed S --user-scale M \
        --method METHOD --out FILE.json
writes {"pool", "model", "method", "seed", "user_scale", "best_per_round": [prompt id, ...]}.

Summary over pools, models, seeds and both user scales:
    promptopt bench compare --summary --pools DIR --models a,b --seeds 0,1,2 \
        --methods random,default,apohf --out summary.json --plot quality.png

The simulated user is the APOHF one: z = standardised accuracy, P(a beats b) = sigmoid(M (z_a -
z_b)). Quality after t votes = (acc(reported) - median) / (max - median).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promptopt.compare.selection import Votes, make_strategy

CHECKPOINTS = (10, 25, 50, 100, 150)
USER_SCALES = (10.0, 1.0)


@dataclass
class Pool:
    name: str
    ids: list[str]
    texts: list[str]
    accs: np.ndarray


def load_pool(path: Path, model: str | None) -> Pool:
    """Read a pool; prompts with ``accs`` per model need ``model``, a single ``accuracy`` not."""
    data = json.loads(Path(path).read_text())
    ids, texts, accs = [], [], []
    for p in data["prompts"]:
        if "accs" in p:
            if model is None:
                raise ValueError(
                    f"{path} scores prompts per model; pass --model (one of "
                    f"{', '.join(data.get('models', sorted(p['accs'])))})."
                )
            value = p["accs"].get(model)
        else:
            value = p.get("accuracy")
        if value is None:
            continue  # a prompt without a score for this model cannot be an arm
        ids.append(str(p["id"]))
        texts.append(str(p["template"]))
        accs.append(float(value))
    if len(ids) < 2:
        raise ValueError(f"{path} has fewer than two prompts scored for model {model!r}.")
    return Pool(Path(path).stem, ids, texts, np.asarray(accs))


def pool_models(path: Path) -> list[str] | None:
    data = json.loads(Path(path).read_text())
    if any("accs" in p for p in data["prompts"]):
        return list(data.get("models") or sorted(data["prompts"][0]["accs"]))
    return None


_EMBED_CACHE: dict[str, np.ndarray] = {}


def embed_texts(texts: list[str], embedder_name: str = "default") -> np.ndarray:
    """Embed once per pool and embedder, cached in-process and in a temp-dir file."""
    key = hashlib.sha256(("\x00".join([embedder_name, *texts])).encode()).hexdigest()[:24]
    if key in _EMBED_CACHE:
        return _EMBED_CACHE[key]
    cache_dir = Path(tempfile.gettempdir()) / "promptopt-bench-embeddings"
    file = cache_dir / f"{key}.npy"
    if file.exists():
        vectors = np.load(file)
    else:
        from promptopt.embeddings import create_embedder

        vectors = create_embedder(embedder_name).encode(texts)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(file)
    _EMBED_CACHE[key] = vectors
    return vectors


@dataclass
class RunResult:
    best: list[int]  # pool index reported after each round
    seconds: list[float]  # engine time per round (update + choose + report)


def simulate(
    pool: Pool,
    features: np.ndarray,
    *,
    method: str,
    rounds: int,
    seed: int,
    user_scale: float,
) -> RunResult:
    """One benchmark run. The user's and the engine's randomness come from separate streams so
    that methods face the same user noise process for the same seed."""
    engine_rng = np.random.default_rng([seed, 1])
    user_rng = np.random.default_rng([seed, 2])
    z = (pool.accs - pool.accs.mean()) / (pool.accs.std() or 1.0)
    strategy = make_strategy(method, features, engine_rng)
    votes = Votes()
    best: list[int] = []
    seconds: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        a, b = strategy.choose(engine_rng)
        spent = time.perf_counter() - start
        p_a = 1.0 / (1.0 + np.exp(-user_scale * (z[a] - z[b])))
        votes.add(a, b, "a" if user_rng.random() < p_a else "b")
        start = time.perf_counter()
        strategy.update(votes)
        reported = strategy.best()
        spent += time.perf_counter() - start
        best.append(a if reported is None else reported)
        seconds.append(spent)
    return RunResult(best, seconds)


def quality(pool: Pool, index: int) -> float:
    median, top = float(np.median(pool.accs)), float(pool.accs.max())
    if top - median <= 0:
        return 1.0
    return (float(pool.accs[index]) - median) / (top - median)
