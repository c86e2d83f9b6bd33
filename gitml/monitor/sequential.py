"""Alarms over a long run of windows without a flood of false ones.

Checking every window separately at a fixed level multiplies false alarms (1,440 checks a
day at 1% is 14 a day). Instead each watched figure becomes one standardised z-score per
window, against a level *learned from the windows before it*, and a one-sided CUSUM
accumulates the evidence:

    S_t = max(0, S_{t−1} + z_t − k),   alarm when S_t > h,   then S restarts at 0.

With z in control at most standard normal, k = 1 and h = 4.5 give an in-control average
run length of ≈ 40,000 windows per figure (Siegmund's approximation), so five figures
checked once a minute raise ≈ 0.18 false alarms a day; a sustained move of 2σ in the
window statistic alarms in ≈ 5 windows. benchmarks/bench_monitor.py measures both on
simulated clean and shifted traffic.

The figures and how their z-score is learned:

* **drift**: z of the window's smallest Holm-adjusted p-value (see :mod:`stats`); its
  in-control law is known (p-values are uniform under no drift), nothing to learn;
* **errors** (server errors, status >= ``error_status``, default 500) and
  **client_errors** (the requests refused with a 4xx: malformed, wrong columns or types,
  rows the model refuses): the window's count of failed requests against the pooled rate
  of earlier in-control windows (with a weak prior of 1% over 100 requests, so a brand-new
  deployment that fails at once is still caught), as the z of its exact binomial upper-tail
  (mid-)p-value: failures are rare, and the normal approximation's z has so heavy a right
  tail that a steady 1% of failed requests raised ~5 false alarms a day at 100 requests a
  minute (benchmarks/bench_monitor.py, ``--bg-errors``), none with the exact tail;
* **latency**: the window's mean log latency against the level and spread of earlier
  windows, learned robustly by the anomaly gate's estimator
  (:func:`gitml.checks.anomaly.robust_level_spread`); one window's z is capped at
  k + 0.6 h, so a single spike on a busy machine cannot alarm, a lasting slowdown does
  in two windows;
* **metric** (labels joined from feedback): binomial z of the accuracy drop overall and in
  every sensitive group against the pooled accuracy of earlier windows (prior: the
  deployed version's accuracy on its reference data); the most significant of these is
  Bonferroni-corrected into one z, so a group whose labels flipped is caught as quickly
  as an overall drop. Regression models watch the mean absolute error like latency.

Windows inside an excursion (from the estimated change point to the alarm) are left out
of later baselines, so a bad period is not learned as normal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gitml.checks.anomaly import AnomalyConfig, robust_level_spread
from gitml.monitor.config import MonitorConfig
from gitml.monitor.stats import WindowStats, p_from_z, z_from_p

FIGURES = ("drift", "errors", "client_errors", "latency", "metric")


@dataclass
class Point:
    """One figure at one window, in the shape the report's history charts draw."""

    commit: str  # the window's label (start time), named like the anomaly points
    value: float | None  # the figure in its own units
    z: float | None = None
    level: float | None = None  # learned level, own units
    upper: float | None = None  # value that would alarm now (rise is bad)
    lower: float | None = None  # (drop is bad)
    cusum: float = 0.0
    alarm: bool = False
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Series:
    figure: str
    points: list[Point] = field(default_factory=list)

    @property
    def alarms(self) -> list[int]:
        return [i for i, p in enumerate(self.points) if p.alarm]

    def to_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "points": [p.to_dict() for p in self.points]}


class _Cusum:
    def __init__(self, k: float, h: float) -> None:
        self.k, self.h = k, h
        self.s = 0.0
        self.start = 0  # first window of the current excursion (S last 0 just before)
        self.out: set[int] = set()  # windows inside alarmed excursions

    def zlimit(self) -> float:
        """The z that would alarm in the next window."""
        return self.h + self.k - self.s

    def update(self, t: int, z: float | None) -> tuple[float, bool]:
        if z is None or not math.isfinite(z):
            if self.s == 0.0:
                self.start = t + 1  # nothing judged: the window is in control by default
            return self.s, False
        self.s = max(0.0, self.s + z - self.k)
        if self.s == 0.0:
            self.start = t + 1
            return 0.0, False
        if self.s > self.h:
            s = self.s
            self.out.update(range(self.start, t + 1))
            self.s, self.start = 0.0, t + 1
            return s, True
        return self.s, False

    def baseline(self, t: int, m: int) -> list[int]:
        """Up to ``m`` in-control windows before the current excursion."""
        idx: list[int] = []
        i = min(self.start, t) - 1
        while i >= 0 and len(idx) < m:
            if i not in self.out:
                idx.append(i)
            i -= 1
        return idx


def _label(ws: WindowStats, interval: float) -> str:
    from datetime import UTC, datetime

    fmt = "%Y-%m-%dT%H:%M" if interval >= 60 else "%Y-%m-%dT%H:%M:%S"
    return datetime.fromtimestamp(ws.start, UTC).strftime(fmt)


