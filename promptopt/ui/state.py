"""Per-browser-tab state. One ``SessionState`` lives in a ``gr.State`` per page load; nothing
user-specific is kept at module level, so several tabs and several annotators work at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from promptopt.workspace import Draft, Duel


@dataclass
class SessionState:
    """Deep-copyable by Gradio. Engine objects (a Duel, a Draft) are plain dataclasses."""

    session_id: str = ""
    annotator: str = "you"
    # True when the annotator comes from the login, so the page must not let it be changed.
    locked_annotator: bool = False
    project_id: int | None = None
    # Compare: the duel on screen, complete (both outputs shown) or not.
    duel: Duel | None = None
    duel_complete: bool = False
    votes_this_session: int = 0
    # Edit: the draft on screen and the output exactly as generated (the edit is compared to it).
    draft: Draft | None = None
    draft_output: str | None = None
    edit_rounds: int = 0
    # Values of the last failed action, kept so a retry re-runs it without retyping.
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, annotator: str = "you") -> SessionState:
        return cls(session_id=uuid.uuid4().hex, annotator=annotator)

    def reset_work(self, *, votes: bool = False) -> None:
        """Forget the pair and the draft on screen (another project or annotator)."""
        self.duel, self.duel_complete = None, False
        self.draft, self.draft_output = None, None
        if votes:
            self.votes_this_session = 0


def clean_annotator(name: str | None, default: str) -> str:
    """Annotator names are free text; surrounding space and empty names fall back to the default."""
    name = (name or "").strip()
    return name[:64] if name else default


def bind_user(st: SessionState, request: Any) -> SessionState:
    """With a login, the annotator is the logged-in user, whatever the page or an API call says.

    Every handler that reads or writes one annotator's data calls this first, so a client that
    skips the page's load event (gradio_client, scripts) is still bound to its login."""
    user = getattr(request, "username", None) if request is not None else None
    if user:
        st.annotator, st.locked_annotator = clean_annotator(user, st.annotator), True
    return st
