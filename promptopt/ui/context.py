"""What every tab's handlers share: the workspace (the application layer) and a few page-wide
settings. Built once per app by ``build_app``; it holds services, never user data (per-user
values live in ``SessionState``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from promptopt.ui.formatting import escape_md
from promptopt.workspace import LOCAL_DEFAULT, Workspace, describe_error

# Offered in the model pickers; any litellm name or ``openai/<model>`` with a base URL also works.
MODEL_CHOICES = [
    LOCAL_DEFAULT,
    "gpt-4o-mini",
    "anthropic/claude-3-5-haiku-latest",
    "ollama/llama3.2",
    "openai/<your-model> (set the base URL)",
]


def user_message(exc: BaseException) -> str:
    """One readable line for a Markdown status, escaped: error texts carry what a user, a file or
    a model wrote (a project name, a server's error body), which must show as text and never
    become an image or a link the browser fetches."""
    return escape_md(describe_error(exc))


@dataclass
class AppContext:
    workspace: Workspace
    annotator_default: str = "you"
    auth_enabled: bool = False
    # Server-side durations of hot handlers (name, ms), for the benchmark; bounded, no user data.
    timings: deque[tuple[str, float]] = field(default_factory=lambda: deque(maxlen=2000))
