"""Response-level mode: for one input, rank several candidate responses with the same machinery.

The arms are responses instead of prompts (the APOHF paper's response-selection variant): each is
embedded, pairs are chosen by the default strategy, and verdicts update the same kernel
Bradley-Terry posterior. Held in memory; the caller stores the verdicts it wants to keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from promptopt.compare.selection import KernelStrategy, Votes
from promptopt.embeddings import Embedder


@dataclass
class RankedResponse:
    index: int
    text: str
    utility: float
    uncertainty: float
    shown: bool


class ResponseRanker:
    def __init__(self, embedder: Embedder, responses: Sequence[str], *, seed: int = 0) -> None:
        if len(responses) < 2:
            raise ValueError("Ranking needs at least two responses.")
        self.responses = list(responses)
        self.strategy = KernelStrategy(embedder.encode(self.responses))
        self.votes = Votes()
        self.rng = np.random.default_rng(seed)

    def next_pair(self) -> tuple[int, int]:
        return self.strategy.choose(self.rng)

    def record(self, a: int, b: int, verdict: str) -> None:
        """verdict as in storage.VERDICTS, "a"/"b" meaning response index a / b."""
        if verdict not in ("a", "b", "tie", "both_bad", "skip"):
            raise ValueError(f"Unknown verdict {verdict!r}.")
        self.votes.add(a, b, verdict)
        self.strategy.update(self.votes)

    def ranking(self) -> list[RankedResponse]:
        mean, spread = self.strategy.utilities()
        shown = self.votes.shown()
        rows = [
            RankedResponse(k, t, float(mean[k]), float(spread[k]), k in shown)
            for k, t in enumerate(self.responses)
        ]
        return sorted(rows, key=lambda r: (not r.shown, -r.utility, r.index))

    def best(self) -> tuple[int, float] | None:
        """(index of the best shown response, P(it beats the runner-up)), or None before votes."""
        top = self.strategy.best()
        if top is None:
            return None
        others = [r for r in self.ranking() if r.shown and r.index != top]
        if not others:
            return top, 0.5
        return top, self.strategy.win_probability(top, others[0].index)
