"""What every tab's handlers share: the store, the LLM client, the embedder and the engines.

Built once per app by ``build_app``; it holds services, never user data (per-user values live in
``SessionState``; the only per-session thing here is the pair prefetcher, keyed by session id and
dropped when the page closes).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.llm import LOCAL_DEFAULT, LLMClient, LLMError, default_model
from promptopt.storage import NotFoundError, StorageError, Store, ValidationError
from promptopt.storage.models import Project

# Offered in the model pickers; any litellm name or ``openai/<model>`` with a base URL also works.
MODEL_CHOICES = [
    LOCAL_DEFAULT,
    "gpt-4o-mini",
    "anthropic/claude-3-5-haiku-latest",
    "ollama/llama3.2",
    "openai/<your-model> (set the base URL)",
]

log = logging.getLogger("promptopt.ui")


class Unavailable(RuntimeError):
    """An engine that is not part of this build; the message says so plainly."""


class NoProject(RuntimeError):
    """A screen needs an open project."""


def user_message(exc: BaseException) -> str:
    """One readable line for the page. Engine and storage errors already say what to do."""
    if isinstance(exc, Unavailable | NoProject):
        return str(exc)
    if isinstance(exc, LLMError):
        text = str(exc).rstrip()
        end = "" if text.endswith((".", "!", "?")) else "."
        return f"The model call failed: {text}{end} Press Retry; nothing you entered was lost."
    if isinstance(exc, ValidationError | NotFoundError | StorageError | ValueError):
        return str(exc)
    return f"Something went wrong ({type(exc).__name__}: {exc}). Nothing you entered was lost."


@dataclass
class AppContext:
    store: Store
    client: LLMClient
    embedder: Any
    annotator_default: str = "you"
    seed: int = 0
    auth_enabled: bool = False
    export_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="promptopt-")))
    pairs: Any = None  # PairProducer, set by build_app
    # Server-side durations of hot handlers (name, ms), for the benchmark; bounded, no user data.
    timings: deque[tuple[str, float]] = field(default_factory=lambda: deque(maxlen=2000))
    _compare: Any = None
    _edit: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- engines, built on first use so a missing engine only disables its own tab -------------
    def _build(self, name: str, factory: Callable[[], Any]) -> Any:
        try:
            return factory()
        except ImportError as exc:
            raise Unavailable(
                f"The {name} engine is not available in this build ({exc}). "
                "The other tabs still work."
            ) from exc

    @property
    def compare(self) -> Any:
        with self._lock:
            if self._compare is None:

                def make() -> Any:
                    from promptopt.compare.service import CompareService

                    return CompareService(self.store, self.client, self.embedder, seed=self.seed)

                self._compare = self._build("Compare", make)
            return self._compare

    @property
    def edit(self) -> Any:
        with self._lock:
            if self._edit is None:

                def make() -> Any:
                    from promptopt.edit.service import EditService

                    return EditService(self.store, self.client, self.embedder, seed=self.seed)

                self._edit = self._build("Edit", make)
            return self._edit

    def embed_inputs_later(self, project_id: int) -> None:
        """Embed new inputs in the background so the Edit rounds that use them only retrieve.
        A cache: if it fails, the round embeds its input itself, so nothing is lost."""

        def work() -> None:
            try:
                self.edit.embed_inputs(project_id)
            except Exception:
                log.warning("embedding inputs of project %s ahead of time failed", project_id)

        threading.Thread(target=work, daemon=True, name="promptopt-embed-inputs").start()

    # -- small shared look-ups ----------------------------------------------------------------
    def project(self, project_id: int | None) -> Project:
        if project_id is None:
            raise NoProject("Open or create a project first (Project tab).")
        try:
            return self.store.projects.get(project_id)
        except NotFoundError as exc:
            raise NoProject("This project no longer exists; open another one.") from exc

    def default_model(self) -> str:
        return default_model()
