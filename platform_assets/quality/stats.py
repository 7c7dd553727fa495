"""Baselines for the anomaly rules: a seasonal z-score for volumes, a robust one for rates.

Volume (rows per day). Counts are first variance-stabilised (Anscombe: `a(v) = 2 sqrt(v +
3/8)`, whose noise is 1 for Poisson counts at any level), then modelled as `a(v) = weekday
effect + trend + noise`, fitted by least squares on the training window (the days before the
judged day). The noise sigma is the residual standard error with its degrees of freedom
(the naive standard deviation of a 7-parameter fit on 14 points is half the truth), never
below 1 (counting noise: a log model made a day with 7 sign-ups instead of 19 look like
z = -4). The judged day's z-score uses the prediction variance of the fit.

Earlier incidents in the window (an outage two weeks ago) must not widen the range for the
next four weeks: the volume rule leaves out the days it already judged anomalous (history),
and for what it never judged, a robust fit (iteratively reweighted, Tukey's biweight) flags
training days far off it (TRIM_SIGMAS robust sigmas, at most a quarter of them); they are
dropped once and the model refitted.

With day-of-week seasonality the window is `seasonal_training_days` (28: four of each
weekday). Two of each, as 14 days give, make the weekday effects overfit: about one false
alert a month per table in a Monte Carlo of the synthetic shop, against about 0.2 with 28.
Without two points per weekday the weekday effects are dropped, then the trend.

A day is anomalous when it is outside `a^-1(prediction +- sensitivity x sigma)` and also
differs from the prediction by more than `min_relative_change` (Elementary's "ignore small
changes"): tiny but very regular series otherwise alert on noise.

Rates (null share, duplicate share) are judged one-sided against the median and the
median absolute deviation of the training days: `upper = median + max(sensitivity x 1.4826 x
MAD, min_abs_change)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

SIGMA_FLOOR = 1.0  # Poisson noise on the Anscombe scale


def anscombe(value: float) -> float:
    return 2.0 * math.sqrt(max(value, 0.0) + 0.375)


def inverse_anscombe(value: float) -> float:
    return max(0.0, (max(value, 0.0) / 2.0) ** 2 - 0.375)


@dataclass(frozen=True)
class VolumeBaseline:
    predicted: float
    low: float
    high: float
    z: float
    sigma: float  # on the Anscombe scale
    points: int
    seasonal: bool
    trend: bool
    dropped_outliers: int

    def is_anomalous(self, value: float) -> bool:
        return value < self.low or value > self.high


@dataclass(frozen=True)
class RateBaseline:
    median: float
    sigma: float
    upper: float
    points: int


def daily_series(values: Mapping[date, float], start: date, end: date) -> list[tuple[date, float]]:
    """Values per day from the first observed day (>= start) through end, missing days as 0."""
    observed = [d for d in values if start <= d <= end]
    if not observed:
        return []
    first = min(observed)
    days = (end - first).days + 1
    return [
        (first + timedelta(n), float(values.get(first + timedelta(n), 0.0))) for n in range(days)
    ]


def _design(days: Sequence[date], origin: date, seasonal: bool, trend: bool) -> np.ndarray:
    columns: list[np.ndarray] = []
    weekdays = np.array([d.weekday() for d in days])
    if seasonal:
        columns += [(weekdays == w).astype(float) for w in range(7)]
    else:
        columns.append(np.ones(len(days)))
    if trend:
        columns.append(np.array([(d - origin).days for d in days], dtype=float))
    return np.column_stack(columns)


def _fit(
    days: Sequence[date],
    y: np.ndarray,
    origin: date,
    seasonal: bool,
    trend: bool,
    sigma_floor: float = SIGMA_FLOOR,
) -> tuple[np.ndarray, float, np.ndarray] | None:
    x = _design(days, origin, seasonal, trend)
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    dof = len(y) - rank
    if dof < 3:
        return None
    residuals = y - x @ beta
    sigma = max(math.sqrt(float(residuals @ residuals) / dof), sigma_floor)
    return beta, sigma, residuals


TRIM_SIGMAS = (
    5.5  # MAD of a 7-8 parameter fit on 28 points runs low; trimming a normal day shrinks sigma
)


def _robust_outliers(
    x: np.ndarray,
    y: np.ndarray,
    limit: int,
    iterations: int = 20,
    sigma_floor: float = SIGMA_FLOOR,
) -> np.ndarray:
    """Training points far off a robust fit: iteratively reweighted least squares (Tukey's
    biweight), residuals studentized by their leverage, scaled by their median absolute
    deviation; beyond TRIM_SIGMAS, at most `limit` of them (the largest)."""
    weights = np.ones(len(y))
    residuals = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    for _ in range(iterations):
        root = np.sqrt(weights)
        beta = np.linalg.lstsq(x * root[:, None], y * root, rcond=None)[0]
        residuals = y - x @ beta
        scale = max(1.4826 * float(np.median(np.abs(residuals))), sigma_floor)
        u = residuals / (4.685 * scale)
        updated = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
        if np.allclose(updated, weights, atol=1e-4):
            break
        weights = updated
    leverage = np.einsum("ij,jk,ik->i", x, np.linalg.pinv(x.T @ x), x)
    studentized = residuals / np.sqrt(np.clip(1 - leverage, 0.05, 1))
    scale = max(1.4826 * float(np.median(np.abs(studentized))), sigma_floor)
    far = np.abs(studentized) > TRIM_SIGMAS * scale
    if far.sum() > limit:
        keep_largest = np.argsort(-np.abs(studentized))[:limit]
        far = np.zeros(len(y), dtype=bool)
        far[keep_largest] = True
    return far


@dataclass(frozen=True)
class Scale:
    """Where a series is modelled: values are mapped with `forward`, fitted with additive
    noise of at least `sigma_floor`, and mapped back with `inverse`."""

    forward: Callable[[float], float]
    inverse: Callable[[float], float]
    sigma_floor: float
    name: str


ANSCOMBE = Scale(anscombe, inverse_anscombe, SIGMA_FLOOR, "anscombe")


def asinh_scale(training: Sequence[float]) -> Scale:
    """A log-like scale for money and other extensive values: `asinh(v / unit)` is
    log(2v/unit) for values well above `unit` (a tenth of the typical size), and stays
    defined for zeros and negatives. Noise below 3% of the value is not noise worth a
    page (sigma floor)."""
    typical = float(np.median(np.abs(np.asarray(training, dtype=float)))) if training else 0.0
    unit = typical / 10 if typical > 0 else 1.0
    return Scale(lambda v: math.asinh(v / unit), lambda y: math.sinh(y) * unit, 0.03, "asinh")


def volume_baseline(
    training: Sequence[tuple[date, float]],
    day: date,
    value: float,
    *,
    sensitivity: float,
    min_points: int,
    seasonal: bool,
    min_relative_change: float,
) -> VolumeBaseline | None:
    """The expected range of `day`'s count, or None without enough training points."""
    return seasonal_baseline(
        training,
        day,
        value,
        scale=ANSCOMBE,
        sensitivity=sensitivity,
        min_points=min_points,
        seasonal=seasonal,
        min_relative_change=min_relative_change,
    )


