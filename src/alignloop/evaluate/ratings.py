"""Statistics of pairwise judgements, as pure functions (SPEC.md §6).

Outcomes are per comparison: 1.0 where model a won, 0.0 where b won, 0.5 for a tie (every judge
of `judges.py` returns these). Ties count half everywhere.

**Win rate with an interval** (`win_rate_interval`):

- `wilson` (the default): the Wilson score interval of the mean outcome over n comparisons,
  ties entering as half a success. Its variance p(1-p)/n is that of n wins or losses; ties have
  less variance than that, so with ties the interval is conservative (never too narrow).
- `bootstrap`: percentiles of the mean outcome over `rounds` resamples (with replacement) of
  the comparisons, seeded; ties keep their real variance.

**Bradley-Terry ratings** (`bradley_terry`): P(i beats j) = p_i / (p_i + p_j), fitted by
maximum likelihood (Newton's method on the log-strengths, each step halved until the concave
log-likelihood does not fall), a tie counting as half a win for each side. The fit is
regularised by `prior_games` virtual tied games of every model against a fixed reference
player: that keeps ratings finite when a model won (or lost) every game, as happens in small
samples; 0 gives the plain MLE. Strengths map to an Elo-like scale,
rating = scale * log_base(p) (400 * log10 by default: a 400-point gap is 10:1 odds), shifted so
that the `anchor` model sits at `anchor_rating` (without an anchor, the mean rating does).

**Intervals of ratings** (`bootstrap_ratings`): percentiles of the ratings refitted on
`rounds` resamples of the battles (100 by default, as Chatbot Arena reports), seeded; the point
estimate is the fit on all battles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

IntervalMethod = Literal["wilson", "bootstrap"]
Battle = tuple[str, str, float]
"""(model a, model b, outcome): 1.0 a won, 0.0 b won, 0.5 a tie."""


@dataclass(frozen=True)
class WinRate:
    """Share of comparisons a won (ties half) with its confidence interval [low, high]."""

    rate: float
    low: float
    high: float
    n: int
    wins: int
    losses: int
    ties: int
    method: str
    confidence: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass(frozen=True)
class Rating:
    rating: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _checked_outcomes(outcomes: Iterable[float]) -> np.ndarray:
    values = np.asarray(list(outcomes), dtype=float)
    if values.size == 0:
        raise ValueError("no comparisons to compute a win rate from")
    if ((values < 0) | (values > 1)).any() or np.isnan(values).any():
        raise ValueError("outcomes must lie in [0, 1] (1: a better, 0: b better, 0.5: tie)")
    return values


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes / n` (successes may be fractional:
    a tie is half a success)."""
    if n <= 0:
        raise ValueError("n must be positive")
    z, p = _z(confidence), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    outcomes: Sequence[float], confidence: float = 0.95, rounds: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the mean outcome over `rounds` seeded resamples."""
    values = _checked_outcomes(outcomes)
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(rounds, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    rounds: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of a - b over paired items (each value in [0, 1], e.g. one prompt's verdict under
    two models) with a bootstrap percentile interval that resamples the items: the one-group
    case of `stratified_paired_difference`."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in number: {len(a)} and {len(b)}")
    return stratified_paired_difference([(a, b)], confidence, rounds, seed)


def stratified_paired_difference(
    groups: Sequence[tuple[Sequence[float], Sequence[float]]],
    confidence: float = 0.95,
    rounds: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """`paired_difference` pooled over groups of paired items (e.g. each seed's prompts under
    two models): the mean of a - b over every item, with a bootstrap percentile interval whose
    resamples draw each group's items from that group alone, so every group keeps its size."""
    if not groups:
        raise ValueError("no groups of paired values")
    differences = []
    for number, (a, b) in enumerate(groups):
        if len(a) != len(b) or not len(a):
            raise ValueError(f"group {number}: paired values differ in number or are none: "
                             f"{len(a)} and {len(b)}")  # fmt: skip
        differences.append(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    _z(confidence)
    rng = np.random.default_rng(seed)
    total = sum(d.size for d in differences)
    sums = sum(d[rng.integers(0, d.size, size=(rounds, d.size))].sum(axis=1) for d in differences)
    tail = (1 - confidence) / 2
    means = sums / total
    return {
        "difference": float(sum(d.sum() for d in differences) / total),
        "low": float(np.quantile(means, tail)),
        "high": float(np.quantile(means, 1 - tail)),
    }


def win_rate_interval(
    outcomes: Sequence[float],
    method: IntervalMethod = "wilson",
    confidence: float = 0.95,
    rounds: int = 1000,
    seed: int = 0,
) -> WinRate:
    """The win rate of a over b (ties half) with a `method` interval (see the module doc)."""
    values = _checked_outcomes(outcomes)
    _z(confidence)
    if method == "wilson":
        low, high = wilson_interval(float(values.sum()), values.size, confidence)
    elif method == "bootstrap":
        low, high = bootstrap_interval(values, confidence, rounds, seed)
    else:
        raise ValueError(f"unknown interval method {method!r}; use 'wilson' or 'bootstrap'")
    return WinRate(
        rate=float(values.mean()),
        low=low,
        high=high,
        n=int(values.size),
        wins=int((values == 1).sum()),
        losses=int((values == 0).sum()),
        ties=int(((values > 0) & (values < 1)).sum()),
        method=method,
        confidence=confidence,
    )


# --- Bradley-Terry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatingScale:
    """How strengths map to ratings and how the fit is regularised (see the module doc)."""

    scale: float = 400.0
    base: float = 10.0
    anchor: str | None = None
    anchor_rating: float = 1000.0
    prior_games: float = 1.0
    max_iter: int = 100
    tol: float = 1e-9


def battles_from_outcomes(model_a: str, model_b: str, outcomes: Iterable[float]) -> list[Battle]:
    """One battle per outcome of `model_a` against `model_b`."""
    return [(model_a, model_b, float(o)) for o in outcomes]


def _encode(battles: Sequence[Battle], models: list[str]) -> tuple[np.ndarray, ...]:
    """Battles as index arrays (a, b) and an outcome array, checked."""
    index = {m: k for k, m in enumerate(models)}
    a = np.array([index[x] for x, _, _ in battles], dtype=int)
    b = np.array([index[y] for _, y, _ in battles], dtype=int)
    outcome = np.array([o for _, _, o in battles], dtype=float)
    if (a == b).any():
        raise ValueError(f"a battle of {models[a[a == b][0]]!r} against itself")
    if ((outcome < 0) | (outcome > 1)).any() or np.isnan(outcome).any():
        raise ValueError("outcomes must lie in [0, 1] (1: a better, 0: b better, 0.5: tie)")
    return a, b, outcome


def _score_matrix(a: np.ndarray, b: np.ndarray, outcome: np.ndarray, size: int) -> np.ndarray:
    """wins[i, j]: games i won against j, ties counting half to each side."""
    wins = np.zeros((size, size))
    np.add.at(wins, (a, b), outcome)
    np.add.at(wins, (b, a), 1 - outcome)
    return wins


def _log_likelihood(theta: np.ndarray, wins: np.ndarray, prior_games: float) -> float:
    """Bradley-Terry log-likelihood of log-strengths `theta`, with `prior_games` tied games of
    each model against a reference player of log-strength 0."""
    log_pair = np.logaddexp(theta[:, None], theta[None, :])
    fit = float((wins * (theta[:, None] - log_pair)).sum())
    prior = prior_games * float((theta / 2 - np.logaddexp(theta, 0)).sum())
    return fit + prior


def _newton_step(theta: np.ndarray, wins: np.ndarray, prior_games: float) -> np.ndarray:
    games = wins + wins.T
    p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))  # p[i, j] = P(i beats j)
    q = 1 / (1 + np.exp(-theta))  # P(i beats the reference player)
    gradient = wins.sum(1) - (games * p).sum(1) + prior_games * (0.5 - q)
    curvature = games * p * (1 - p)
    hessian = curvature - np.diag(curvature.sum(1) + prior_games * q * (1 - q))
    if prior_games == 0:  # the scale is free: pin the first model at 0
        step = np.zeros_like(theta)
        step[1:] = np.linalg.lstsq(hessian[1:, 1:], gradient[1:], rcond=None)[0]
        return step
    return np.linalg.lstsq(hessian, gradient, rcond=None)[0]


