"""``promptopt bench pair``: what a Compare pair costs with the model, against one output and
against the old way (two sequential fp32 generations).

Each repeat times, back to back so that a busy machine weighs on all three alike:
- ``single``: one output alone, on today's path (the default weights);
- ``pair``: the two outputs of a pair (two prompts, one input) through ``LLMClient.stream_many``,
  i.e. decoded as one batch by the local model; the pair is done when both are;
- ``reference pair``: the same two outputs as the previous version made them: two sequential
  generations, fp32 weights, torch's default thread count (all cores); for another model, the
  two calls one after the other.
Greedy decoding, so each repeat does the same work; the prompts ask for long texts so that every
output runs to ``--max-tokens``. One warm-up of each path first, not counted.

Writes ``{"single_s", "pair_s", "reference_pair_s", "tokens_per_s", "first_token_s"}``:
medians in seconds; ``tokens_per_s`` is the tokens of both outputs over the pair's time (what
the pair path delivers), ``first_token_s`` the time from asking for the pair to its first text.
No store: a benchmark does not fill the user's call log.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from promptopt.llm.base import GenerationParams
from promptopt.llm.client import LLMClient, StreamingResponse

log = logging.getLogger("promptopt.llm.bench_pair")

INPUT = (
    "The old lighthouse on the northern cape was switched off in 1987, when satellite navigation "
    "made it unnecessary. Since then a group of volunteers has repaired its stairs, repainted "
    "its tower and opened a small museum about the keepers who lived there."
)
PAIR_PROMPTS = (
    "Write a long, detailed article for a local newspaper based on this note:\n\n{input}",
    "Tell the story behind this note as a long narrative, with many details:\n\n{input}",
)


def _messages(template: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": template.replace("{input}", INPUT)}]


def _drain(responses: list[StreamingResponse], started: float) -> tuple[float, float, int]:
    """Read every response (in order: the others fill meanwhile); return (first text at, done
    at, completion tokens), times relative to ``started``."""
    first: float | None = None
    for response in responses:
        for _ in response:
            if first is None:
                first = time.perf_counter() - started
    done = time.perf_counter() - started
    tokens = sum(r.completion().usage.completion_tokens or 0 for r in responses)
    return (first if first is not None else done), done, tokens


def bench_pair(
    model: str = "local/smollm2", *, max_tokens: int = 128, repeat: int = 3
) -> tuple[dict[str, float], dict[str, Any]]:
    """Returns (the five figures, details for the printout)."""
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    pair = [_messages(t) for t in PAIR_PROMPTS]
    client = LLMClient(store=None, timeout_s=3600.0, max_retries=0)
    reference = LLMClient(store=None, timeout_s=3600.0, max_retries=0)
    details: dict[str, Any] = {"model": model}
    if model.split("/", 1)[0] == "local":
        import torch

        from promptopt.llm.local import LocalBackend

        # Read before any backend sets it: the thread count the previous version decoded with.
        old_threads = torch.get_num_threads()
        fast = LocalBackend(shared=False)
        old = LocalBackend(shared=False, weights="fp32", threads=old_threads)
        fast.load()
        old.load()
        client.register("local", fast)
        reference.register("local", old)
        loaded = fast._ensure_loaded()
        details.update(
            weights=loaded.weights,
            device=loaded.device,
            threads=fast.threads,
            reference=f"fp32, {old_threads} threads, one output at a time",
        )

    def one() -> tuple[float, float, int]:
        started = time.perf_counter()
        return _drain([client.stream(pair[0], model=model, params=params)], started)

    def together() -> tuple[float, float, int]:
        started = time.perf_counter()
        return _drain(client.stream_many(pair, model=model, params=params), started)

    def old_way() -> tuple[float, float, int]:
        started = time.perf_counter()
        first, _, tokens = _drain([reference.stream(pair[0], model=model, params=params)], started)
        _, done, more = _drain([reference.stream(pair[1], model=model, params=params)], started)
        return first, done, tokens + more

    for run in (one, together, old_way):  # warm-up: kernels, caches, allocator
        run()
    singles, pairs, refs, firsts, rates, tokens = [], [], [], [], [], []
    for _ in range(repeat):
        singles.append(one()[1])
        first, done, n = together()
        pairs.append(done)
        firsts.append(first)
        rates.append(n / done if done > 0 else 0.0)
        tokens.append(n)
        refs.append(old_way()[1])
    figures = {
        "single_s": round(statistics.median(singles), 3),
        "pair_s": round(statistics.median(pairs), 3),
        "reference_pair_s": round(statistics.median(refs), 3),
        "tokens_per_s": round(statistics.median(rates), 2),
        "first_token_s": round(statistics.median(firsts), 3),
    }
    details.update(
        pair_tokens=statistics.median(tokens),
        runs={"single_s": singles, "pair_s": pairs, "reference_pair_s": refs},
    )
    details["agreement"] = _agreement(client, reference, pair[0], model, params)
    return figures, details


def _agreement(
    client: LLMClient,
    reference: LLMClient,
    messages: list[dict[str, str]],
    model: str,
    params: GenerationParams,
) -> dict[str, Any]:
    """How far the fast path's greedy text follows the fp32 one: the shared leading words."""
    fast = client.complete(messages, model=model, params=params).text
    old = reference.complete(messages, model=model, params=params).text
    a, b = fast.split(), old.split()
    same = 0
    while same < min(len(a), len(b)) and a[same] == b[same]:
        same += 1
    return {"same_leading_words": same, "of_words": len(b), "fast": fast[:160], "fp32": old[:160]}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "n/a (too fast to time)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="local/smollm2", help="model to measure")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per output")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats (median)")
    parser.add_argument("--out", type=Path, help="where to write the JSON figures")


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1 or args.max_tokens < 1:
        raise ValueError("--repeat and --max-tokens must be at least 1.")
    figures, details = bench_pair(args.model, max_tokens=args.max_tokens, repeat=args.repeat)
    text = json.dumps(figures, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    single, pair, ref = figures["single_s"], figures["pair_s"], figures["reference_pair_s"]
    print(
        f"pair / single = {_ratio(pair, single)} (target <= 1.3)   "
        f"reference / pair = {_ratio(ref, pair)} (target >= 3)"
    )
    shown = {k: v for k, v in details.items() if k not in ("agreement", "runs")}
    print(f"setup: {json.dumps(shown)}")
    runs = {k: [round(x, 2) for x in v] for k, v in details["runs"].items()}
    print(f"runs: {json.dumps(runs)}")
    agreement = details["agreement"]
    print(
        f"greedy text vs fp32: {agreement['same_leading_words']} of {agreement['of_words']} "
        "leading words the same"
    )
    print(f"  fast: {agreement['fast']!r}")
    print(f"  fp32: {agreement['fp32']!r}")
    return 0