def _weekdays_covered(points: Sequence[tuple[date, float]]) -> bool:
    return all(sum(1 for d, _ in points if d.weekday() == w) >= 2 for w in range(7))


def seasonal_baseline(
    training: Sequence[tuple[date, float]],
    day: date,
    value: float,
    *,
    scale: Scale,
    sensitivity: float,
    min_points: int,
    seasonal: bool,
    min_relative_change: float,
) -> VolumeBaseline | None:
    """The expected range of `day`'s value on `scale` (weekday effects + trend + noise),
    or None without enough training points."""
    points = [(d, v) for d, v in training if d < day]
    if len(points) < min_points:
        return None
    use_seasonal = seasonal and len(points) >= 14 and _weekdays_covered(points)
    use_trend = len(points) >= 10
    origin = day
    dropped = 0
    fitted = None
    while fitted is None:
        days = [d for d, _ in points]
        y = np.array([scale.forward(v) for _, v in points])
        fitted = _fit(days, y, origin, use_seasonal, use_trend, scale.sigma_floor)
        if fitted is None:
            if use_trend:
                use_trend = False
            elif use_seasonal:
                use_seasonal = False
            else:
                return None
            continue
        if dropped:
            break
        # earlier incidents: points far off a robust fit are dropped once, then refit
        outliers = _robust_outliers(
            _design(days, origin, use_seasonal, use_trend),
            y,
            limit=len(points) // 4,
            sigma_floor=scale.sigma_floor,
        )
        if outliers.any():
            dropped = int(outliers.sum())
            points = [p for p, out in zip(points, outliers, strict=True) if not out]
            use_seasonal = use_seasonal and _weekdays_covered(points)
            fitted = None
    beta, sigma, _ = fitted
    days = [d for d, _ in points]
    x = _design(days, origin, use_seasonal, use_trend)
    x0 = _design([day], origin, use_seasonal, use_trend)[0]
    leverage = float(x0 @ np.linalg.pinv(x.T @ x) @ x0)
    spread = sigma * math.sqrt(1 + leverage)
    center = float(x0 @ beta)
    z = (scale.forward(value) - center) / spread
    predicted = scale.inverse(center)
    margin = abs(predicted) * min_relative_change
    low = min(scale.inverse(center - sensitivity * spread), predicted - margin)
    high = max(scale.inverse(center + sensitivity * spread), predicted + margin)
    return VolumeBaseline(
        predicted=predicted,
        low=low,
        high=high,
        z=z,
        sigma=sigma,
        points=len(points),
        seasonal=use_seasonal,
        trend=use_trend,
        dropped_outliers=dropped,
    )


