"""Adaptive anomaly detection on a metric's history across commits.

No fixed thresholds: the in-control level and spread are learned from the history
itself, robustly, and a one-sided CUSUM accumulates evidence of a sustained move in the
bad direction:

* level μ_t: the 20%-trimmed mean of the last ``window`` points of the current segment
  (before t);
* spread σ_t: the mean moving range / 1.128 over the same points after screening out
  ranges above 4× their median (moving ranges ignore a slow trend, the screening a level
  shift or one bad commit), at least half the MAD-based σ; a floor keeps a perfectly
  flat history from alarming on rounding noise;
* CUSUM (for a drop): S_t = max(0, S_{t−1} + (μ_t − x_t)/σ_t − k_n), alarm when S_t > h,
  with k_n = k + k_short/√n larger while the level is estimated from few points. With
  k = 1, h = 3 and known parameters the in-control average run length is ≈ 2,000 commits
  and a 3σ drop is caught in ≈ 2; with learned ones, on simulated 60-commit histories
  (σ = 0.01), false alarms are ≈ 0.3% of commits and 0.03 drops are caught within three
  commits ≈ 85% of the time (tests/test_checks_anomaly.py prints the figures). After an
  alarm the detector restarts at the estimated change point (the last commit where S
  was 0), so a new level is learned instead of alarming forever.
* warm-up: a segment with fewer than ``warmup`` points has no CUSUM; from ``min_points``
  on, a single point is flagged only when it is beyond a Student-t prediction bound at
  ``warmup_alpha`` (wide when the history is short).

The "limit" shown for each point is the value that would have raised the alarm there:
μ_t − σ_t (h + k − S_{t−1}) for a drop (mirrored for a rise).

Everything here is pure over ``[(commit, value), ...]``; :func:`history_from_git` reads the
values from the committed gate results ``.gitml/checks/<model>.json`` or run records
``.gitml/runs/<stage>.json`` along the first-parent history.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from gitml.checks.results import GateResult
from gitml.errors import ConfigError
from gitml.models.limits import lower_is_better

if TYPE_CHECKING:
    from gitml.repo import MLRepo

Direction = Literal["decrease", "increase", "both"]
PREFERRED = ("roc_auc", "accuracy", "f1", "r2", "rmse", "mae", "log_loss")


@dataclass
class AnomalyConfig:
    metric: str | None = None
    direction: Direction | None = None  # None: from the metric's name (loss/error: increase)
    k: float = 1.0  # CUSUM allowance, in σ
    h: float = 3.0  # CUSUM decision interval, in σ
    k_short: float = 1.0  # + k_short/√n: a larger allowance while the level is uncertain
    window: int = 30  # points used for the level and spread
    warmup: int = 8  # points before the CUSUM runs
    min_points: int = 4  # points before anything can be flagged
    warmup_alpha: float = 0.001  # one-sided level of the warm-up prediction bound
    min_sigma: float = 1e-4  # absolute floor of σ
    rel_min_sigma: float = 1e-3  # ... and relative to |μ|
    block: bool = True
    source: str | None = None  # "checks" (default) or "runs:<stage>"
    max_commits: int = 200

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "anomaly") -> AnomalyConfig:
        if not data:
            return cls()
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known - {"enabled"})
        if unknown:
            raise ConfigError(f"{where}: unknown anomaly setting(s) {', '.join(unknown)}",
                              f"use any of: {', '.join(sorted(known))}")
        from gitml.checks.drift import _type_ok

        defaults = cls()
        for k, v in data.items():
            if k not in known or k in ("metric", "direction", "source"):
                continue
            if not _type_ok(v, type(getattr(defaults, k))):
                raise ConfigError(f"{where}.{k} = {v!r} has the wrong type",
                                  f"expected a {type(getattr(defaults, k)).__name__}")
        if data.get("metric") is not None and not isinstance(data.get("metric"), str):
            raise ConfigError(f"{where}.metric must be a metric name", 'e.g. metric = "accuracy"')
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "anomaly") -> None:
        if self.direction not in (None, "decrease", "increase", "both"):
            raise ConfigError(f"{where}.direction = {self.direction!r} is unknown",
                              "use 'decrease' (higher is better), 'increase' or 'both'")
        if self.k < 0 or self.h <= 0:
            raise ConfigError(f"{where}: k must be >= 0 and h > 0", "the defaults are k = 1, h = 3")
        if self.window < 3 or self.warmup < 3 or self.min_points < 2:
            raise ConfigError(f"{where}: window and warmup must be >= 3, min_points >= 2")
        if not 0 < self.warmup_alpha < 0.5:
            raise ConfigError(f"{where}.warmup_alpha must be in (0, 0.5)")


def direction_for(metric: str) -> Direction:
    """A drop is bad for scores, a rise for losses/errors."""
    return "increase" if lower_is_better(metric) else "decrease"


@dataclass
class Point:
    commit: str
    value: float
    level: float | None = None
    sigma: float | None = None
    lower: float | None = None  # the value that would alarm now (drop side)
    upper: float | None = None  # (rise side)
    cusum_low: float = 0.0
    cusum_high: float = 0.0
    alarm: bool = False
    phase: str = "learning"  # learning | warmup | monitoring
    segment: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def robust_level_spread(values: Sequence[float], cfg: AnomalyConfig) -> tuple[float, float]:
    """(level, σ) of ``values`` with the σ floor applied.

    Level: the 20%-trimmed mean (robust to a few outliers, less noisy than the median on
    short histories). σ: the mean moving range / 1.128 after screening out ranges above
    4× their median (a level shift or a single bad commit makes one or two large ranges);
    at least half the MAD-based σ so a zig-zag history cannot shrink it.
    """
    n = len(values)
    s = sorted(values)
    cut = int(0.2 * n) if n >= 5 else 0
    core = s[cut:n - cut] if cut else s
    level = sum(core) / len(core)
    ranges = [abs(b - a) for a, b in itertools.pairwise(values)]
    sigma = 0.0
    if ranges:
        med = _median(ranges)
        kept = [r for r in ranges if r <= 4 * med] if med > 0 else ranges
        sigma = sum(kept) / len(kept) / 1.128
    if n >= 4:
        mad = _median([abs(v - _median(values)) for v in values]) * 1.4826
        sigma = max(sigma, 0.5 * mad)
    return level, max(sigma, cfg.min_sigma, cfg.rel_min_sigma * abs(level))


@functools.lru_cache(maxsize=256)
def _t_quantile(p: float, df: int) -> float:
    """Student-t quantile without scipy (import time matters in hooks): exact for 1 and 2
    degrees of freedom, the Cornish–Fisher expansion (Abramowitz & Stegun 26.7.5) above."""
    from statistics import NormalDist

    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


def detect(history: Sequence[tuple[str, float]],
           config: AnomalyConfig | Mapping[str, Any] | None = None,
           metric: str | None = None) -> list[Point]:
    """Run the detector over ``[(commit, value), ...]`` (oldest first)."""
    cfg = config if isinstance(config, AnomalyConfig) else AnomalyConfig.from_mapping(config)
    direction: Direction = cfg.direction or direction_for(metric or cfg.metric or "")
    down = direction in ("decrease", "both")
    up = direction in ("increase", "both")
    points: list[Point] = []
    seg_start = 0
    segment = 0
    s_low = s_high = 0.0
    last_zero_low = last_zero_high = 0
    for t, (commit, raw_value) in enumerate(history):
        value = float(raw_value)
        p = Point(str(commit), value, segment=segment)
        points.append(p)
        if not math.isfinite(value):
            p.phase = "missing"
            continue
        past = [q.value for q in points[seg_start:t] if math.isfinite(q.value)][-cfg.window:]
        n = len(past)
        if n < cfg.min_points - 1:
            p.phase = "learning"
            continue
        mu, sigma = robust_level_spread(past, cfg)
        p.level, p.sigma = mu, sigma
        if n < cfg.warmup:
            p.phase = "warmup"
            # a single point beyond a wide prediction bound (t quantile, n-1 dof)
            q = _t_quantile(1 - cfg.warmup_alpha, max(1, n - 1)) * math.sqrt(1 + 1 / n)
            p.lower = mu - q * sigma if down else None
            p.upper = mu + q * sigma if up else None
            p.alarm = (down and value < mu - q * sigma) or (up and value > mu + q * sigma)
        else:
            p.phase = "monitoring"
            z = (value - mu) / sigma
            kk = cfg.k + cfg.k_short / math.sqrt(n)
            if down:
                p.lower = mu - sigma * (cfg.h + kk - s_low)
                s_low = max(0.0, s_low - z - kk)
                if s_low == 0.0:
                    last_zero_low = t
            if up:
                p.upper = mu + sigma * (cfg.h + kk - s_high)
                s_high = max(0.0, s_high + z - kk)
                if s_high == 0.0:
                    last_zero_high = t
            p.cusum_low, p.cusum_high = s_low, s_high
            p.alarm = (down and s_low > cfg.h) or (up and s_high > cfg.h)
        if p.alarm:
            # restart at the estimated change point: learn the new level from there
            change = t
            if p.phase == "monitoring":
                change = (last_zero_low if down and s_low > cfg.h else last_zero_high) + 1
            seg_start = min(change, t)
            segment += 1
            s_low = s_high = 0.0
            last_zero_low = last_zero_high = t
    return points


class StreamDetector:
    """The same detector fed one value at a time (live metrics from a server's logs).

    Keeps the last ``max_points`` values; each :meth:`update` returns the new point.
    """

    def __init__(self, config: AnomalyConfig | Mapping[str, Any] | None = None,
                 metric: str | None = None, max_points: int = 500) -> None:
        self.config = config if isinstance(config, AnomalyConfig) else AnomalyConfig.from_mapping(config)
        self.metric = metric or self.config.metric
        self.max_points = max(self.config.window * 2, max_points)
        self.history: list[tuple[str, float]] = []

    def update(self, key: str, value: float) -> Point:
        self.history.append((key, float(value)))
        if len(self.history) > self.max_points:
            del self.history[: len(self.history) - self.max_points]
        return detect(self.history, self.config, self.metric)[-1]


def summarize(points: Sequence[Point]) -> dict[str, Any]:
    alarms = [p for p in points if p.alarm]
    return {"n": len(points), "n_alarms": len(alarms),
            "alarm_commits": [p.commit for p in alarms],
            "last_alarm": bool(points and points[-1].alarm)}


def gate(history: Sequence[tuple[str, float]] | None = None,
         config: AnomalyConfig | Mapping[str, Any] | None = None, *,
         repo: MLRepo | None = None, model: str | None = None,
         metrics: Mapping[str, Any] | None = None, rev: str | None = None) -> GateResult:
    """Is the newest point of the metric history anomalous?

    Pure when ``history`` is given. Otherwise (as the runner calls it) the history of
    ``model``'s committed results is read from Git and the freshly computed ``metrics``
    are appended as the candidate point.
    """
    where = f"models.{model}.gates.anomaly" if model else "anomaly"
    cfg = config if isinstance(config, AnomalyConfig) else AnomalyConfig.from_mapping(config, where)
    metric = cfg.metric
    if history is None:
        if repo is None or model is None:
            return GateResult("anomaly", True, {}, "anomaly: no history given", skipped=True)
        if metric is None:
            metric = pick_metric(metrics or {})
        if metric is None:
            return GateResult("anomaly", True, {}, "anomaly: no metric to watch "
                              "(set gates.anomaly.metric)", skipped=True)
        at = rev if rev and rev not in ("index", "worktree", "staged") else "HEAD"
        tip = repo.git.resolve(at) if repo.git.head() is not None else None
        history = list(history_from_git(repo, model, metric, at, cfg))
        current = (metrics or {}).get(metric)
        if isinstance(current, int | float) and not isinstance(current, bool):
            if history and history[-1][0] == tip and history[-1][1] == float(current):
                history.pop()  # the tip's committed result is this very candidate
            history.append((tip if at != "HEAD" and tip else "(candidate)", float(current)))
    metric = metric or "metric"
    points = detect(history, cfg, metric)
    direction = cfg.direction or direction_for(metric)
    metrics_out = {"metric": metric, "direction": direction, "k": cfg.k, "h": cfg.h,
                   **summarize(points), "points": [p.to_dict() for p in points]}
    if not points:
        return GateResult("anomaly", True, metrics_out, f"anomaly: no history of {metric}",
                          blocking=cfg.block, skipped=True)
    last = points[-1]
    if last.phase == "learning":
        return GateResult("anomaly", True, metrics_out,
                          f"anomaly: {len(points)} point(s) of {metric}: still learning "
                          f"(needs {cfg.min_points})", blocking=cfg.block, skipped=True)
    if last.alarm:
        if last.phase == "warmup":
            why = "beyond the warm-up prediction bound"
        else:
            why = f"CUSUM {max(last.cusum_low, last.cusum_high):.1f} > h = {cfg.h:g}"
        bound = last.lower if direction != "increase" else last.upper
        msg = (f"anomaly: {metric} {last.value:.4f} vs learned level {last.level:.4f} "
               f"(σ {last.sigma:.4f}; limit {bound:.4f}): {why}")
        return GateResult("anomaly", False, metrics_out, msg, blocking=cfg.block)
    return GateResult("anomaly", True, metrics_out,
                      f"anomaly: {metric} {last.value:.4f} within learned limits "
                      f"(level {last.level:.4f}, σ {last.sigma:.4f})", blocking=cfg.block)


def pick_metric(values: Mapping[str, Any]) -> str | None:
    for m in PREFERRED:
        v = values.get(m)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return m
    return None


# ---------------------------------------------------------------------------- Git adapters
def metrics_from_checks(data: bytes) -> dict[str, float]:
    """Metric values in a committed ``.gitml/checks/<model>.json``."""
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    out: dict[str, float] = {}
    for r in doc.get("results", []) if isinstance(doc, dict) else []:
        if not isinstance(r, dict):
            continue
        m = r.get("metrics") or {}
        values = m.get("metrics") if isinstance(m.get("metrics"), dict) else None
        if values is None and str(r.get("gate", "")).startswith("eval"):
            values = m
        for k, v in (values or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in out:
                out[str(k)] = float(v)
    return out


def metrics_from_run(data: bytes) -> dict[str, float]:
    """Metric values in a committed run record ``.gitml/runs/<stage>.json``."""
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    m = doc.get("metrics", {}) if isinstance(doc, dict) else {}
    return {str(k): float(v) for k, v in m.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def history_from_git(repo: MLRepo, name: str, metric: str, rev: str = "HEAD",
                     config: AnomalyConfig | None = None) -> list[tuple[str, float]]:
    """``[(commit, value), ...]`` of ``metric`` oldest first, from the committed results of
    model ``name`` (or the run record of stage ``name`` when ``source = "runs"``)."""
    from gitml.git.walk import file_history

    cfg = config or AnomalyConfig()
    source = cfg.source or "checks"
    if repo.git.head() is None:
        return []
    if source == "checks":
        path, parse = f".gitml/checks/{name}.json", metrics_from_checks
    elif source == "runs" or source.startswith("runs:"):
        stage = source.split(":", 1)[1] if ":" in source else name
        path, parse = f".gitml/runs/{stage}.json", metrics_from_run
    else:
        raise ConfigError(f"anomaly.source = {source!r} is unknown", "use 'checks' or 'runs:<stage>'")
    out: list[tuple[str, float]] = []
    for v in file_history(repo.git, rev, path, cfg.max_commits):
        value = parse(v.data).get(metric)
        if value is not None and math.isfinite(value):
            out.append((v.commit, value))
    return out
