"""Utility models over prompt embeddings, trained on pairwise verdicts (Bradley-Terry).

Two models share one data shape (``Duels``):

- ``KernelBT`` (the default): a Gaussian-process prior over utilities, f ~ GP(0, k) with
  k = s_e * RBF(embedding distance) + s_i * [same prompt], and the Bradley-Terry likelihood,
  fitted by a Laplace approximation (Newton's method, warm-started from the last fit). It gives a
  posterior mean and covariance, so exploration and the confidence in the winner come from one
  honest uncertainty instead of a gradient heuristic. The amplitude of k is picked by the Laplace
  evidence of the votes: it is the user's noise level in Bradley-Terry units. Only prompts that
  took part in a duel carry latent variables; every other prompt is predicted by conditioning, so
  cost grows with the number of prompts shown, not the pool size.
- ``NeuralBT``: the reference APOHF network (MLP d -> 32 -> 32 -> 1, ReLU), trained from the same
  initialisation with Adam for a fixed number of full-batch steps, with per-prompt parameter
  gradients for the gradient-based upper confidence bound. Written in numpy so that it needs no
  autograd and the per-prompt gradients come out in closed form.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from promptopt.threads import single_thread

# Row kinds in ``Duels``: a real pair, or one prompt against the prior mean (utility 0). The second
# kind carries "both bad": both prompts lose a little against an average prompt.
VIRTUAL = -1


@dataclass
class Duels:
    """Training rows: prompt index i vs j (j == VIRTUAL: against the prior mean), target y = P(i
    beats j) (1, 0 or 0.5 for a tie) and a weight."""

    i: list[int] = field(default_factory=list)
    j: list[int] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    w: list[float] = field(default_factory=list)

    def add(self, i: int, j: int, y: float, w: float = 1.0) -> None:
        self.i.append(int(i))
        self.j.append(int(j))
        self.y.append(float(y))
        self.w.append(float(w))

    def __len__(self) -> int:
        return len(self.i)

    def real_pairs(self) -> Duels:
        out = Duels()
        for i, j, y, w in zip(self.i, self.j, self.y, self.w, strict=True):
            if j != VIRTUAL:
                out.add(i, j, y, w)
        return out


def single_thread_blas() -> contextlib.AbstractContextManager[Any]:
    """The engine's matrices are small: one BLAS thread is several times faster than several
    threads fighting over shared cores (p95 engine time per vote 31 ms vs 223 ms on 2 busy
    cores)."""
    return single_thread("blas")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# ---------------------------------------------------------------------------------------------
# Kernel Bradley-Terry (default)
# ---------------------------------------------------------------------------------------------
def _laplace(
    a: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    k: np.ndarray,
    f: np.ndarray,
    steps: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Posterior mode of the utilities under prior N(0, k) and Bradley-Terry rows (incidence a,
    targets y, weights w), by damped Newton from f. Returns (mode, Hessian of the negative log
    posterior, k^-1, Laplace log evidence)."""
    chol = np.linalg.cholesky(k)
    chol_inv = np.linalg.inv(chol)
    k_inv = chol_inv.T @ chol_inv

    def objective(vec: np.ndarray) -> float:
        d = a @ vec
        # log sigmoid(d) = -log(1 + e^-d), written to stay finite for large |d|
        ll = -(y * np.logaddexp(0.0, -d) + (1 - y) * np.logaddexp(0.0, d))
        return float(w @ ll - 0.5 * vec @ k_inv @ vec)

    current = objective(f)
    for _ in range(steps):
        prob = sigmoid(a @ f)
        grad_ll = a.T @ (w * (y - prob))
        h = k_inv + a.T @ (a * (w * prob * (1 - prob))[:, None])
        step = np.linalg.solve(h, grad_ll - k_inv @ f)
        scale = 1.0
        while True:  # Newton on a concave objective; halving only guards against overshoot
            candidate = f + scale * step
            value = objective(candidate)
            if value >= current - 1e-12 or scale < 1e-3:
                break
            scale *= 0.5
        f, improvement = candidate, value - current
        current = value
        if float(np.max(np.abs(scale * step))) < tol or abs(improvement) < 1e-10:
            break
    prob = sigmoid(a @ f)
    h = k_inv + a.T @ (a * (w * prob * (1 - prob))[:, None])
    # log Z ~ log p(y|f) - f'K^-1 f / 2 - log|I + K W| / 2, and |I + K W| = |K| |K^-1 + W|.
    logdet_k = 2.0 * float(np.sum(np.log(np.diag(chol))))
    logdet_h = float(np.linalg.slogdet(h)[1])
    return f, h, k_inv, current - 0.5 * (logdet_k + logdet_h)


