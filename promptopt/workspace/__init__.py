"""The application layer between the UI and the engines (see docs/architecture.md).

The UI imports this package and nothing below it: the workspace, the factory that makes its
parts (real or fake), and the types that the screens read.
"""

from __future__ import annotations

from pathlib import Path

from promptopt.compare.service import BestReport, Duel, LeaderboardRow
from promptopt.edit.service import Draft, EditResult, ProfileEntry
from promptopt.inputs_io import ParseResult
from promptopt.llm import LOCAL_DEFAULT
from promptopt.paths import ASSETS
from promptopt.storage.models import Input, LLMCall, Preference, Project, Prompt
from promptopt.workspace.core import ProjectForm, VoteOutcome, Workspace
from promptopt.workspace.errors import NoProject, NotFoundError, ValidationError, describe_error
from promptopt.workspace.factory import Parts, make_parts
from promptopt.workspace.pairs import POLL_S, PendingPair
from promptopt.workspace.sides import SCREEN_VERDICTS, engine_verdict, screen_prompts


def make_workspace(parts: Parts, *, seed: int = 0, export_dir: Path | None = None) -> Workspace:
    return Workspace(parts.store, parts.client, parts.embedder, seed=seed, export_dir=export_dir)


__all__ = [
    "ASSETS",
    "LOCAL_DEFAULT",
    "POLL_S",
    "SCREEN_VERDICTS",
    "BestReport",
    "Draft",
    "Duel",
    "EditResult",
    "Input",
    "LLMCall",
    "LeaderboardRow",
    "NoProject",
    "NotFoundError",
    "ParseResult",
    "Parts",
    "PendingPair",
    "Preference",
    "ProfileEntry",
    "Project",
    "ProjectForm",
    "Prompt",
    "ValidationError",
    "VoteOutcome",
    "Workspace",
    "describe_error",
    "engine_verdict",
    "make_parts",
    "make_workspace",
    "screen_prompts",
]
