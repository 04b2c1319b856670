"""Pair selection strategies over a fixed pool of prompt embeddings.

A strategy sees the verdicts so far (as ``Votes``), proposes the next pair, and reports the
prompt it currently believes best. Three are offered:

- ``default``: kernel Bradley-Terry posterior (``KernelBT``). First arm: the highest posterior
  mean; second arm: the highest upper confidence bound on *beating the first arm*, mean(x) +
  beta * sd(f(x) - f(first)). The model is warm-started, so one vote costs milliseconds. The
  prior amplitude (how far apart utilities are, i.e. how consistent the user is) is chosen from
  the votes by the Laplace evidence, so a noisy user's single vote moves the reported best less.
- ``apohf``: the reference rule as its published code runs it: 5 uniform random pairs first; the
  MLP (N(0, 1) initialisation) retrained for 1,000 full-batch steps from the same initialisation
  every round; first arm greedy, second arm by the gradient-based UCB with a diagonal U recomputed
  from every pair so far with the current network; runner-up when both coincide.
- ``random``: uniform pairs; reports the winner of the last duel (the reference baseline).

Verdicts become training rows as follows: "a"/"b" a win for that prompt; "tie" half a win each
(target 0.5); "both_bad" no ordering between the two, but each loses a little (weight 0.3)
against an average prompt, so prompts that keep being called bad sink; "skip" nothing (a skip
says the person could not judge, not that the outputs were equal). The shown side is stored with
each comparison, and a prompt counts as shown only after a non-skip verdict.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from promptopt.compare.model import (
    VIRTUAL,
    Duels,
    KernelBT,
    KernelBTParams,
    NeuralBT,
    NeuralBTParams,
    normal_cdf,
)

STRATEGIES = ("default", "apohf", "random")
BOTH_BAD_WEIGHT = 0.3


@dataclass
class Vote:
    a: int  # pool indices, not prompt ids
    b: int
    verdict: str  # one of storage.VERDICTS


@dataclass
class Votes:
    items: list[Vote] = field(default_factory=list)

    def add(self, a: int, b: int, verdict: str) -> None:
        self.items.append(Vote(a, b, verdict))

    def duels(self) -> Duels:
        out = Duels()
        for v in self.items:
            if v.a == v.b:
                continue
            if v.verdict == "a":
                out.add(v.a, v.b, 1.0)
            elif v.verdict == "b":
                out.add(v.a, v.b, 0.0)
            elif v.verdict == "tie":
                out.add(v.a, v.b, 0.5)
            elif v.verdict == "both_bad":
                out.add(v.a, VIRTUAL, 0.0, BOTH_BAD_WEIGHT)
                out.add(v.b, VIRTUAL, 0.0, BOTH_BAD_WEIGHT)
        return out

    def shown(self) -> set[int]:
        return {x for v in self.items if v.verdict != "skip" for x in (v.a, v.b)}

    def __len__(self) -> int:
        return len(self.items)


K = TypeVar("K", bound=Hashable)
# What a verdict gives prompt a as a count of wins (b gets 1 minus it); other verdicts decide
# nothing: "both_bad" is a vote without a winner and "skip" no vote at all.
WIN_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5}


@dataclass
class Tally(Generic[K]):
    wins: defaultdict[K, float] = field(default_factory=lambda: defaultdict(float))  # a tie: half
    decided: Counter[K] = field(default_factory=Counter)  # a, b and tie verdicts
    votes: Counter[K] = field(default_factory=Counter)  # every verdict but skip

    def win_rate(self, key: K) -> float | None:
        return self.wins[key] / self.decided[key] if self.decided[key] else None


def tally(pairs: Iterable[tuple[K, K, str]]) -> Tally[K]:
    """Win counts from (a, b, verdict) triples: the one way the Compare engine, its random
    baseline and the exports count wins."""
    out: Tally[K] = Tally()
    for a, b, verdict in pairs:
        if verdict == "skip":
            continue
        out.votes.update((a, b))
        if verdict in WIN_SCORE:
            out.wins[a] += WIN_SCORE[verdict]
            out.wins[b] += 1.0 - WIN_SCORE[verdict]
            out.decided.update((a, b))
    return out


class Strategy(Protocol):
    name: str

    def update(self, votes: Votes) -> None:
        """Refit on all votes so far (the strategy may warm-start from its last fit)."""
        ...

    def choose(
        self, rng: np.random.Generator, avoid: tuple[int, int] | None = None
    ) -> tuple[int, int]:
        """The next pair; never ``avoid`` (in either order) when the pool offers another, so a
        pair reserved while another is on screen is chosen from the same fit, without a refit."""
        ...

    def best(self) -> int | None:
        """The prompt it would report now (among shown prompts), or None before any vote."""
        ...

    def utilities(self) -> tuple[np.ndarray, np.ndarray]:
        """(estimated utility, uncertainty) per prompt."""
        ...

    def win_probability(self, i: int, j: int) -> float:
        """P(prompt i beats prompt j) as the strategy sees it."""
        ...

    def challenger_probability(self, top: int) -> float:
        """The largest chance that any other prompt, shown or not, beats ``top``; 0 for a
        strategy with no posterior over the pool."""
        ...

    def warm_state(self) -> dict[int, float]:
        """What a restart needs to resume the fit quickly, keyed by pool index (may be empty)."""
        ...

    def set_warm_state(self, values: dict[int, float]) -> None: ...


def _random_pair(
    n: int, rng: np.random.Generator, avoid: tuple[int, int] | None
) -> tuple[int, int]:
    """A uniform pair, drawn again (a few times) while it is ``avoid``."""
    for _ in range(8 if avoid is not None and n > 2 else 1):
        a, b = (int(x) for x in rng.choice(n, size=2, replace=False))
        if avoid is None or {a, b} != set(avoid):
            break
    return a, b


def _mask_partner(scores: np.ndarray, first: int, avoid: tuple[int, int] | None) -> None:
    """Rule out the second arm that would make ``avoid`` again, if another arm is left."""
    if avoid is None or first not in avoid:
        return
    partner = avoid[1] if avoid[0] == first else avoid[0]
    if np.isfinite(np.delete(scores, [first, partner])).any():
        scores[partner] = -np.inf


def _argmax_among(values: np.ndarray, allowed: Iterable[int]) -> int:
    idx = np.asarray(sorted(allowed), dtype=np.int64)
    return int(idx[int(np.argmax(values[idx]))])


class KernelStrategy:
    name = "default"

    def __init__(
        self, features: np.ndarray, *, beta: float = 2.0, params: KernelBTParams | None = None
    ) -> None:
        self.model = KernelBT(features, params)
        self.beta = beta
        self.n = len(features)
        self._shown: set[int] = set()

    def update(self, votes: Votes) -> None:
        self.model.fit(votes.duels())
        self._shown = votes.shown()

    def choose(
        self, rng: np.random.Generator, avoid: tuple[int, int] | None = None
    ) -> tuple[int, int]:
        if self.n < 2:
            raise ValueError("A duel needs at least two prompts.")
        mean = self.model.mean()
        # Tiny jitter breaks exact ties (an untouched pool) at random instead of by position.
        jitter = rng.uniform(0, 1e-9, size=self.n)
        first = int(np.argmax(mean + jitter))
        ucb = mean + self.beta * self.model.diff_std(first) + jitter
        ucb[first] = -np.inf
        _mask_partner(ucb, first, avoid)
        return first, int(np.argmax(ucb))

    def best(self) -> int | None:
        if not self._shown:
            return None
        return _argmax_among(self.model.mean(), self._shown)

    def utilities(self) -> tuple[np.ndarray, np.ndarray]:
        return self.model.mean(), np.sqrt(self.model.variance())

    def win_probability(self, i: int, j: int) -> float:
        return self.model.win_probability(i, j)

    def challenger_probability(self, top: int) -> float:
        if self.n < 2:
            return 0.0
        mean = self.model.mean()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (mean - mean[top]) / self.model.diff_std(top)
        z[top] = -np.inf
        finite = z[np.isfinite(z)]  # a zero sd (the prompt itself) says nothing
        # The CDF is monotone, so the largest z decides.
        return normal_cdf(float(finite.max())) if finite.size else 0.0

    def warm_state(self) -> dict[int, float]:
        return self.model.warm_state()

    def set_warm_state(self, values: dict[int, float]) -> None:
        self.model.set_warm_state(values)


class _NoPosterior:
    """For strategies without a posterior over the pool or a state worth saving."""

    def challenger_probability(self, top: int) -> float:
        return 0.0

    def warm_state(self) -> dict[int, float]:
        return {}

    def set_warm_state(self, values: dict[int, float]) -> None:
        return None


class NeuralStrategy(_NoPosterior):
    """The reference APOHF rule (xqlin98/APOHF, ``NeuralDBDiag`` and ``run_dbandits_po.py``):
    the first ``initial_random`` pairs uniform at random, then the network retrained from its
    N(0, 1) initialisation on every pair so far, first arm greedy, second arm by the gradient UCB
    with U recomputed from the whole history. ``steps``/``warm`` exist so the network can be
    studied at other training budgets; ``apohf`` uses the reference's 1,000 steps from scratch."""

    name = "apohf"
    INITIAL_RANDOM = 5  # the reference's run script: --n_init 5 of --total_iter 150

    def __init__(
        self,
        features: np.ndarray,
        rng: np.random.Generator,
        *,
        params: NeuralBTParams | None = None,
        warm: bool = False,
        initial_random: int = INITIAL_RANDOM,
    ) -> None:
        self.model = NeuralBT(features, rng, params)
        self.warm = warm
        self.initial_random = initial_random
        self.n = len(features)
        self._shown: set[int] = set()
        # Pairs that were shown and judged, the reference's select_idx_history. Skips are left
        # out: the person saw nothing worth judging, and U measures what the votes taught.
        self._history: list[tuple[int, int]] = []
        self._u: list[np.ndarray] | None = None
        self._pred = self.model.predict()

    def update(self, votes: Votes) -> None:
        self.model.fit(votes.duels(), warm=self.warm)
        self._pred = self.model.predict()
        self._shown = votes.shown()
        self._history = [(v.a, v.b) for v in votes.items if v.verdict != "skip" and v.a != v.b]
        self._u = None

    def confidence(self) -> list[np.ndarray]:
        """U for the current network and history (computed once per fit: a reserved pair and
        the pair on screen share it)."""
        if self._u is None:
            self._u = self.model.confidence(self._history)
        return self._u

    def choose(
        self, rng: np.random.Generator, avoid: tuple[int, int] | None = None
    ) -> tuple[int, int]:
        if self.n < 2:
            raise ValueError("A duel needs at least two prompts.")
        if len(self._history) < self.initial_random:
            return _random_pair(self.n, rng, avoid)
        first = int(np.argmax(self._pred))
        ucb = self._pred + self.model.sigma(first, self.confidence())
        _mask_partner(ucb, first, avoid)
        order = np.argsort(-ucb, kind="stable")
        second = int(order[0]) if int(order[0]) != first else int(order[1])
        return first, second

    def best(self) -> int | None:
        if not self._shown:
            return None
        return _argmax_among(self._pred, self._shown)

    def utilities(self) -> tuple[np.ndarray, np.ndarray]:
        first = int(np.argmax(self._pred))
        return self._pred, self.model.sigma(first, self.confidence())

    def win_probability(self, i: int, j: int) -> float:
        # The network has no posterior; a Bradley-Terry probability of its point estimates.
        return float(1.0 / (1.0 + np.exp(-(self._pred[i] - self._pred[j]))))


