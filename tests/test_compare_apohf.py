"""``apohf`` against the published APOHF code (xqlin98/APOHF: ``NeuralDBDiag`` in
``LlamaForMLPRegression.py``, the loop in ``run_dbandits_po.py``), re-derived here in torch line
by line from that code's description: N(0, 1) initialisation of every weight and bias, Adam with
weight decay lambda/(n+50) from the same initialisation every round, BCE on f(a) - f(b), U =
lambda + sum over the whole history of (g(a) - g(b))^2 with the current network, first arm
greedy, second arm argmax f + sqrt(nu * sum (g - g_first)^2 / U), 5 random pairs first. A tiny
pool keeps every number checkable; the arms are also pinned as literals."""

from __future__ import annotations

import numpy as np
import pytest

from promptopt.compare.model import NeuralBTParams
from promptopt.compare.selection import NeuralStrategy, Votes

torch = pytest.importorskip("torch")  # a dependency of sentence-transformers, not of ours

HIDDEN, STEPS, LAM, NU = 3, 40, 0.1, 1.0


def _pool() -> np.ndarray:
    x = np.random.default_rng(3).normal(size=(6, 4))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Reference:
    """The reference network and its three steps, written against torch as the paper's code uses
    it (autograd for the per-prompt gradients, torch.optim.Adam for training)."""

    def __init__(self, init: list[np.ndarray]) -> None:
        self.init = [torch.tensor(p) for p in init]
        self.params = [p.clone().requires_grad_(True) for p in self.init]

    def f(self, x: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2, w3, b3 = self.params
        h = torch.relu(x @ w1.T + b1)
        h = torch.relu(h @ w2.T + b2)
        return h @ w3.T + b3

    def train(self, x: np.ndarray, pairs: list[tuple[int, int]], wins: list[int]) -> None:
        with torch.no_grad():
            for p, p0 in zip(self.params, self.init, strict=True):
                p.copy_(p0)
        opt = torch.optim.Adam(self.params, lr=1e-3, weight_decay=LAM / (len(pairs) + 50))
        xa = torch.tensor(x[[a for a, _ in pairs]])
        xb = torch.tensor(x[[b for _, b in pairs]])
        y = torch.tensor(wins, dtype=torch.float32)
        for _ in range(STEPS):
            opt.zero_grad()
            logits = (self.f(xa) - self.f(xb)).reshape(-1)
            torch.nn.functional.binary_cross_entropy_with_logits(logits, y).backward()
            opt.step()

    def grads(self, x: np.ndarray) -> np.ndarray:
        rows = []
        for k in range(len(x)):
            for p in self.params:
                p.grad = None
            self.f(torch.tensor(x[k : k + 1])).sum().backward()
            rows.append(torch.cat([p.grad.flatten() for p in self.params]).numpy().copy())
        return np.array(rows, dtype=np.float64)

    def select(self, x: np.ndarray, history: list[tuple[int, int]]) -> tuple[int, int, np.ndarray]:
        with torch.no_grad():
            mu = self.f(torch.tensor(x)).reshape(-1).numpy()
        g = self.grads(x)
        feature = np.array([g[a] - g[b] for a, b in history])
        u = LAM + (feature**2).sum(0)
        first = int(np.argmax(mu))
        sigma = np.sqrt((NU * (g - g[first]) ** 2 / u).sum(1))
        order = np.argsort(-(mu + sigma))
        second = int(order[1] if order[0] == first else order[0])
        return first, second, u


def test_first_rounds_match_the_reference_code() -> None:
    x = _pool()
    params = NeuralBTParams(hidden=HIDDEN, steps=STEPS, lam=LAM, nu=NU)
    strategy = NeuralStrategy(x, np.random.default_rng(7), params=params, initial_random=2)

    # Initialisation: every weight and bias drawn from N(0, 1), layer by layer.
    draws = np.random.default_rng(7)
    shapes = [(HIDDEN, 4), (HIDDEN,), (HIDDEN, HIDDEN), (HIDDEN,), (1, HIDDEN), (1,)]
    init = [draws.standard_normal(shape).astype(np.float32) for shape in shapes]
    assert np.array_equal(strategy.model.init_flat, np.concatenate([p.ravel() for p in init]))
    reference = Reference(init)

    # The first two pairs are uniform at random from the chooser's generator.
    chooser, replay = np.random.default_rng(11), np.random.default_rng(11)
    votes, pairs, wins = Votes(), [], []
    winner = {0: 0.0, 1: 0.3, 2: 0.9, 3: 0.5, 4: 0.1, 5: 0.7}  # the user prefers larger
    chosen = []
    for _ in range(5):
        a, b = strategy.choose(chooser)
        if len(pairs) < 2:
            assert (a, b) == tuple(int(v) for v in replay.choice(6, size=2, replace=False))
        else:
            ref_first, ref_second, ref_u = reference.select(x, pairs)
            assert (a, b) == (ref_first, ref_second)
            u = np.concatenate([block.ravel() for block in strategy.confidence()])
            assert np.allclose(u, ref_u, rtol=1e-4, atol=1e-6)
            assert strategy.choose(chooser) == (a, b)  # U is recomputed, never accumulated
        chosen.append((a, b))
        win = int(winner[a] > winner[b])
        votes.add(a, b, "a" if win else "b")
        pairs.append((a, b))
        wins.append(win)
        strategy.update(votes)
        reference.train(x, pairs, wins)
        with torch.no_grad():
            expected = reference.f(torch.tensor(x)).reshape(-1).numpy()
        assert np.allclose(strategy.utilities()[0], expected, rtol=1e-4, atol=1e-4)
    # Pinned (checked above against the reference): a change here is a change of rule.
    assert chosen == PINNED_ARMS
    assert strategy.best() == max(votes.shown(), key=lambda k: expected[k])


PINNED_ARMS = [(0, 5), (2, 3), (4, 1), (4, 3), (4, 5)]


def test_u_ignores_skips_and_starts_at_lambda() -> None:
    x = _pool()
    strategy = NeuralStrategy(x, np.random.default_rng(0), params=NeuralBTParams(steps=STEPS))
    assert all(np.all(block == LAM) for block in strategy.confidence())
    votes = Votes()
    votes.add(0, 1, "skip")
    strategy.update(votes)
    assert all(np.all(block == LAM) for block in strategy.confidence())
    votes.add(0, 1, "both_bad")  # shown and judged: counts in U though it trains nothing
    strategy.update(votes)
    assert any(np.any(block > LAM) for block in strategy.confidence())
