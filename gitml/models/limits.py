"""The limits of ``[models.<name>.gates]``: which keys exist and the range of each value,
checked when the config is read (a limit outside its range, such as ``four_fifths = 1.5``,
would make a gate that can never pass or never fail).

The data gates' settings (drift, quality, anomaly) are parsed by their own modules in
:mod:`gitml.checks` (see ``checks.registry.validate_settings``), which the runner and the
commit hook call before anything runs.
"""

from __future__ import annotations

import math
from typing import Any

from gitml.errors import ConfigError

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
# parts of a metric name that mean "lower is better" (log_loss, rmse, latency_ms, ...);
# the evaluation gates and the anomaly detector orient differences with it
LOWER_IS_BETTER = ("loss", "rmse", "mse", "mae", "error", "latency", "brier")
# scores bounded to [0, 1]: a threshold or tolerance outside it can never be met/exceeded
UNIT_METRICS = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc"})

GATE_KEYS = frozenset({"min", "max", "max_regression", "baseline", "bias", "explain",
                       "confidence", "bootstrap", "drift", "quality", "anomaly", "blocking",
                       "seed", "trivial"})

# (low, high, integer?) per key; None = unbounded on that side
Range = tuple[float | None, float | None, bool]
BIAS_RANGES: dict[str, Range] = {
    "four_fifths": (0.0, 1.0, False),           # a ratio of selection rates: ≤ 1 by definition
    "max_dp_diff": (0.0, 1.0, False),           # differences of rates
    "max_eo_diff": (0.0, 1.0, False),
    "max_counterfactual_flip": (0.0, 1.0, False),  # a share of rows
    "min_group_size": (1, None, True),
}
EXPLAIN_RANGES: dict[str, Range] = {
    "max_rank_shift": (0, None, True),
    "min_kendall_tau": (-1.0, 1.0, False),
    "top_k": (1, None, True),
    "max_top_k_change": (0, None, True),
    "rows": (1, None, True),
    "budget_seconds": (0.0, None, False),
    "additivity_tol": (0.0, None, False),
}
BIAS_KEYS = frozenset(BIAS_RANGES)
EXPLAIN_KEYS = frozenset(EXPLAIN_RANGES)


def lower_is_better(metric: str) -> bool:
    m = metric.lower()
    return any(part in m for part in LOWER_IS_BETTER)


def _number(where: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ConfigError(f"{where}: expected a finite number, got {v!r}")
    return float(v)


def _in_range(where: str, v: Any, rng: Range) -> float:
    lo, hi, integer = rng
    x = _number(where, v)
    if integer and not (isinstance(v, int) or x.is_integer()):
        raise ConfigError(f"{where}: expected a whole number, got {v!r}")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        span = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ConfigError(f"{where} = {v!r} is outside its range {span}",
                          f"use a value in {span}")
    return x


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table like {{ accuracy = 0.7 }}, got {value!r}")
    return value


def _metric_limits(where: str, value: Any, metrics: tuple[str, ...], tolerance: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in _table(where, value).items():
        if k not in metrics:
            raise ConfigError(f"{where}.{k}: unknown metric", f"use one of: {', '.join(metrics)}")
        if tolerance:  # a tolerated drop: never negative, at most the metric's whole span
            rng: Range = (0.0, 1.0 if k in UNIT_METRICS else None, False)
        elif k in UNIT_METRICS:
            rng = (0.0, 1.0, False)
        elif k == "r2":
            rng = (None, 1.0, False)
        else:  # losses and errors
            rng = (0.0, None, False)
        out[k] = _in_range(f"{where}.{k}", v, rng)
    return out


def _named_limits(where: str, value: Any, ranges: dict[str, Range]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in _table(where, value).items():
        if k not in ranges:
            raise ConfigError(f"{where}.{k}: unknown setting", f"use one of: {', '.join(sorted(ranges))}")
        out[k] = _in_range(f"{where}.{k}", v, ranges[k])
    return out


def parse_gates(name: str, gates: Any, task: str) -> dict[str, Any]:
    """Validate ``[models.<name>.gates]`` (keys, types, ranges); returns it normalised."""
    where = f"models.{name}.gates"
    if not isinstance(gates, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(gates) - GATE_KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown gate", f"known gates: {', '.join(sorted(GATE_KEYS))}")
    metrics = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    for sub in ("min", "max", "max_regression"):
        if sub in gates:
            gates[sub] = _metric_limits(f"{where}.{sub}", gates[sub], metrics, sub == "max_regression")
    for sub, ranges in (("bias", BIAS_RANGES), ("explain", EXPLAIN_RANGES)):
        if sub in gates:
            gates[sub] = _named_limits(f"{where}.{sub}", gates[sub], ranges)
    _check_scalars(where, gates)
    return gates


def _check_scalars(where: str, gates: dict[str, Any]) -> None:
    conf = gates.get("confidence", 0.95)
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0.5 <= float(conf) < 1:
        raise ConfigError(f"{where}.confidence: expected a number in [0.5, 1), got {conf!r}")
    for key, default, lo, hi in (("bootstrap", 1000, 50, 100_000), ("seed", 0, 0, 2**32 - 1)):
        v = gates.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"{where}.{key}: expected an integer in [{lo}, {hi}], got {v!r}")
    for flag in ("trivial", "blocking"):
        if flag in gates and not isinstance(gates[flag], bool):
            raise ConfigError(f"{where}.{flag}: expected true or false, got {gates[flag]!r}")
    base = gates.get("baseline", "x")
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{where}.baseline: expected a stage, version or revision, got {base!r}",
                          'e.g. baseline = "prod"')