def _fit_log_strengths(
    wins: np.ndarray, prior_games: float, max_iter: int, tol: float
) -> np.ndarray:
    """Log-strengths maximising the (regularised) likelihood: Newton steps, each halved until
    the likelihood does not fall (the likelihood is concave)."""
    if prior_games == 0 and (wins.sum(1) == 0).any():
        raise ValueError(
            "a model without a win (nor a tie) has no finite maximum-likelihood rating; "
            "use prior_games > 0"
        )
    theta = np.zeros(len(wins))
    current = _log_likelihood(theta, wins, prior_games)
    for _ in range(max_iter):
        step, size = _newton_step(theta, wins, prior_games), 1.0
        while size > tol:
            candidate = theta - size * step
            value = _log_likelihood(candidate, wins, prior_games)
            if value >= current - tol:
                break
            size /= 2
        moved = float(np.abs(candidate - theta).max())
        theta, current = candidate, value
        if moved < tol:
            break
    return theta


def _ratings(log_strength: np.ndarray, names: list[str], scale: RatingScale) -> dict[str, float]:
    ratings = scale.scale * log_strength / math.log(scale.base)
    reference = ratings[names.index(scale.anchor)] if scale.anchor else ratings.mean()
    ratings = ratings - reference + scale.anchor_rating
    return {name: float(r) for name, r in zip(names, ratings, strict=True)}