def detect(windows: Sequence[WindowStats], cfg: MonitorConfig,
           reference_groups: dict[str, tuple[int, int]] | None = None,
           task: str = "classification") -> dict[str, Series]:
    """Every figure's points over ``windows`` (oldest first)."""
    out = {f: Series(f) for f in FIGURES}
    sums = {f: _Cusum(cfg.k, cfg.h) for f in FIGURES}
    ref = reference_groups or {}
    acfg = AnomalyConfig()
    for t, w in enumerate(windows):
        label = _label(w, cfg.interval)
        # drift: known null
        c = sums["drift"]
        zl = c.zlimit()
        s, alarm = c.update(t, w.drift_z)
        out["drift"].points.append(Point(label, w.drift_z, w.drift_z, 0.0 if w.drift_z is not None else None,
                                         zl if w.drift_z is not None else None, None, s, alarm, w.version))
        # errors, client errors: binomial vs pooled earlier windows (+ weak prior)
        out["errors"].points.append(_rate_point(t, windows, sums["errors"], cfg, label,
                                                lambda x: x.n_errors))
        out["client_errors"].points.append(_rate_point(t, windows, sums["client_errors"], cfg,
                                                       label, lambda x: x.n_client_errors))
        # latency: learned level and spread of the log mean
        c = sums["latency"]
        base = c.baseline(t, cfg.baseline_windows)
        xs = [windows[i].latency_log_mean for i in reversed(base)]
        vals = [x for x in xs if x is not None]
        x = w.latency_log_mean
        if x is not None and len(vals) >= cfg.min_baseline:
            mu, sigma = robust_level_spread(vals, acfg)
            # latency is heavy-tailed (a busy neighbour, a GC pause): one window alone may
            # add at most 0.6 h, so an alarm needs a move that lasts two windows
            z = min((x - mu) / sigma, cfg.k + 0.6 * cfg.h)
            zl = c.zlimit()
            s, alarm = c.update(t, z)
            out["latency"].points.append(Point(label, math.exp(x), z, math.exp(mu),
                                               math.exp(mu + zl * sigma), None, s, alarm, w.version))
        else:
            c.update(t, None)
            out["latency"].points.append(Point(label, math.exp(x) if x is not None else None,
                                               version=w.version))
        # live metric
        out["metric"].points.append(_metric_point(t, w, windows, sums["metric"], cfg, ref, task,
                                                  label, acfg))
    return out


def _rate_point(t: int, windows: Sequence[WindowStats], c: _Cusum, cfg: MonitorConfig,
                label: str, count: Callable[[WindowStats], int]) -> Point:
    """The share of failed requests in window ``t`` against the pooled share of the
    in-control windows before it (a prior of 1 in 100 requests)."""
    w = windows[t]
    base = c.baseline(t, cfg.baseline_windows)
    e0 = sum(count(windows[i]) for i in base) + 1.0
    n0 = sum(windows[i].n_requests for i in base) + 100.0
    p0 = e0 / n0
    n = max(1, w.n_requests)
    x = count(w)
    z = _count_z(x, n, p0)
    zl = c.zlimit()
    s, alarm = c.update(t, z)
    return Point(label, x / n, z, p0, _count_limit(zl, n, p0) / n, None, s, alarm, w.version)


def _count_z(x: int, n: int, p0: float) -> float:
    """z of ``x`` failures in ``n`` requests at a failure rate ``p0``: the upper tail of
    Binomial(n, p0) (mid-p) as a standard-normal quantile. Failures are rare, and the normal
    approximation's z of a rare count has a far heavier right tail than a standard normal
    (one window with 6 failures where 1 is usual would be z = 5): calibrated as drift's z is,
    a steady background of failures keeps to the CUSUM's false-alarm rate."""
    from scipy.stats import binom

    return z_from_p(float(binom.sf(x, n, p0) + 0.5 * binom.pmf(x, n, p0)))


def _count_limit(z: float, n: int, p0: float) -> float:
    """The smallest count whose z reaches ``z`` (what would alarm in the next window)."""
    from scipy.stats import binom

    return float(binom.isf(p_from_z(z), n, p0))


def _metric_point(t: int, w: WindowStats, windows: Sequence[WindowStats], c: _Cusum,
                  cfg: MonitorConfig, ref: dict[str, tuple[int, int]], task: str, label: str,
                  acfg: AnomalyConfig) -> Point:
    if w.n_labelled < cfg.min_labels or w.metric_value is None:
        c.update(t, None)
        return Point(label, w.metric_value, version=w.version)
    base = [i for i in c.baseline(t, cfg.baseline_windows) if windows[i].n_labelled >= cfg.min_labels]
    if task != "classification":
        vals = [float(windows[i].metric_value) for i in reversed(base)  # type: ignore[arg-type]
                if windows[i].metric_value is not None]
        if len(vals) < cfg.min_baseline:
            c.update(t, None)
            return Point(label, w.metric_value, version=w.version)
        mu, sigma = robust_level_spread(vals, acfg)
        z = (w.metric_value - mu) / sigma
        zl = c.zlimit()
        s, alarm = c.update(t, z)
        return Point(label, w.metric_value, z, mu, mu + zl * sigma, None, s, alarm, w.version)
    # pooled accuracy per group over the baseline windows, with the reference as a prior
    zs: list[float] = []
    level = bound_sd = None
    for key, (correct, n) in w.groups.items():
        if n < (cfg.min_labels if key == "" else max(5, cfg.min_labels // 2)):
            continue
        rc, rn = ref.get(key, (0, 0))
        weight = min(1.0, 200.0 / rn) if rn else 0.0  # the prior counts as ≤ 200 rows
        c0 = sum(windows[i].groups.get(key, (0, 0))[0] for i in base) + weight * rc + 1.0
        n0 = sum(windows[i].groups.get(key, (0, 0))[1] for i in base) + weight * rn + 2.0
        p0 = c0 / n0
        sd = math.sqrt(max(p0 * (1 - p0), 1e-4) / n)
        zs.append((p0 - correct / n) / sd)
        if key == "":
            level, bound_sd = p0, sd
    if not zs:
        c.update(t, None)
        return Point(label, w.metric_value, version=w.version)
    z = z_from_p(min(1.0, p_from_z(max(zs)) * len(zs)))
    zl = c.zlimit()
    s, alarm = c.update(t, z)
    lower = level - zl * bound_sd if level is not None and bound_sd is not None else None
    return Point(label, w.metric_value, z, level, None, lower, s, alarm, w.version)
