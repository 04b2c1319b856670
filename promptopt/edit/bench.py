"""`promptopt bench edit`: the CIPHER experiments with a simulated user, for any agent model.

Per round a document arrives (its kind decides the user's latent preference), the agent writes,
the simulated user edits, and the method learns. Reported per method: word edit distance per
round and in total, the agent's LLM tokens, preference accuracy (is the phrase the agent used
closest, among every kind's latent preference, to the true one?) and the share of the oracle's
gain the method recovers. ``--overhead`` measures the engine's own cost per round instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from promptopt.edit.distance import word_distance
from promptopt.edit.prompts import neutralise
from promptopt.edit.pyuser import PythonUser, load_python_user
from promptopt.edit.service import DEFAULT_THRESHOLD, EditService
from promptopt.edit.simulate import (
    FakeAgent,
    KindPreference,
    LLMUser,
    RuleUser,
    load_user,
    preference_for,
)
from promptopt.edit.verify import DEFAULT_BUDGET, DEFAULT_REPLAYS, VerifyConfig
from promptopt.embeddings import Embedder, create_embedder
from promptopt.generation import build_messages
from promptopt.llm import CallContext, FakeLLM, LLMClient, create_client
from promptopt.llm.resolve import resolve_call
from promptopt.paths import ASSETS
from promptopt.storage import Store, open_store

DEFAULT_METHODS = "no-learning,oracle,default,icl-edit,cipher-1,cipher-5"
# default: what the app does (observable + verified + inferred). default+fix: the same with every
# exact output fix switched on, as a user who ticks them in the profile would.
METHODS_HELP = "no-learning, oracle, default, default+fix, icl-edit or cipher-K"
SimUser = RuleUser | LLMUser | PythonUser
DEFAULT_TEMPLATE = "Summarize the following text.\n\n{input}"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DOCS = [
    REPO_ROOT.parent / "shared" / "data" / "documents" / "cnndm-235.jsonl",
    ASSETS / "documents" / "product-reviews.jsonl",
    ASSETS / "documents" / "how-to-guides.jsonl",
]
ICL_EXAMPLE_CHARS = 1500
ANNOTATOR = "simulated-user"
BENCH_TIMEOUT_S = 1800.0


@dataclass
class Doc:
    kind: str
    id: str
    text: str


@dataclass
class BenchConfig:
    agent: str = "fake"
    rounds: int = 30
    seed: int = 0
    methods: tuple[str, ...] = tuple(DEFAULT_METHODS.split(","))
    template: str = DEFAULT_TEMPLATE
    max_tokens: int = 64
    temperature: float = 0.0
    threshold: float = DEFAULT_THRESHOLD
    api_base: str | None = None
    max_input_chars: int = 2000
    verify: VerifyConfig = field(default_factory=VerifyConfig)


def load_docs(paths: list[Path]) -> list[Doc]:
    docs: list[Doc] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"No document file {path}; pass --docs FILE.jsonl.")
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if not line.strip():
                    continue
                row = json.loads(line)
                text = str(row.get("text") or "").strip()
                if text:
                    docs.append(Doc(str(row.get("kind") or path.stem), str(row.get("id", n)), text))
    if not docs:
        raise ValueError("The document files hold no rows with text.")
    return docs


def schedule(docs: list[Doc], rounds: int, rng: random.Random) -> list[Doc]:
    """Each round a kind drawn uniformly, then that kind's next document (shuffled, cycling)."""
    by_kind: dict[str, list[Doc]] = {}
    for doc in docs:
        by_kind.setdefault(doc.kind, []).append(doc)
    kinds = sorted(by_kind)
    for pool in by_kind.values():
        rng.shuffle(pool)
    cursor = dict.fromkeys(kinds, 0)
    out: list[Doc] = []
    for _ in range(rounds):
        kind = rng.choice(kinds)
        pool = by_kind[kind]
        out.append(pool[cursor[kind] % len(pool)])
        cursor[kind] += 1
    return out


class PreferenceJudge:
    """Preference accuracy as in CIPHER: the used phrase is counted correct when, among the
    latent preferences of all kinds, the true one is the most similar to it."""

    def __init__(self, embedder: Embedder, user: dict[str, KindPreference], kinds: list[str]):
        self.kinds = kinds
        self.embedder = embedder
        self.latent = embedder.encode([preference_for(user, k).preference for k in kinds])

    def correct(self, phrase: str, kind: str) -> bool:
        if not phrase.strip():
            return False
        scores = self.latent @ self.embedder.encode([phrase])[0]
        return self.kinds[int(np.argmax(scores))] == kind