def _rated_models(battles: Sequence[Battle], models: Sequence[str], scale: RatingScale) -> list:
    names = sorted({m for a, b, _ in battles for m in (a, b)} | set(models))
    if len(names) < 2:
        raise ValueError("ratings need battles between at least two models")
    if scale.anchor is not None and scale.anchor not in names:
        raise ValueError(f"anchor {scale.anchor!r} is not among the rated models")
    return names


def bradley_terry(
    battles: Sequence[Battle], scale: RatingScale | None = None, models: Sequence[str] = ()
) -> dict[str, float]:
    """Bradley-Terry ratings of every model in `battles` (and in `models`), on `scale`."""
    scale = scale or RatingScale()
    names = _rated_models(battles, models, scale)
    wins = _score_matrix(*_encode(battles, names), len(names))
    log_strength = _fit_log_strengths(wins, scale.prior_games, scale.max_iter, scale.tol)
    return _ratings(log_strength, names, scale)


def bootstrap_ratings(
    battles: Sequence[Battle],
    scale: RatingScale | None = None,
    rounds: int = 100,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Rating]:
    """Ratings on all battles with percentile intervals over `rounds` seeded resamples (each
    resample draws len(battles) battles with replacement and refits)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    _z(confidence)
    scale = scale or RatingScale()
    names = _rated_models(battles, (), scale)
    point = bradley_terry(battles, scale)
    a, b, outcome = _encode(battles, names)
    rng = np.random.default_rng(seed)
    samples = np.zeros((rounds, len(names)))
    for k in range(rounds):
        pick = rng.integers(0, len(battles), size=len(battles))
        wins = _score_matrix(a[pick], b[pick], outcome[pick], len(names))
        fitted = _fit_log_strengths(wins, scale.prior_games, scale.max_iter, scale.tol)
        rated = _ratings(fitted, names, scale)
        samples[k] = [rated[name] for name in names]
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, tail, axis=0), np.quantile(samples, 1 - tail, axis=0)
    return {
        name: Rating(point[name], float(lo), float(hi))
        for name, lo, hi in zip(names, low, high, strict=True)
    }


def expected_win_rate(rating_a: float, rating_b: float, scale: RatingScale | None = None) -> float:
    """P(a beats b) implied by two ratings on `scale`."""
    scale = scale or RatingScale()
    return 1 / (1 + scale.base ** ((rating_b - rating_a) / scale.scale))