class RandomStrategy(_NoPosterior):
    name = "random"

    def __init__(self, features: np.ndarray, rng: np.random.Generator) -> None:
        self.n = len(features)
        self.rng = rng
        self._best: int | None = None
        self._wins = np.zeros(self.n)
        self._games = np.zeros(self.n)

    def update(self, votes: Votes) -> None:
        counts = tally((v.a, v.b, v.verdict) for v in votes.items)
        self._wins = np.array([counts.wins[k] for k in range(self.n)])
        self._games = np.array([counts.decided[k] for k in range(self.n)], dtype=float)
        for v in reversed(votes.items):  # the winner of the last decided duel
            if v.verdict in ("a", "b", "tie"):
                if v.verdict == "tie":
                    self._best = v.a if self.rng.random() < 0.5 else v.b
                else:
                    self._best = v.a if v.verdict == "a" else v.b
                break

    def choose(
        self, rng: np.random.Generator, avoid: tuple[int, int] | None = None
    ) -> tuple[int, int]:
        if self.n < 2:
            raise ValueError("A duel needs at least two prompts.")
        return _random_pair(self.n, rng, avoid)

    def best(self) -> int | None:
        return self._best

    def utilities(self) -> tuple[np.ndarray, np.ndarray]:
        rate = (self._wins + 1) / (self._games + 2)
        return rate, np.sqrt(rate * (1 - rate) / (self._games + 2))

    def win_probability(self, i: int, j: int) -> float:
        rate, sd = self.utilities()
        return normal_cdf(float(rate[i] - rate[j]) / float(np.hypot(sd[i], sd[j])))


def make_strategy(name: str, features: np.ndarray, rng: np.random.Generator) -> Strategy:
    if name == "default":
        return KernelStrategy(features)
    if name == "apohf":
        return NeuralStrategy(features, rng)
    if name == "random":
        return RandomStrategy(features, rng)
    raise ValueError(f"Unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}.")