@dataclass
class KernelBTParams:
    # Prior variances of the embedding-smooth part and of the prompt-specific part. Utilities in
    # Bradley-Terry units: a difference of 2 means the better prompt wins ~88% of duels.
    smooth_var: float = 2.0
    own_var: float = 2.0
    # RBF length scale as a multiple of the median distance between the pool's embeddings, so the
    # same setting works for any embedding model and any pool.
    length_scale: float = 0.5
    newton_steps: int = 30
    tol: float = 1e-5
    # The prior amplitude is the user's noise level in disguise: Bradley-Terry fixes the noise at
    # 1, so a consistent user (differences of 10+ units) and a noisy one (differences near 1) only
    # differ in how large the utilities are. It is chosen by the Laplace evidence of the votes,
    # as a factor of the variances above: the first fit with enough votes tries the whole ladder
    # (x2 apart), later fits the current factor and its neighbours, so it follows the evidence a
    # step per vote at three Laplace fits' cost.
    amplitude_ladder: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    # sd of the log-normal hyperprior on the factor, centred at 1 (tuned on the tuning split: 1.0
    # held the factor too close to 1 for noisy users, 3.0 let it wander on few votes).
    amplitude_prior_sd: float = 2.0
    # Below this many votes the evidence says next to nothing about the noise level.
    amplitude_min_votes: int = 4


