"""One factory for the parts the application runs on, real and fake alike.

Real: the SQLite store (``PROMPTOPT_HOME``), the LLM client over the project's models (the offline
SmolLM2 by default) and the MiniLM embedder. Fake: the deterministic demo model answers every
project that has no model of its own (and any ``fake/...`` name), and the hashed embedder stands in
for MiniLM. Nothing here writes the environment; tests, the benchmark and ``serve`` all come here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promptopt.embeddings import Embedder, create_embedder
from promptopt.llm import FakeLLM, LLMClient, create_client, default_model
from promptopt.storage import Store, open_store
from promptopt.workspace.fakes import demo_fake_llm


@dataclass
class Parts:
    store: Store
    client: LLMClient
    embedder: Embedder
    fake: FakeLLM | None = None  # the fake model when one answers (tests read its history)


def make_parts(
    db_path: Path | str | None = None,
    *,
    store: Store | None = None,
    fake_llm: bool | FakeLLM = False,
    fake_default: bool = True,
    embedder: str | Embedder = "default",
    fake_delay_s: float = 0.0,
    backoff_s: float | None = None,
) -> Parts:
    """Store, client and embedder. ``fake_llm=True`` (or a FakeLLM) makes the fake answer model
    names ``fake/...`` and, with ``fake_default``, the offline default model's name too, so no
    real model is loaded; other names still reach their providers. ``embedder`` is a name for
    ``create_embedder`` ("default", "fake") or an object."""
    store = store if store is not None else open_store(db_path)
    fake: FakeLLM | None = None
    if fake_llm is not False:
        fake = fake_llm if isinstance(fake_llm, FakeLLM) else demo_fake_llm(delay_s=fake_delay_s)
    extra = {} if backoff_s is None else {"backoff_s": backoff_s}
    client = create_client(store, fake=fake, **extra)
    if fake is not None and fake_default:
        # Projects with no model of their own use the offline default ("local/..."): the fake
        # answers for it, so a fake run never loads a real model whatever the environment says.
        client.register("local", fake)
    made = create_embedder(embedder) if isinstance(embedder, str) else embedder
    return Parts(store, client, made, fake)


def preload_model(client: LLMClient, say: Callable[[str], None]) -> None:
    """Load (the first time on a machine: convert) the default model now, in the background,
    telling ``say`` what happens, so that the first Compare visit does not wait for it
    unannounced. Only a backend with a ``preload`` (the offline model) has anything to do."""
    try:
        backend = client.backend_for(default_model())
    except Exception:  # an unknown or unreachable model is reported where it is used
        return
    start = getattr(backend, "preload", None)
    if callable(start):
        start(say)