@dataclass(frozen=True)
class Band:
    """A value against the robust spread of its training values (no seasonality)."""

    predicted: float
    low: float
    high: float
    z: float
    points: int

    def is_anomalous(self, value: float) -> bool:
        return value < self.low or value > self.high


def robust_band(
    training: Sequence[float],
    value: float,
    *,
    scale: Scale,
    sensitivity: float,
    min_points: int,
    min_relative_change: float,
    extreme_margin: float = 0.0,
) -> Band | None:
    """Median +- sensitivity x 1.4826 MAD on `scale`, never narrower than
    +-min_relative_change of the median, nor than the training range widened by
    `extreme_margin` (on the scale: 1.0 = twice the largest): a value like one seen in
    the last weeks is not an anomaly, and a day's extreme (min, max) only alerts when it
    leaves everything seen lately by a wide margin."""
    values = [float(v) for v in training if v is not None and not math.isnan(float(v))]
    if len(values) < min_points:
        return None
    y = np.array([scale.forward(v) for v in values])
    center = float(np.median(y))
    sigma = max(1.4826 * float(np.median(np.abs(y - center))), scale.sigma_floor)
    predicted = scale.inverse(center)
    margin = abs(predicted) * min_relative_change
    low = min(scale.inverse(center - sensitivity * sigma), predicted - margin)
    high = max(scale.inverse(center + sensitivity * sigma), predicted + margin)
    widen = math.log1p(extreme_margin)
    low = min(low, scale.inverse(float(y.min()) - widen))
    high = max(high, scale.inverse(float(y.max()) + widen))
    z = (scale.forward(value) - center) / sigma
    return Band(predicted=predicted, low=low, high=high, z=z, points=len(values))


@dataclass(frozen=True)
class ShareTest:
    """A share (a rate, a value's share of a column) against its pooled training share."""

    expected: float
    spread: float
    z: float
    points: int

    @property
    def upper(self) -> float:
        return self.expected + self.spread

    def deviates(
        self, share: float, sensitivity: float, min_abs: float, min_rel: float = 0.0
    ) -> bool:
        change = abs(share - self.expected)
        return abs(self.z) > sensitivity and change > min_abs and change > min_rel * self.expected