class KernelBT:
    """GP-preference model. ``fit`` is incremental: it reuses the previous solution as the
    starting point, so one new vote costs a few Newton steps on |shown| variables."""

    def __init__(self, features: np.ndarray, params: KernelBTParams | None = None) -> None:
        self.x = np.ascontiguousarray(features, dtype=np.float64)
        self.n = self.x.shape[0]
        self.p = params or KernelBTParams()
        self.sq_norms = np.einsum("ij,ij->i", self.x, self.x)
        self.length = self._length_scale()
        self.support: np.ndarray = np.zeros(0, dtype=np.int64)  # prompts with latent variables
        self.f_support: np.ndarray = np.zeros(0)
        self.cov_support: np.ndarray = np.zeros((0, 0))
        self._warm: dict[int, float] = {}
        self._pred: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.scale = 1.0  # amplitude factor chosen by the evidence (see KernelBTParams)
        self._searched = False

    def _candidate_scales(self, votes: int) -> list[float]:
        """The whole ladder on the first fit with enough votes (also after a restart, when the
        model is refitted on every stored vote), its neighbours after that."""
        ladder = list(self.p.amplitude_ladder)
        if votes < self.p.amplitude_min_votes or not ladder:
            return [self.scale]
        if not self._searched or self.scale not in ladder:
            self._searched = True
            return ladder
        k = ladder.index(self.scale)
        return ladder[max(0, k - 1) : k + 2]

    def _length_scale(self) -> float:
        if self.n < 2:
            return 1.0
        # A fixed-size sample keeps this O(1) for 5,000-prompt pools; deterministic on purpose.
        take = np.linspace(0, self.n - 1, min(self.n, 200)).astype(int)
        d2 = self._sqdist(self.x[take], take, take)
        upper = d2[np.triu_indices(len(take), k=1)]
        median = float(np.sqrt(np.median(upper))) if upper.size else 1.0
        return max(median, 1e-3) * self.p.length_scale

    def _sqdist(self, xa: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        d2 = self.sq_norms[ia][:, None] + self.sq_norms[ib][None, :] - 2.0 * (xa @ self.x[ib].T)
        return np.maximum(d2, 0.0)

    def _base_kernel(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        d2 = self._sqdist(self.x[ia], ia, ib)
        k = self.p.smooth_var * np.exp(-d2 / (2.0 * self.length**2))
        k += self.p.own_var * (ia[:, None] == ib[None, :])
        return k

    def kernel(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        return self.scale * self._base_kernel(ia, ib)

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, duels: Duels) -> None:
        self._pred = None
        if not len(duels):
            self.support = np.zeros(0, dtype=np.int64)
            self.f_support = np.zeros(0)
            self.cov_support = np.zeros((0, 0))
            return
        ii = np.asarray(duels.i, dtype=np.int64)
        jj = np.asarray(duels.j, dtype=np.int64)
        support = np.unique(np.concatenate([ii, jj[jj != VIRTUAL]]))
        pos = {int(p): k for k, p in enumerate(support)}
        m = len(support)
        rows = len(duels)
        a = np.zeros((rows, m))
        a[np.arange(rows), [pos[int(v)] for v in ii]] = 1.0
        real = jj != VIRTUAL
        a[np.arange(rows)[real], [pos[int(v)] for v in jj[real]]] = -1.0
        y = np.asarray(duels.y)
        w = np.asarray(duels.w)
        base = self._base_kernel(support, support)
        f0 = np.array([self._warm.get(int(p), 0.0) for p in support])
        scales = self._candidate_scales(len(duels))
        best: tuple[float, float, np.ndarray, np.ndarray, np.ndarray] | None = None
        for scale in scales:
            k = scale * base + 1e-6 * np.eye(m)
            # Warm start in units of the prior: utilities scale with sqrt(amplitude).
            start = f0 * math.sqrt(scale / self.scale)
            f, h, k_inv, evidence = _laplace(a, y, w, k, start, self.p.newton_steps, self.p.tol)
            # A log-normal hyperprior on the amplitude keeps a handful of votes from pushing it
            # to an extreme (few votes say little about the user's noise level).
            log_ratio = math.log(scale)
            evidence -= 0.5 * (log_ratio / self.p.amplitude_prior_sd) ** 2
            if best is None or evidence > best[0]:
                best = (evidence, scale, f, h, k_inv)
        assert best is not None
        _, scale, f, h, k_inv = best
        if scale != self.scale:
            ratio = math.sqrt(scale / self.scale)
            self._warm = {p: v * ratio for p, v in self._warm.items()}
            self.scale = scale
        self.support = support
        self.f_support = f
        self.cov_support = np.linalg.inv(h)
        self._k_inv = k_inv
        self._warm.update({int(p): float(v) for p, v in zip(support, f, strict=True)})

    # -- prediction ----------------------------------------------------------------------------
    def _projection(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, variance, B) for every prompt, where B = K_SS^-1 K_S* (reused for covariances)."""
        if self._pred is None:
            all_ids = np.arange(self.n)
            prior_var = np.full(self.n, self.scale * (self.p.smooth_var + self.p.own_var))
            if not len(self.support):
                self._pred = (np.zeros(self.n), prior_var, np.zeros((0, self.n)))
            else:
                k_s_all = self.kernel(self.support, all_ids)
                b = self._k_inv @ k_s_all
                mean = b.T @ self.f_support
                var = (
                    prior_var
                    - np.einsum("ij,ij->j", k_s_all, b)
                    + np.einsum("ij,ij->j", b, self.cov_support @ b)
                )
                self._pred = (mean, np.maximum(var, 1e-9), b)
        return self._pred

    def mean(self) -> np.ndarray:
        return self._projection()[0]

    def variance(self) -> np.ndarray:
        return self._projection()[1]

    def covariance_with(self, index: int) -> np.ndarray:
        """Posterior covariance between every prompt and prompt ``index``."""
        _, _, b = self._projection()
        prior = self.kernel(np.array([index]), np.arange(self.n))[0]
        if not len(self.support):
            return prior
        k_s_i = self.kernel(self.support, np.array([index]))[:, 0]
        return prior - k_s_i @ b + (b[:, index] @ self.cov_support) @ b

    def diff_std(self, index: int) -> np.ndarray:
        """Posterior standard deviation of f(x) - f(x_index) for every prompt x."""
        var = self.variance()
        cov = self.covariance_with(index)
        return np.sqrt(np.maximum(var + var[index] - 2.0 * cov, 1e-12))

    def win_probability(self, i: int, j: int) -> float:
        """P(f_i > f_j) under the posterior."""
        mean = self.mean()
        sd = float(self.diff_std(j)[i])
        return normal_cdf(float(mean[i] - mean[j]) / sd)

    def warm_state(self) -> dict[int, float]:
        return dict(self._warm)

    def set_warm_state(self, values: dict[int, float]) -> None:
        self._warm = {int(k): float(v) for k, v in values.items()}


# ---------------------------------------------------------------------------------------------
# Neural Bradley-Terry (the reference network)
# ---------------------------------------------------------------------------------------------
@dataclass
class NeuralBTParams:
    hidden: int = 32
    lr: float = 1e-3
    steps: int = 1000
    lam: float = 0.1  # regulariser lambda: weight decay lambda / (n + 50), and U's initial value
    nu: float = 1.0


class NeuralBT:
    """MLP d -> h -> h -> 1 with ReLU. ``fit`` trains from ``init_flat`` (the reference restarts
    from the same initialisation every round) or from the current weights when ``warm`` is set."""

    def __init__(
        self, features: np.ndarray, rng: np.random.Generator, params: NeuralBTParams | None = None
    ) -> None:
        # float32 like the reference's torch network, and twice as fast on CPU BLAS
        self.x = np.ascontiguousarray(features, dtype=np.float32)
        self.p = params or NeuralBTParams()
        d, h = self.x.shape[1], self.p.hidden

        def layer(fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
            # The reference draws every weight and bias from N(0, 1) (torch.nn.init.normal_),
            # not PyTorch's default uniform(+-1/sqrt(fan_in)).
            return rng.standard_normal((fan_out, fan_in)), rng.standard_normal(fan_out)

        w1, b1 = layer(d, h)
        w2, b2 = layer(h, h)
        w3, b3 = layer(h, 1)
        blocks = [p.astype(np.float32) for p in (w1, b1, w2, b2, w3[0], b3)]
        self._shapes = [b.shape for b in blocks]
        # One flat parameter vector (blocks are views into it), so Adam is five vector ops a step.
        self.init_flat = np.concatenate([b.ravel() for b in blocks])
        self.flat = self.init_flat.copy()

    def _views(self, flat: np.ndarray) -> list[np.ndarray]:
        out, start = [], 0
        for shape in self._shapes:
            size = int(np.prod(shape))
            out.append(flat[start : start + size].reshape(shape))
            start += size
        return out

    @property
    def params(self) -> list[np.ndarray]:
        return self._views(self.flat)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        w1, b1, w2, b2, w3, b3 = self.params
        z1 = x @ w1.T + b1
        h1 = np.maximum(z1, 0.0)
        z2 = h1 @ w2.T + b2
        h2 = np.maximum(z2, 0.0)
        return z1, h1, z2, h2, h2 @ w3 + b3

    def predict(self) -> np.ndarray:
        return self._forward(self.x)[-1]

    def fit(self, duels: Duels, *, warm: bool = False, steps: int | None = None) -> None:
        pairs = duels.real_pairs()
        if not warm:
            self.flat = self.init_flat.copy()
        if not len(pairs):
            return
        used, inverse = np.unique(np.array(pairs.i + pairs.j), return_inverse=True)
        n = len(pairs)
        # Signed incidence matrix: diff = C @ out and dLoss/dout = C.T @ dLoss/ddiff.
        incidence = np.zeros((n, len(used)), dtype=np.float32)
        incidence[np.arange(n), inverse[:n]] += 1.0
        incidence[np.arange(n), inverse[n:]] -= 1.0
        y = np.asarray(pairs.y, dtype=np.float32)
        wt = np.asarray(pairs.w, dtype=np.float32)
        x = self.x[used]
        decay = self.p.lam / (n + 50)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        m1 = np.zeros_like(self.flat)
        m2 = np.zeros_like(self.flat)
        lr = np.float32(self.p.lr)
        for t in range(1, (steps or self.p.steps) + 1):
            _, _, w2, _, w3, _ = self.params
            z1, h1, z2, h2, out = self._forward(x)
            diff = incidence @ out
            # d(mean weighted BCE)/d(diff) = w * (sigmoid(diff) - y) / n
            g_diff = wt * (sigmoid(diff) - y) / n
            g_out = incidence.T @ g_diff
            g_w3 = g_out @ h2
            g_b3 = np.array([g_out.sum()], dtype=np.float32)
            d2 = (g_out[:, None] * w3[None, :]) * (z2 > 0)
            g_w2 = d2.T @ h1
            g_b2 = d2.sum(0)
            d1 = (d2 @ w2) * (z1 > 0)
            g_w1 = d1.T @ x
            g_b1 = d1.sum(0)
            g = np.concatenate([g_w1.ravel(), g_b1, g_w2.ravel(), g_b2, g_w3, g_b3])
            g += np.float32(decay) * self.flat  # Adam's weight_decay: an L2 term in the gradient
            m1 *= beta1
            m1 += (1 - beta1) * g
            m2 *= beta2
            m2 += (1 - beta2) * g * g
            step = lr / (1 - beta1**t)
            denom = np.sqrt(m2 / (1 - beta2**t)) + eps
            self.flat = self.flat - np.float32(step) * m1 / denom

    def _grad_parts(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-prompt pieces of df/dtheta: W1 block = d1 (x) x, W2 block = d2 (x) h1, w3 = h2."""
        _, _, w2, _, w3, _ = self.params
        x = self.x[idx]
        z1, h1, z2, h2, _ = self._forward(x)
        d2 = w3[None, :] * (z2 > 0)
        d1 = (d2 @ w2) * (z1 > 0)
        return x, h1, h2, d1, d2

    def confidence(self, pairs: list[tuple[int, int]]) -> list[np.ndarray]:
        """The diagonal of U = lambda I + sum over every pair shown so far of (g(a) - g(b))^2,
        one array per parameter block, with the gradients of the *current* network: the
        reference recomputes it from the whole history at every selection."""
        u = [np.full(shape, self.p.lam, dtype=np.float64) for shape in self._shapes]
        if not pairs:
            return u
        a, b = (np.array(side, dtype=np.int64) for side in zip(*pairs, strict=True))
        xa, h1a, h2a, d1a, d2a = self._grad_parts(a)
        xb, h1b, h2b, d1b, d2b = self._grad_parts(b)

        def outer_sq(pa: np.ndarray, qa: np.ndarray, pb: np.ndarray, qb: np.ndarray) -> np.ndarray:
            # sum over pairs of (pa (x) qa - pb (x) qb)^2, without cancellation
            diff = pa[:, :, None] * qa[:, None, :] - pb[:, :, None] * qb[:, None, :]
            return np.einsum("kij,kij->ij", diff, diff, dtype=np.float64)

        u[0] += outer_sq(d1a, xa, d1b, xb)
        u[1] += ((d1a - d1b) ** 2).sum(0)
        u[2] += outer_sq(d2a, h1a, d2b, h1b)
        u[3] += ((d2a - d2b) ** 2).sum(0)
        u[4] += ((h2a - h2b) ** 2).sum(0)
        # u[5], the output bias: its gradient is 1 for every prompt, so a difference adds 0.
        return u

    def sigma(self, anchor: int, u: list[np.ndarray]) -> np.ndarray:
        """sqrt(nu * sum_j (g_j(x) - g_j(anchor))^2 / U_j) for every prompt, U from
        ``confidence``, without building the (n_prompts x n_params) gradient matrix: each
        outer-product block expands into matrix products, which keeps 5,000-prompt pools cheap."""
        xs, h1, h2, d1, d2 = self._grad_parts(np.arange(len(self.x)))
        inv = [(1.0 / block).astype(np.float32) for block in u]

        def outer_block(p: np.ndarray, q: np.ndarray, v: np.ndarray) -> np.ndarray:
            p0, q0 = p[anchor], q[anchor]
            t1 = np.einsum("nj,nj->n", (p * p) @ v, q * q)
            t2 = np.einsum("nj,nj->n", (p * p0) @ v, q * q0)
            t3 = float((p0 * p0) @ v @ (q0 * q0))
            return t1 - 2 * t2 + t3

        def vec_block(p: np.ndarray, v: np.ndarray) -> np.ndarray:
            return ((p - p[anchor]) ** 2) @ v

        total = (
            outer_block(d1, xs, inv[0])
            + vec_block(d1, inv[1])
            + outer_block(d2, h1, inv[2])
            + vec_block(d2, inv[3])
            + vec_block(h2, inv[4])
        )  # the output bias has gradient 1 for every prompt, so its difference is 0
        return np.sqrt(np.maximum(self.p.nu * total, 0.0))
