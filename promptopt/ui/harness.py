"""Launching the app on a free local port with fake parts, for tests and the benchmark."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.chromium import DEBIAN_CHROMIUM, find_chromium
from promptopt.ui.app import build_app, launch_kwargs
from promptopt.ui.context import AppContext
from promptopt.ui.login import auth_launch_kwargs
from promptopt.workspace import Workspace, make_parts, make_workspace
from promptopt.workspace.factory import preload_model

log = logging.getLogger("promptopt.ui")

# The chromium the browser tests and the UI benchmark launch (found as CI finds it). The networking
# flags keep it from reaching for Google's services on a machine with no network.
CHROMIUM = find_chromium() or DEBIAN_CHROMIUM
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class RunningApp:
    url: str
    demo: Any
    context: AppContext
    fake: Any

    @property
    def workspace(self) -> Workspace:
        return self.context.workspace

    @property
    def store(self) -> Any:
        """The database behind the app, for tests to check what was stored."""
        return self.context.workspace.store


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_app(
    db_path: Path | str,
    *,
    fake_delay_s: float = 0.0,
    fake_word_delay_s: float = 0.0,
    auth: list[tuple[str, str]] | None = None,
    seed: int = 0,
    real_llm: bool = False,
    embedder: str = "fake",
) -> Iterator[RunningApp]:
    """The app over a fresh store, the demo fake LLM and the fake embedder, served in a thread.
    With ``real_llm`` the default models answer instead (the offline SmolLM2 unless
    PROMPTOPT_MODEL names another), loaded as ``serve`` loads it (in the background from the
    start); the fake embedder stays unless ``embedder="default"`` loads the real one (MiniLM),
    for walks where which past inputs count as similar is part of what is checked.
    ``fake_word_delay_s`` makes the fake stream slowly, a word at a time, as a model on a CPU
    does."""
    parts = make_parts(
        db_path,
        fake_llm=True,
        fake_default=not real_llm,
        embedder=embedder,
        fake_delay_s=fake_delay_s,
        backoff_s=0.0,
    )
    if parts.fake is not None:
        parts.fake.word_delay_s = fake_word_delay_s
    if real_llm:
        preload_model(parts.client, lambda line: log.info("%s", line))
    demo = build_app(make_workspace(parts, seed=seed), auth_enabled=bool(auth))
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_kwargs(),
        **auth_launch_kwargs(auth),
    )
    try:
        context = demo.promptopt_context  # type: ignore[attr-defined]
        yield RunningApp(f"http://127.0.0.1:{port}/", demo, context, parts.fake)
    finally:
        demo.close()
        parts.store.database.close()
