"""Timing of the LLM half of ``promptopt bench services``.

For the offline model: a cold load (GGUF conversion into a fresh temporary cache), a warm load
(from that cache, in a fresh process as at an app restart; torch and transformers imports not
counted), then time to first token and tokens per second for a ~64-token answer,
median of ``runs``. For any other model only the generation figures apply (it is served
elsewhere); that needs its key in the environment and reaches the network.

Calls go through ``LLMClient`` like every other prompt, with no store: a benchmark must not
fill the user's call log.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from promptopt.llm.base import GenerationParams
from promptopt.llm.client import LLMClient
from promptopt.llm.local import CACHE_SUBDIR, MODEL_NAMES, LocalBackend

log = logging.getLogger("promptopt.llm.bench")

BENCH_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": "Write a short story, about three paragraphs, about a lighthouse keeper "
        "who finds a message in a bottle.",
    },
]


def bench_llm(
    model: str = "local/smollm2", *, runs: int = 3, max_tokens: int = 64
) -> dict[str, float]:
    """Measure the model; returns seconds (``*_s``) and rates (``*_per_s``)."""
    results: dict[str, float] = {}
    client = LLMClient(store=None, timeout_s=600.0, max_retries=0)
    if model in MODEL_NAMES:
        import torch

        with tempfile.TemporaryDirectory(prefix="promptopt-bench-") as tmp:
            cache_dir = Path(tmp) / CACHE_SUBDIR
            cold = LocalBackend(cache_dir, shared=False)
            results["cold_load_s"], from_cache = cold.load()
            if from_cache:  # a fresh folder must convert; anything else is a bug in the cache
                raise RuntimeError(f"cold load unexpectedly found a cache in {cache_dir}")
            del cold  # free its weights before loading a second copy
            # In a fresh process, like an app restart: this process has already imported
            # the model classes, which would make the figure look better than it is.
            results["warm_load_s"] = _warm_load_in_fresh_process(cache_dir)
            warm = LocalBackend(cache_dir, shared=False)
            results["reload_in_process_s"], _ = warm.load()
            client.register("local", warm)
            results.update(_generation_figures(client, model, runs, max_tokens))
        results["torch_threads"] = float(warm.threads or torch.get_num_threads())
        results["gpu"] = float(torch.cuda.is_available())
    else:
        results.update(_generation_figures(client, model, runs, max_tokens))
    log.info("bench %s: %s", model, results)
    return results


_WARM_LOAD = (
    "import json, sys\n"
    "import torch, transformers\n"
    "from pathlib import Path\n"
    "from promptopt.llm.local import LocalBackend\n"
    "print(json.dumps(LocalBackend(Path(sys.argv[1]), shared=False).load()))\n"
)


def _warm_load_in_fresh_process(cache_dir: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _WARM_LOAD, str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"warm load failed: {done.stderr[-2000:]}")
    seconds, from_cache = json.loads(done.stdout.strip().splitlines()[-1])
    if not from_cache:
        raise RuntimeError(f"warm load did not use the cache in {cache_dir}")
    return float(seconds)


def _generation_figures(
    client: LLMClient, model: str, runs: int, max_tokens: int
) -> dict[str, float]:
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    first_token: list[float] = []
    rates: list[float] = []
    decode_rates: list[float] = []
    tokens: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        first: float | None = None
        response = client.stream(BENCH_MESSAGES, model=model, params=params)
        for _delta in response:
            if first is None:
                first = time.perf_counter() - started
        total = time.perf_counter() - started
        completion = response.completion()
        n = completion.usage.completion_tokens or 0
        first_token.append(first if first is not None else total)
        tokens.append(float(n))
        rates.append(n / total if total > 0 else 0.0)
        if first is not None and n > 1 and total > first:
            # Tokens after the first, over the time after the first: the steady decoding speed.
            decode_rates.append((n - 1) / (total - first))
    figures = {
        "first_token_s": statistics.median(first_token),
        "tokens_per_s": statistics.median(rates),
        "completion_tokens": statistics.median(tokens),
    }
    if decode_rates:
        figures["decode_tokens_per_s"] = statistics.median(decode_rates)
    return figures


if __name__ == "__main__":  # python -m promptopt.llm.bench [model]
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(bench_llm(*sys.argv[1:2]), indent=2))
