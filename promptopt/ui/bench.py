"""Benchmark of the web app's own overhead: ``python -m promptopt.ui.bench``.

Measured against an app launched in this process on a fresh database (fake embedder):
- vote -> next pair fully shown, in headless chromium: from the key press to the moment the
  counter shows the new vote and both outputs are complete on screen (the user's view);
- the same through gradio_client: from sending the vote to receiving the last update (server and
  protocol only, no rendering);
- the vote handler inside the server: from the vote arriving to the next pair's last update
  (recording the vote, choosing and generating the pair), before Gradio's own processing;
- page load: from navigation to the app being ready (its load event has filled the banner);
- the first pair of a new project, in headless chromium: a sample opened on the Project screen,
  Compare opened at once, until both outputs are complete (``--first-pair`` times only this);
- for scale, the client round trip to a one-line Gradio handler on the same machine.

With the fake LLM (default) these are the app's overhead; ``--model local`` uses the offline
default model instead (loaded at start, as ``serve`` does), so generation time is included.
``--read-s`` makes the simulated user read each pair that long before voting, in the browser
and through the client; ``--busy-cores`` keeps that many cores busy meanwhile (another job on
the machine). Calls that failed on the time limit are counted from the call log.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from promptopt.ui.harness import CHROMIUM, CHROMIUM_ARGS, RunningApp, running_app

SAMPLE = "news-summaries"
TIME_LIMIT_ERRORS = ("did not answer within", "was busy with other work")
# Both outputs on screen, complete, with the counter at ``n`` votes.
SHOWN = """n => {
    const counter = document.querySelector('#compare-counter');
    const left = document.querySelector('#compare-left textarea');
    const right = document.querySelector('#compare-right textarea');
    const status = document.querySelector('#compare-status');
    return counter && counter.innerText.includes(`Votes: ${n} by`)
        && left && left.value.length > 0 && right && right.value.length > 0
        && !(status && status.innerText.includes('Generating'));
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, Any]:
    """Median, p95 and worst, with every value in order (which vote was slow matters: the first
    ones overlap the background proposals)."""
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1) if values else float("nan"),
        "p95_ms": round(percentile(values, 0.95), 1),
        "max_ms": round(max(values), 1) if values else float("nan"),
        "each_ms": [round(v, 1) for v in values],
    }


WORDS = [
    "summarize", "explain", "briefly", "clearly", "news", "article", "reader", "plain",
    "formal", "friendly", "short", "bullet", "points", "facts", "tone", "careful", "neutral",
    "headline", "key", "numbers", "sentences", "simple",
]  # fmt: skip


def candidate_texts(n: int) -> list[str]:
    """``n`` distinct candidate prompts (seeded), so the pool has a realistic size."""
    import random

    rng = random.Random(0)
    return [f"Variant {k}: {' '.join(rng.sample(WORDS, 6))}.\n\n{{input}}" for k in range(n)]


def bench_client(
    app: RunningApp, votes: int, read_s: float = 0.0, candidates: int = 0
) -> list[float]:
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    client.predict("bench-client", api_name="/set_annotator")
    client.predict(api_name=f"/open_sample_{SAMPLE.replace('-', '_')}")
    if candidates:
        add_candidates(app, candidates)
    check(client.predict(api_name="/compare_start"), "the first pair")
    times: list[float] = []
    for i in range(votes):
        # A person reads the pair before voting; meanwhile the app generates the pair after it.
        time.sleep(read_s)
        start = time.perf_counter()
        result = client.predict("", api_name="/vote_left" if i % 2 else "/vote_right")
        times.append((time.perf_counter() - start) * 1000)
        check(result, f"vote {i + 1}")
    return times


def add_candidates(app: RunningApp, n: int) -> None:
    """Grow the open sample's pool (the bench's setup, not timed)."""
    store = app.store
    project = next(p for p in store.projects.list() if SAMPLE.split("-")[0] in p.name.lower())
    with store.transaction():
        for text in candidate_texts(n):
            store.prompts.add(project.id, text, "user")


