"""What the Compare engine hands out (duels, leaderboard rows, the best prompt, a vote's result)
and the per-(project, annotator) session it keeps between calls."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from promptopt.compare.selection import Strategy, Votes
from promptopt.storage.models import Comparison, Input, Prompt


@dataclass
class Duel:
    id: str
    project_id: int
    input: Input
    prompt_a: Prompt
    prompt_b: Prompt
    left: str  # "a" or "b": which prompt's output goes on the LEFT of the screen
    output_a: str | None = None
    output_b: str | None = None


@dataclass
class LeaderboardRow:
    prompt: Prompt
    utility: float
    uncertainty: float
    votes: int
    wins: float
    win_rate: float | None
    shown: bool


@dataclass
class BestReport:
    prompt: Prompt
    utility: float
    confidence: float  # P(best beats runner-up)
    votes: int
    suggest_stop: bool
    message: str


@dataclass
class VoteResult:
    """What the screen needs after a vote, from one refit: the duel to show next (the one
    reserved while the user read, when there was one), the duel reserved to follow it, the
    annotator's vote count and the current best prompt."""

    comparison: Comparison
    next: Duel | None  # None when no duel can be made (fewer than two prompts, no inputs)
    reserved: Duel | None
    votes: int
    best: BestReport | None


@dataclass
class Session:
    prompts: list[Prompt]
    features: np.ndarray
    strategy: Strategy
    votes: Votes = field(default_factory=Votes)
    input_uses: dict[int, int] = field(default_factory=dict)
    pending: tuple[int, int] | None = None  # pool indices of the next pair
    # The duel reserved to follow the one on screen, keyed by that duel's id: chosen before the
    # vote so its outputs can be generated while the user reads (see next_duel(after=...)).
    queued: tuple[str, Duel] | None = None
    pending_duel: Duel | None = None  # a queued duel promoted by the vote: shown next, as is
    history: list[tuple[int, float]] = field(default_factory=list)
    stale: bool = False
    unsaved: int = 0  # votes fitted since the engine state was last stored
    inputs: list[Input] | None = None  # the project's inputs as last read (see _duel_inputs)

    def index(self) -> dict[int, int]:
        return {p.id: k for k, p in enumerate(self.prompts)}