def spread(values: Sequence[float]) -> float:
    """How much daily values vary: the larger of the robust sigma (1.4826 MAD) and the
    standard deviation without the single most extreme day. The MAD of 28 days alone is
    noisy and often low (a day 4.5 MADs off happens every few weeks with a few hundred
    tests a day); dropping one extreme day keeps an earlier incident from inflating it."""
    data = np.asarray(values, dtype=float)
    if len(data) < 3:
        return 0.0
    center = float(np.median(data))
    mad = 1.4826 * float(np.median(np.abs(data - center)))
    trimmed = np.delete(data, int(np.argmax(np.abs(data - center))))
    return max(mad, float(np.std(trimmed, ddof=1)))


def share_test(
    training: Sequence[tuple[int, int]], hits: int, rows: int, *, min_points: int
) -> ShareTest | None:
    """Today's `hits / rows` against the training days' `(hits, rows)`.

    Expected share: pooled over the training days, with half a hit of prior so that a
    never-seen value has a small but non-zero rate. Spread: the binomial noise of today's
    row count plus the day-to-day spread of the training shares (robust), which is larger
    than binomial when rows come in clusters (a session brings many events of one kind).
    """
    days = [(h, n) for h, n in training if n > 0]
    if len(days) < min_points or rows <= 0:
        return None
    pooled = (sum(h for h, _ in days) + 0.5) / (sum(n for _, n in days) + 1)
    overdispersion = spread([h / n for h, n in days])
    binomial = pooled * (1 - pooled) / rows
    sigma = math.sqrt(binomial + overdispersion**2)
    z = (hits / rows - pooled) / sigma if sigma > 0 else 0.0
    return ShareTest(expected=pooled, spread=sigma, z=z, points=len(days))


def rate_baseline(
    training: Sequence[float], *, sensitivity: float, min_points: int, min_abs_change: float
) -> RateBaseline | None:
    values = np.array([v for v in training if v is not None and not math.isnan(v)], dtype=float)
    if len(values) < min_points:
        return None
    median = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - median)))
    upper = min(1.0, median + max(sensitivity * sigma, min_abs_change))
    return RateBaseline(median=median, sigma=sigma, upper=upper, points=len(values))


def poisson_tail(count: int, mean: float) -> float:
    """P(X >= count) for X ~ Poisson(mean)."""
    if count <= 0:
        return 1.0
    term = math.exp(-mean)
    below = term
    for k in range(1, count):
        term *= mean / k
        below += term
    return max(0.0, 1.0 - below)


def ratio_band(
    training: Sequence[tuple[float, float]],
    units: float,
    *,
    sensitivity: float,
    min_points: int,
    min_abs_change: float,
) -> Band | None:
    """Where two sources' daily ratio usually is, for a day with `units` (orders).

    `training`: (ratio, units) of the days before. On clean days the ratio sits at its usual
    level (the median) but for a few units one side has not got yet (an event sent late),
    which come one at a time: a Poisson count of "missing" units per day, at a rate per unit
    learnt from the training days: the units they missed (the distance from the usual level
    x units) plus three, over their units. Three is the rule of three: after no miss in U
    units, the rate is below 3/U with 95% confidence; weeks with almost no late event must
    not make one late event in fifty an incident. The day is out of range when it misses
    more units than that count reaches with the probability of `sensitivity` normal sigmas;
    never closer than `min_abs_change`.
    """
    days = [(r, n) for r, n in training if n > 0]
    if len(days) < min_points or units <= 0:
        return None
    center = float(np.median([r for r, _ in days]))
    misses = sum(abs(r - center) * n for r, n in days)
    rate = (misses + 3) / sum(n for _, n in days)
    expected = rate * units
    alpha = 0.5 * math.erfc(sensitivity / math.sqrt(2))
    count = 1
    while poisson_tail(count, expected) >= alpha:
        count += 1
    half = max((count - 0.5) / units, min_abs_change)
    # no z-score here: the band comes from the Poisson tail
    return Band(predicted=center, low=center - half, high=center + half, z=0.0, points=len(days))