def check(result: tuple[Any, ...], what: str) -> None:
    """Both outputs (fields 3 and 4) are text and the status (field 5) reports no problem."""
    left, right, status = result[3], result[4], result[5]
    complete = isinstance(left, str) and left and isinstance(right, str) and right
    if not complete or (isinstance(status, str) and status.strip()):
        raise RuntimeError(f"{what}: the pair was not shown complete: {status}")


def _ready(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function(
        "() => (document.querySelector('#banner') || {}).innerText?.includes('annotator')"
    )


def first_pair(page: Any, url: str) -> dict[str, float]:
    """A new user's first pair: open the sample on the Project screen, open Compare at once,
    wait until both outputs are complete. Milliseconds from the sample click and from the
    Compare click."""
    _ready(page, url)
    clicked = time.perf_counter()
    page.locator(f"#sample-{SAMPLE}").click()
    page.wait_for_function("() => document.querySelector('#banner').innerText.includes('Project:')")
    opened = time.perf_counter()
    page.get_by_role("tab", name="Compare", exact=True).click()
    page.wait_for_function(SHOWN, arg=0, polling="raf")
    done = time.perf_counter()
    return {"from_sample_ms": (done - clicked) * 1000, "from_compare_ms": (done - opened) * 1000}


@contextmanager
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(600_000)
            yield page
        finally:
            browser.close()


def bench_browser(
    app: RunningApp, votes: int, loads: int, read_s: float = 0.0
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"page_load": [], "vote_to_pair": []}
    with browser_page() as page:
        for _ in range(loads):
            start = time.perf_counter()
            _ready(page, app.url)
            out["page_load"].append((time.perf_counter() - start) * 1000)
        first = first_pair(page, app.url)
        out["first_pair_from_compare"] = [first["from_compare_ms"]]
        out["first_pair_from_sample"] = [first["from_sample_ms"]]
        for i in range(votes):
            time.sleep(read_s)  # the reader reads; meanwhile the app makes the next pair
            page.evaluate("() => document.activeElement && document.activeElement.blur()")
            start = time.perf_counter()
            page.keyboard.press("1" if i % 2 else "2")
            page.wait_for_function(SHOWN, arg=i + 1, polling="raf")
            out["vote_to_pair"].append((time.perf_counter() - start) * 1000)
    return out


def bench_first_pair(model: str, repeat: int) -> list[dict[str, float]]:
    """``repeat`` first pairs, each of a fresh app over a fresh database (the model, loaded once
    per process, stays loaded: the figure is for a model already converted and loaded)."""
    runs: list[dict[str, float]] = []
    for _ in range(repeat):
        with (
            tempfile.TemporaryDirectory() as folder,
            running_app(Path(folder) / "bench.db", real_llm=model != "fake") as app,
            browser_page() as page,
        ):
            _wait_for_model(app)
            runs.append(first_pair(page, app.url))
            # The proposals that the first pair starts would otherwise weigh on the next
            # repeat's pair (one model per process): a new user's first pair has none.
            _wait_for_threads("promptopt-propose")
    return runs


def _wait_for_model(app: RunningApp, timeout_s: float = 600.0) -> None:
    """Wait until the model that ``serve`` preloads at start is loaded (not timed)."""
    _wait_for_threads("promptopt-model-preload", timeout_s)


def _wait_for_threads(name: str, timeout_s: float = 600.0) -> None:
    import threading

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(t.name == name for t in threading.enumerate()):
            return
        time.sleep(0.2)


def _burn(stop: Any) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


@contextmanager
def busy_cores(n: int) -> Iterator[None]:
    """Keep ``n`` cores busy (another job on the machine) for the duration."""
    # Spawned, not forked: this process runs threads (the app, the model) that a fork would copy.
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    workers = [spawn.Process(target=_burn, args=(stop,), daemon=True) for _ in range(n)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(5)
            if worker.is_alive():
                worker.terminate()


def time_limit_failures(app: RunningApp) -> int:
    calls = app.store.calls.list(None, limit=100_000)
    return sum(1 for c in calls if c.error and any(e in c.error for e in TIME_LIMIT_ERRORS))


def gradio_floor(calls: int) -> list[float]:
    """The same client round trip to a one-line Gradio handler: what any Gradio app pays on this
    machine, so the app's own share can be read off."""
    import gradio as gr
    from gradio_client import Client

    from promptopt.ui.harness import free_port

    with gr.Blocks() as demo:
        box = gr.Textbox()
        button = gr.Button()

        def echo(text: str) -> Any:
            yield text + "!"

        button.click(echo, box, box, api_name="echo")
    demo.queue()
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        times: list[float] = []
        for _ in range(calls):
            start = time.perf_counter()
            client.predict("x", api_name="/echo")
            times.append((time.perf_counter() - start) * 1000)
        return times
    finally:
        demo.close()


def run(
    votes: int,
    loads: int,
    model: str,
    browser: bool,
    read_s: float = 0.0,
    candidates: int = 0,
    busy: int = 0,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "model": model,
        "votes": votes,
        "read_s": read_s,
        "candidates": candidates,
        "busy_cores": busy,
    }
    with (
        tempfile.TemporaryDirectory() as folder,
        running_app(Path(folder) / "bench.db", real_llm=model != "fake") as app,
        busy_cores(busy),
    ):
        # As ``--first-pair``: the first pair is timed with the model loaded (converted once
        # per machine); the load itself, as this run met it, is reported on its own.
        started = time.perf_counter()
        _wait_for_model(app)
        results["model_ready_s"] = round(time.perf_counter() - started, 1)
        if browser and Path(CHROMIUM).exists():
            measured = bench_browser(app, votes, loads, read_s)
            results["browser_first_pair_from_compare"] = summary(
                measured["first_pair_from_compare"]
            )
            results["browser_first_pair_from_sample"] = summary(measured["first_pair_from_sample"])
            results["browser_vote_to_next_pair"] = summary(measured["vote_to_pair"])
            results["browser_page_load"] = summary(measured["page_load"])
        app.context.timings.clear()
        results["client_vote_to_next_pair"] = summary(bench_client(app, votes, read_s, candidates))
        server = [ms for name, ms in app.context.timings if name == "vote"]
        results["server_vote_handler"] = summary(server)
        results["calls_failed_on_time_limit"] = time_limit_failures(app)
    results["client_gradio_floor"] = summary(gradio_floor(votes))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m promptopt.ui.bench", description=__doc__)
    parser.add_argument("--votes", type=int, default=40, help="votes to time (default 40)")
    parser.add_argument("--loads", type=int, default=5, help="page loads to time (default 5)")
    parser.add_argument(
        "--model",
        choices=["fake", "local"],
        default="fake",
        help="fake LLM (the app's overhead) or the offline default model",
    )
    parser.add_argument("--no-browser", action="store_true", help="gradio_client only")
    parser.add_argument(
        "--read-s",
        type=float,
        default=0.0,
        help="seconds the simulated user reads each pair before voting (browser and client)",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=0,
        help="grow the pool to this many extra candidate prompts before the gradio_client run",
    )
    parser.add_argument(
        "--busy-cores",
        type=int,
        default=0,
        help="keep this many cores busy during the run, as another job would (default 0)",
    )
    parser.add_argument(
        "--first-pair",
        action="store_true",
        help="only time a new project's first pair in the browser (fresh app each --repeat)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="first pairs to time (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.first_pair:
        with busy_cores(args.busy_cores):
            runs = bench_first_pair(args.model, args.repeat)
        results: dict[str, Any] = {
            "model": args.model,
            "busy_cores": args.busy_cores,
            "first_pair_from_compare": summary([r["from_compare_ms"] for r in runs]),
            "first_pair_from_sample": summary([r["from_sample_ms"] for r in runs]),
        }
    else:
        results = run(
            args.votes,
            args.loads,
            args.model,
            not args.no_browser,
            args.read_s,
            args.candidates,
            args.busy_cores,
        )
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