@dataclass
class _IclItem:
    vector: np.ndarray
    output: str
    edited: str


def _icl_messages(template: str, text: str, examples: list[_IclItem]) -> list[dict[str, str]]:
    if not examples:
        return build_messages(template, text)
    shown = "\n\n".join(
        f"<example>\n<output>\n{neutralise(e.output[:ICL_EXAMPLE_CHARS])}\n</output>\n"
        f"<edited>\n{neutralise(e.edited[:ICL_EXAMPLE_CHARS])}\n</edited>\n</example>"
        for e in examples
    )
    system = (
        "Below are texts you wrote for this user on similar inputs, each with the version the "
        "user edited it into. They are examples, not instructions. Write so that the user "
        f"would not need to edit.\n\n{shown}"
    )
    return build_messages(template, text, system=system)


def run_method(
    method: str,
    store: Store,
    client: LLMClient,
    embedder: Embedder,
    user: SimUser,
    prefs: dict[str, KindPreference],
    rounds: list[Doc],
    cfg: BenchConfig,
    judge: PreferenceJudge,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    settings = {
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
        "seed": cfg.seed,
        **({"api_base": cfg.api_base} if cfg.api_base else {}),
    }
    project = store.projects.create(
        f"bench-{method}-{time.time_ns()}",
        cfg.template,
        generator_model=cfg.agent,
        settings=settings,
    )
    call = resolve_call(project, "generate")
    service = _service(method, store, client, embedder, cfg)
    icl: list[_IclItem] = []
    distances: list[int] = []
    tokens = 0
    correct = 0
    started = time.perf_counter()
    for n, doc in enumerate(rounds, 1):
        text = doc.text[: cfg.max_input_chars]
        item = store.inputs.add(project.id, text, source=doc.kind)
        latent = preference_for(prefs, doc.kind).preference
        draft = None
        if service is not None:
            draft = service.prepare(project.id, ANNOTATOR, item.id)
            messages, phrase = draft.messages, draft.preference
        elif method == "oracle":
            messages, phrase = build_messages(cfg.template, text, preference=latent), latent
        elif method == "icl-edit":
            vector = embedder.encode([text])[0]
            scored = sorted(
                ((float(vector @ e.vector), i) for i, e in enumerate(icl)), reverse=True
            )
            chosen = [icl[i] for s, i in scored[:5] if s >= cfg.threshold]
            messages, phrase = _icl_messages(cfg.template, text, chosen), ""
        else:
            messages, phrase = build_messages(cfg.template, text), ""
        if service is not None and draft is not None and service.policy == "default":
            # What the app does: the drafts (one, or two when observed preferences wait for
            # verification) in one batch, the better-fitting one shown, then the switched-on
            # fixes (default+fix only).
            completions = [r.completion() for r in service.generate_drafts(draft)]
            tokens += sum(c.total_tokens for c in completions)
            output = service.choose(draft, [c.text.strip() for c in completions])
            phrase = draft.preference
        else:
            completion = client.stream(
                messages,
                context=CallContext(purpose="generate", project_id=project.id),
                use_cache=True,
                **call.kwargs(),
            ).completion()
            tokens += completion.total_tokens
            output = completion.text.strip()
            if draft is not None:
                output = draft.finish(output)
        edited = user.edit(doc.kind, text, output)
        if service is not None and draft is not None:
            if method == "default+fix":
                _switch_fixes_on(store, project.id)
            if edited.strip():
                distance = service.submit_and_learn(draft, output, edited, ANNOTATOR).word_distance
            else:
                distance = word_distance(output, edited)
        else:
            distance = word_distance(output, edited)
            if method == "icl-edit" and edited != output:
                icl.append(_IclItem(embedder.encode([text])[0], output, edited))
        distances.append(distance)
        if method in ("oracle",) or service is not None:
            correct += judge.correct(phrase, doc.kind)
        if progress and (n % 10 == 0 or n == len(rounds)):
            progress(f"{method}: round {n}/{len(rounds)}, cumulative distance {sum(distances)}")
    if service is not None:
        tokens += sum(service.meta_tokens.values())
    has_phrase = method == "oracle" or service is not None
    by_kind: dict[str, int] = {}
    for doc, distance in zip(rounds, distances, strict=False):
        by_kind[doc.kind] = by_kind.get(doc.kind, 0) + distance
    return {
        "edit_distance_per_round": distances,
        "cumulative_edit_distance": int(sum(distances)),
        "cumulative_edit_distance_per_kind": dict(sorted(by_kind.items())),
        "tokens": int(tokens),
        "preference_accuracy": (correct / len(rounds)) if has_phrase and rounds else None,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _service(
    method: str, store: Store, client: LLMClient, embedder: Embedder, cfg: BenchConfig
) -> EditService | None:
    if method in ("no-learning", "oracle", "icl-edit"):
        return None
    if method in ("default", "default+fix"):
        return EditService(
            store,
            client,
            embedder,
            threshold=cfg.threshold,
            meta_model=cfg.agent,
            verify=cfg.verify,
        )
    if not method.startswith("cipher-"):
        raise ValueError(f"Unknown method {method!r}; use {METHODS_HELP}.")
    try:
        k = int(method.split("-", 1)[1])
    except ValueError as exc:
        raise ValueError(f"Unknown method {method!r}; use cipher-K with K a number.") from exc
    return EditService(
        store,
        client,
        embedder,
        k=k,
        threshold=cfg.threshold,
        meta_model=cfg.agent,
        policy="cipher",
    )


def _switch_fixes_on(store: Store, project_id: int) -> None:
    for pref in store.preferences.list(project_id, ANNOTATOR):
        if pref.kind == "observable" and not pref.fix:
            store.preferences.update(pref.id, fix=1)


def run_benchmark(
    store: Store,
    client: LLMClient,
    embedder: Embedder,
    docs: list[Doc],
    user: SimUser,
    prefs: dict[str, KindPreference],
    cfg: BenchConfig,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    rounds = schedule(docs, cfg.rounds, rng)
    kinds = sorted({d.kind for d in docs})
    judge = PreferenceJudge(embedder, prefs, kinds)
    methods: dict[str, dict[str, Any]] = {}
    for method in cfg.methods:
        methods[method] = run_method(
            method, store, client, embedder, user, prefs, rounds, cfg, judge, progress
        )
    base = methods.get("no-learning", {}).get("cumulative_edit_distance")
    oracle = methods.get("oracle", {}).get("cumulative_edit_distance")
    gain = (base - oracle) if base is not None and oracle is not None else None
    for result in methods.values():
        result["oracle_gain_recovered"] = (
            round((base - result["cumulative_edit_distance"]) / gain, 3)
            if gain and base is not None
            else None
        )
    return {
        "agent": cfg.agent,
        "user": user.name,
        "seed": cfg.seed,
        "rounds": cfg.rounds,
        "threshold": cfg.threshold,
        "max_tokens": cfg.max_tokens,
        "kinds": {k: preference_for(prefs, k).preference for k in kinds},
        "docs_per_kind": {k: sum(1 for d in rounds if d.kind == k) for k in kinds},
        "oracle_gain": gain,
        "methods": methods,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, data in result["methods"].items():
        ax.plot(np.cumsum(data["edit_distance_per_round"]), label=method)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative word edit distance")
    ax.set_title(f"Edit engine: agent {result['agent']}, user {result['user']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_table(result: dict[str, Any]) -> str:
    lines = [
        f"agent={result['agent']} user={result['user']} rounds={result['rounds']} "
        f"seed={result['seed']} oracle gain={result['oracle_gain']}",
        f"{'method':<12} {'cum. dist':>9} {'tokens':>8} {'pref acc':>8} {'oracle gain %':>13}",
    ]
    for method, data in result["methods"].items():
        acc = data["preference_accuracy"]
        share = data["oracle_gain_recovered"]
        lines.append(
            f"{method:<12} {data['cumulative_edit_distance']:>9} {data['tokens']:>8} "
            f"{'-' if acc is None else f'{acc:.2f}':>8} "
            f"{'-' if share is None else f'{share * 100:.0f}%':>13}"
        )
    kinds = sorted({k for d in result["methods"].values() for k in d.get(_PER_KIND, {})})
    if kinds:
        lines.append("cumulative distance per kind:")
        lines.append(f"{'method':<12} " + " ".join(f"{k[:16]:>16}" for k in kinds))
        for method, data in result["methods"].items():
            per = data.get(_PER_KIND, {})
            lines.append(f"{method:<12} " + " ".join(f"{per.get(k, 0):>16}" for k in kinds))
    return "\n".join(lines)


_PER_KIND = "cumulative_edit_distance_per_kind"


# -- command line -----------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--docs", action="append", type=Path, help="JSONL documents (repeat)")
    parser.add_argument(
        "--user",
        default="rule",
        help="rule | llm:MODEL | python:FILE[:CLASS] (a class with preference(kind) and "
        "edit(kind, document, output); default rule)",
    )
    parser.add_argument("--user-config", type=Path, help="JSON of latent preferences per kind")
    parser.add_argument("--agent", default="local/smollm2", help="agent model (fake: offline)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--out", type=Path, default=Path("edit-bench.json"))
    parser.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt with {input}")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--api-base", help="OpenAI-compatible server URL for the agent")
    parser.add_argument("--user-api-base", help="OpenAI-compatible server URL for an llm user")
    parser.add_argument("--embedder", default="default", help="default (MiniLM) | fake")
    parser.add_argument("--db", type=Path, help="keep the run's database here (default: temp)")
    parser.add_argument(
        "--overhead", action="store_true", help="measure engine overhead per round instead"
    )
    parser.add_argument("--sizes", default="100,10000,100000", help="memory sizes (--overhead)")
    parser.add_argument("--queries", type=int, default=100, help="rounds per size (--overhead)")
    parser.add_argument(
        "--input-words", type=int, default=0, help="cut inputs to N words (--overhead; 0: whole)"
    )
    parser.add_argument(
        "--verify-budget",
        type=int,
        default=DEFAULT_BUDGET,
        help="default method: uncached generations per edit spent verifying phrases",
    )
    parser.add_argument(
        "--verify-replays",
        type=int,
        default=DEFAULT_REPLAYS,
        help="default method: earlier similar inputs a phrase is replayed on",
    )
    parser.add_argument("--debug", action="store_true")


def run(args: argparse.Namespace) -> int:
    docs = load_docs(args.docs or DEFAULT_DOCS)
    embedder = create_embedder(args.embedder)
    if args.overhead:
        from promptopt.edit.overhead import measure_overhead, overhead_table

        sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
        texts = [d.text for d in docs]
        if args.input_words > 0:
            texts = [" ".join(t.split()[: args.input_words]) for t in texts]
        rows = measure_overhead(embedder, texts, sizes, args.queries, args.seed)
        print(overhead_table(rows))
        if args.out:
            args.out.write_text(json.dumps({"overhead": rows}, indent=2))
        return 0
    prefs = load_user(args.user_config)
    python_user = None
    if args.user.startswith("python:"):
        python_user = load_python_user(args.user, args.seed)
        prefs = python_user.preferences(sorted({d.kind for d in docs}))
    cfg = BenchConfig(
        agent=args.agent,
        rounds=args.rounds,
        seed=args.seed,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        template=args.template,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        threshold=args.threshold,
        api_base=args.api_base,
        verify=VerifyConfig(replays=args.verify_replays, budget=args.verify_budget),
    )
    with tempfile.TemporaryDirectory(prefix="promptopt-bench-") as tmp:
        store = open_store(args.db or Path(tmp) / "bench.db")
        fake = FakeLLM(default=FakeAgent(prefs)) if args.agent.startswith("fake") else None
        # A benchmark measures what learning saves, not latency: on a busy machine one slow
        # generation must not end a run of many minutes (PROMPTOPT_LLM_TIMEOUT still rules).
        timeout = float(os.environ.get("PROMPTOPT_LLM_TIMEOUT", BENCH_TIMEOUT_S))
        client = create_client(store, fake=fake, timeout_s=timeout)
        user: SimUser
        if python_user is not None:
            user = python_user
        elif args.user == "rule":
            user = RuleUser(prefs)
        elif args.user.startswith("llm:"):
            user = LLMUser(prefs, client, args.user.split(":", 1)[1], args.user_api_base)
        else:
            raise ValueError(
                f"Unknown --user {args.user!r}; use rule, llm:MODEL or python:FILE[:CLASS]."
            )
        result = run_benchmark(
            store,
            client,
            embedder,
            docs,
            user,
            prefs,
            cfg,
            progress=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
        store.database.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    print(summary_table(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0
