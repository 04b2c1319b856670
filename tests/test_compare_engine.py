"""The Compare engine's models and pair selection on small synthetic pools (no storage, no LLM)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from promptopt.compare.model import (
    VIRTUAL,
    Duels,
    KernelBT,
    KernelBTParams,
    NeuralBT,
    NeuralBTParams,
)
from promptopt.compare.selection import (
    KernelStrategy,
    NeuralStrategy,
    RandomStrategy,
    Votes,
    make_strategy,
)


def _pool(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _duel_loop(strategy, utility: np.ndarray, rounds: int, scale: float, seed: int = 0) -> Votes:
    rng = np.random.default_rng(seed)
    votes = Votes()
    for _ in range(rounds):
        a, b = strategy.choose(rng)
        assert a != b
        p_a = 1 / (1 + np.exp(-scale * (utility[a] - utility[b])))
        votes.add(a, b, "a" if rng.random() < p_a else "b")
        strategy.update(votes)
    return votes


def test_default_finds_an_obviously_best_prompt() -> None:
    x = _pool(30)
    utility = np.zeros(30)
    utility[17] = 3.0  # one prompt far better than the rest, which are all alike
    strategy = KernelStrategy(x)
    votes = _duel_loop(strategy, utility, rounds=60, scale=3.0)
    assert strategy.best() == 17
    # the second arm explores: many different prompts were tried, not one pair over and over
    assert len(votes.shown()) >= 10


def test_default_tracks_a_smooth_utility() -> None:
    x = _pool(40, dim=8, seed=3)
    utility = 3 * x[:, 0]  # utility varies smoothly with the embedding
    strategy = KernelStrategy(x)
    _duel_loop(strategy, utility, rounds=50, scale=2.0, seed=1)
    best = strategy.best()
    assert best is not None
    # noisy user (a gap of 1 wins only 88% of duels): one of the five best of 40 after 50 votes
    assert utility[best] >= np.sort(utility)[-5]


def test_second_arm_is_the_most_uncertain_rival_before_any_vote() -> None:
    x = _pool(10)
    strategy = KernelStrategy(x)
    first, second = strategy.choose(np.random.default_rng(0))
    sd = strategy.model.diff_std(first)
    sd[first] = -1
    assert second == int(np.argmax(sd))


def test_ties_count_half_a_win_and_all_ties_leave_everyone_equal() -> None:
    x = _pool(6)
    votes = Votes()
    rng = np.random.default_rng(0)
    for _ in range(30):
        a, b = rng.choice(6, size=2, replace=False)
        votes.add(int(a), int(b), "tie")
    duels = votes.duels()
    assert set(duels.y) == {0.5}
    strategy = KernelStrategy(x)
    strategy.update(votes)
    mean, _ = strategy.utilities()
    assert np.ptp(mean) < 0.05
    assert 0.4 < strategy.win_probability(0, 1) < 0.6


def test_skip_is_no_information_and_shows_nothing() -> None:
    x = _pool(5)
    votes = Votes()
    votes.add(0, 1, "skip")
    assert len(votes.duels()) == 0
    assert votes.shown() == set()
    strategy = KernelStrategy(x)
    strategy.update(votes)
    assert strategy.best() is None
    assert np.allclose(strategy.utilities()[0], 0.0)


def test_both_bad_pushes_both_prompts_down_without_ordering_them() -> None:
    x = _pool(5)
    votes = Votes()
    votes.add(0, 1, "both_bad")
    duels = votes.duels()
    assert duels.j == [VIRTUAL, VIRTUAL] and duels.y == [0.0, 0.0]
    strategy = KernelStrategy(x)
    strategy.update(votes)
    mean, _ = strategy.utilities()
    assert mean[0] < 0 and mean[1] < 0
    assert votes.shown() == {0, 1}


def test_contradictory_votes_give_an_even_finite_posterior() -> None:
    x = _pool(3)
    votes = Votes()
    for _ in range(20):
        votes.add(0, 1, "a")
        votes.add(0, 1, "b")
    strategy = KernelStrategy(x)
    strategy.update(votes)
    mean, sd = strategy.utilities()
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(sd))
    assert abs(mean[0] - mean[1]) < 1e-3
    assert abs(strategy.win_probability(0, 1) - 0.5) < 0.01


@pytest.mark.parametrize("adaptive", [False, True])
def test_confidence_grows_with_consistent_votes_and_is_symmetric(adaptive: bool) -> None:
    x = _pool(4)
    # With the evidence-chosen amplitude, a run of wins also widens the prior (a consistent user
    # has far-apart utilities), which can hold the confidence level for a vote or two.
    params = KernelBTParams() if adaptive else KernelBTParams(amplitude_ladder=())
    strategy = KernelStrategy(x, params=params)
    seen = []
    votes = Votes()
    for _ in range(3):
        for _ in range(3):
            votes.add(0, 1, "a")
        strategy.update(votes)
        seen.append(strategy.win_probability(0, 1))
    assert seen[0] > 0.5 and max(seen) < 1.0
    if adaptive:
        assert seen[0] < seen[1] and seen[2] > seen[1] - 0.01
    else:
        assert seen[0] < seen[1] < seen[2]
    assert strategy.win_probability(0, 1) + strategy.win_probability(1, 0) == pytest.approx(1.0)


def test_laplace_fit_is_at_the_posterior_mode() -> None:
    x = _pool(8)
    duels = Duels()
    rng = np.random.default_rng(2)
    for _ in range(25):
        a, b = rng.choice(8, size=2, replace=False)
        duels.add(int(a), int(b), float(rng.random() < 0.7))
    duels.add(3, VIRTUAL, 0.0, 0.3)
    # a fixed amplitude, so that the refit below cannot move to a neighbouring one
    model = KernelBT(x, KernelBTParams(amplitude_ladder=()))
    model.fit(duels)
    support, f = model.support, model.f_support
    pos = {int(p): k for k, p in enumerate(support)}
    grad = -np.linalg.solve(model.kernel(support, support) + 1e-6 * np.eye(len(f)), f)
    for i, j, y, w in zip(duels.i, duels.j, duels.y, duels.w, strict=True):
        d = f[pos[i]] - (0.0 if j == VIRTUAL else f[pos[j]])
        g = w * (y - 1 / (1 + np.exp(-d)))
        grad[pos[i]] += g
        if j != VIRTUAL:
            grad[pos[j]] -= g
    assert np.max(np.abs(grad)) < 1e-4
    # warm start: refitting the same data moves nothing
    model.fit(duels)
    assert np.allclose(model.f_support, f, atol=1e-5)


def test_prior_amplitude_follows_the_users_noise() -> None:
    """The same 60 duels judged by a consistent user and by a noisy one: the evidence picks a
    larger amplitude (utilities further apart) for the consistent user, without being told M."""
    x = _pool(20, seed=4)
    utility = np.linspace(-1.5, 1.5, 20)
    rng = np.random.default_rng(5)
    pairs = [tuple(rng.choice(20, size=2, replace=False)) for _ in range(60)]
    chosen = {}
    for m in (10.0, 0.5):
        user = np.random.default_rng(6)
        votes = Votes()
        strategy = KernelStrategy(x)
        for a, b in pairs:
            p_a = 1 / (1 + np.exp(-m * (utility[a] - utility[b])))
            votes.add(int(a), int(b), "a" if user.random() < p_a else "b")
            strategy.update(votes)
        chosen[m] = strategy.model.scale
        # a restart refits every stored vote at once and searches the whole ladder
        fresh = KernelStrategy(x)
        fresh.update(votes)
        assert fresh.model.scale in (chosen[m] / 2, chosen[m], chosen[m] * 2)
    assert chosen[10.0] >= 4 * chosen[0.5]


def test_pools_of_one_and_two() -> None:
    for name in ("default", "apohf", "random"):
        two = make_strategy(name, _pool(2), np.random.default_rng(0))
        assert sorted(two.choose(np.random.default_rng(0))) == [0, 1]
        one = make_strategy(name, _pool(1), np.random.default_rng(0))
        with pytest.raises(ValueError, match="two prompts"):
            one.choose(np.random.default_rng(0))
    with pytest.raises(ValueError, match="Unknown strategy"):
        make_strategy("nope", _pool(2), np.random.default_rng(0))


def test_five_thousand_candidates_stay_fast() -> None:
    x = _pool(5000, dim=32)
    strategy = KernelStrategy(x)
    votes = Votes()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(20):
        a, b = strategy.choose(rng)
        votes.add(a, b, "a" if a < b else "b")
        strategy.update(votes)
    per_round = (time.perf_counter() - start) / 20
    assert strategy.best() in votes.shown()
    assert per_round < 1.0  # measured ~0.05 s; generous for a loaded CI machine


def test_neural_sigma_matches_explicit_gradients() -> None:
    x = _pool(7, dim=5).astype(np.float32)
    model = NeuralBT(x, np.random.default_rng(0), NeuralBTParams(hidden=4, steps=20))
    duels = Duels()
    duels.add(0, 1, 1.0)
    duels.add(2, 3, 0.0)
    model.fit(duels)
    blocks = model.confidence([(0, 1)])

    def grad(k: int) -> np.ndarray:
        w1, b1, w2, b2, w3, _ = model.params
        z1 = w1 @ x[k] + b1
        h1 = np.maximum(z1, 0)
        z2 = w2 @ h1 + b2
        h2 = np.maximum(z2, 0)
        d2 = w3 * (z2 > 0)
        d1 = (w2.T @ d2) * (z1 > 0)
        return np.concatenate(
            [np.outer(d1, x[k]).ravel(), d1, np.outer(d2, h1).ravel(), d2, h2, [1.0]]
        )

    u = np.concatenate([b.ravel() for b in blocks])
    anchor = 4
    expected = np.array([np.sqrt(np.sum((grad(k) - grad(anchor)) ** 2 / u)) for k in range(7)])
    assert np.allclose(model.sigma(anchor, blocks), expected, rtol=1e-3, atol=1e-5)
    assert model.sigma(anchor, blocks)[anchor] == pytest.approx(0.0, abs=1e-4)
    # U = lambda + the squared gradient difference of the one pair in the history, (0, 1)
    assert np.allclose(u, 0.1 + (grad(0) - grad(1)) ** 2, rtol=1e-3, atol=1e-6)


def test_apohf_trains_from_the_same_init_every_round() -> None:
    x = _pool(12, dim=8)
    strategy = NeuralStrategy(
        x, np.random.default_rng(0), params=NeuralBTParams(steps=50), initial_random=0
    )
    votes = Votes()
    votes.add(0, 1, "a")
    strategy.update(votes)
    first = strategy.utilities()[0].copy()
    strategy.update(votes)
    assert np.allclose(strategy.utilities()[0], first)  # retrained from scratch: same result
    a, b = strategy.choose(np.random.default_rng(0))
    assert a == int(np.argmax(first)) and b != a
    assert strategy.best() in {0, 1}


def test_random_reports_the_winner_of_the_last_duel() -> None:
    strategy = RandomStrategy(_pool(5), np.random.default_rng(0))
    votes = Votes()
    votes.add(0, 1, "a")
    votes.add(2, 3, "b")
    votes.add(1, 4, "skip")
    strategy.update(votes)
    assert strategy.best() == 3
