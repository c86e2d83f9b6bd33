"""Bias (fairness) gates for every sensitive attribute.

Definitions follow Fairlearn (``fairlearn.metrics``) exactly, so numbers agree on the
same data (a test checks this):

* per group: selection rate P(ŷ=1), TPR P(ŷ=1 | y=1), FPR P(ŷ=1 | y=0), accuracy;
* demographic parity difference = max - min selection rate; ratio = min / max;
* equalized odds difference = max(TPR difference, FPR difference);
  ratio = min(TPR ratio, FPR ratio).

The four-fifths rule (selection-rate ratio ≥ 0.8) is gated on the bootstrap confidence
bound, not on the point estimate: it blocks only when the *upper* bound of the ratio's
interval is below the limit, i.e. the data show a violation beyond sampling noise. The
difference limits likewise block when the interval's *lower* bound is above the limit.
Groups smaller than ``min_group_size`` (default 30) are reported but not gated.

The counterfactual test sets the sensitive attribute of every row to each other
observed value (a flip, for a binary attribute) and reports the share of rows whose
prediction changes; it blocks when the Wilson lower bound of that share exceeds the
limit.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from gitml.checks.results import GateResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from gitml.checks.evaluate import Predictions
    from gitml.models.spec import ModelSpec

    FloatArray = npt.NDArray[np.float64]

MAX_NUMERIC_GROUPS = 10
COUNTERFACTUAL_ROWS = 2000
COUNTERFACTUAL_VALUES = 10


def group_labels(col: pd.Series) -> pd.Series:
    """Groups of a sensitive column: its values, or quartile bins of a many-valued number."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col) \
            and col.nunique(dropna=True) > MAX_NUMERIC_GROUPS:
        binned = pd.qcut(col, q=4, duplicates="drop")
        return binned.astype(str).where(col.notna(), "(missing)")
    return col.astype(object).where(col.notna(), "(missing)").astype(str)


def _rates(y: Any, pred: Any, masks: FloatArray, w: FloatArray) -> dict[str, FloatArray]:
    """Per-group rates for each row of weights: arrays of shape (B, G)."""
    import numpy as np

    yf = y.astype(float)
    pf = pred.astype(float)
    n_g = w @ masks.T
    pos_g = w @ (masks * yf).T
    neg_g = n_g - pos_g
    sel_g = w @ (masks * pf).T
    tp_g = w @ (masks * (yf * pf)).T
    fp_g = sel_g - tp_g
    correct_g = w @ (masks * (yf == pf)).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "n": n_g,
            "selection_rate": np.where(n_g > 0, sel_g / n_g, np.nan),
            "tpr": np.where(pos_g > 0, tp_g / pos_g, np.nan),
            "fpr": np.where(neg_g > 0, fp_g / neg_g, np.nan),
            "accuracy": np.where(n_g > 0, correct_g / n_g, np.nan),
        }


def _diff_ratio(v: FloatArray) -> tuple[FloatArray, FloatArray]:
    import warnings

    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hi = np.nanmax(v, axis=1)
        lo = np.nanmin(v, axis=1)
        ratio = np.where(hi > 0, lo / np.where(hi > 0, hi, 1), 1.0)
    return hi - lo, ratio


def fairness_summary(rates: dict[str, FloatArray]) -> dict[str, FloatArray]:
    """DP and EO difference/ratio per weight row (Fairlearn's definitions)."""
    import numpy as np

    dp_diff, dp_ratio = _diff_ratio(rates["selection_rate"])
    tpr_diff, tpr_ratio = _diff_ratio(rates["tpr"])
    fpr_diff, fpr_ratio = _diff_ratio(rates["fpr"])
    return {
        "dp_diff": dp_diff, "dp_ratio": dp_ratio,
        "eo_diff": np.maximum(tpr_diff, fpr_diff), "eo_ratio": np.minimum(tpr_ratio, fpr_ratio),
        "tpr_diff": tpr_diff, "fpr_diff": fpr_diff,
    }


def wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import norm

    z = float(norm.ppf(1 - (1 - confidence) / 2))
    phat = k / n
    den = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / den
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def counterfactual_flip(model: Any, X: pd.DataFrame, attribute: str, *, seed: int = 0,
                        max_rows: int = COUNTERFACTUAL_ROWS) -> dict[str, Any]:
    """Share of rows whose prediction changes when ``attribute`` takes another value."""
    import numpy as np
    import pandas as pd

    if attribute not in X.columns:
        return {"applicable": False, "reason": "not a model input", "flip_rate": None, "rows": 0,
                "changed": 0}
    col = X[attribute]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col) \
            and col.nunique(dropna=True) > MAX_NUMERIC_GROUPS:
        return {"applicable": False, "reason": "numeric attribute with many values", "flip_rate": None,
                "rows": 0, "changed": 0}
    if len(X) > max_rows:
        X = X.sample(n=max_rows, random_state=seed)
    values = col.dropna().value_counts().index.tolist()[:COUNTERFACTUAL_VALUES]
    base = np.asarray(model.predict(X))
    changed = np.zeros(len(X), dtype=bool)
    orig = X[attribute].to_numpy()
    for v in values:
        other = orig != v
        if not other.any():
            continue
        Xc = X.copy()
        Xc[attribute] = pd.Series([v] * len(X), index=X.index, dtype=X[attribute].dtype)
        changed |= other & (np.asarray(model.predict(Xc)) != base)
    by_group: dict[str, float] = {}
    for v in values:
        m = orig == v
        if m.any():
            by_group[str(v)] = float(changed[m].mean())
    return {"applicable": True, "flip_rate": float(changed.mean()), "rows": len(X),
            "changed": int(changed.sum()), "values": [str(v) for v in values], "by_group": by_group}


def _ci(x: FloatArray, confidence: float) -> tuple[float, float]:
    import numpy as np

    x = x[np.isfinite(x)]
    if not len(x):
        return (float("nan"), float("nan"))
    a = 1 - confidence
    lo, hi = np.quantile(x, [a / 2, 1 - a / 2])
    return float(lo), float(hi)


def attribute_gate(spec: ModelSpec, p: Predictions, sensitive: pd.Series, attribute: str,
                   model: Any = None, X: pd.DataFrame | None = None) -> GateResult:
    """All bias metrics and gates for one sensitive attribute."""
    import numpy as np

    from gitml.checks.evaluate import bootstrap_weights

    limits: dict[str, float] = spec.gates.get("bias", {})
    min_group = int(limits.get("min_group_size", 30))
    groups = group_labels(sensitive)
    names = sorted(groups.unique().tolist())
    g = groups.to_numpy()
    masks = np.stack([(g == name).astype(float) for name in names])
    n = len(g)
    metrics: dict[str, Any] = {"attribute": attribute, "confidence": spec.confidence}
    if p.task != "classification" or not p.binary:
        metrics["groups"] = _per_group_errors(p, masks, names)
        return GateResult(f"bias.{attribute}", True, metrics,
                          f"{attribute}: per-group errors reported (parity gates need binary classification)",
                          blocking=False)
    point = _rates(p.y, p.pred, masks, np.ones((1, n)))
    big = np.array([point["n"][0, i] >= min_group for i in range(len(names))])
    metrics["groups"] = {
        name: {k: (float(point[k][0, i]) if np.isfinite(point[k][0, i]) else None)
               for k in ("n", "selection_rate", "tpr", "fpr", "accuracy")} | {"gated": bool(big[i])}
        for i, name in enumerate(names)}
    if big.sum() < 2:
        metrics["note"] = f"fewer than two groups with at least {min_group} rows"
        return GateResult(f"bias.{attribute}", True, metrics,
                          f"{attribute}: fewer than two groups with ≥{min_group} rows; not gated",
                          skipped=True)
    gm = masks[big]
    summary_point = {k: float(v[0]) for k, v in fairness_summary(_rates(p.y, p.pred, gm, np.ones((1, n)))).items()}
    boot = fairness_summary(_rates(p.y, p.pred, gm, bootstrap_weights(n, spec.n_bootstrap, spec.seed + 7)))
    for k, v in summary_point.items():
        lo, hi = _ci(boot[k], spec.confidence)
        metrics[k] = {"value": v, "ci_low": lo, "ci_high": hi}
    failures = _parity_failures(spec, metrics, limits)
    if model is not None and X is not None:
        failures += _counterfactual(spec, metrics, limits, model, X, attribute)
    if failures:
        return GateResult(f"bias.{attribute}", False, metrics, f"{attribute}: " + "; ".join(failures))
    return GateResult(f"bias.{attribute}", True, metrics, _summary(attribute, metrics))


def _per_group_errors(p: Predictions, masks: FloatArray, names: list[str]) -> dict[str, Any]:
    """Regression / multiclass: each group's size and error (no parity gates)."""
    import numpy as np

    pred, y = np.asarray(p.pred), np.asarray(p.y)
    per: dict[str, Any] = {}
    for i, name in enumerate(names):
        m = masks[i].astype(bool)
        if p.task == "regression":
            per[name] = {"n": int(m.sum()), "mean_prediction": float(np.mean(pred[m])),
                         "mae": float(np.abs(pred[m] - y[m]).mean())}
        else:
            per[name] = {"n": int(m.sum()), "mean_prediction": None,
                         "error_rate": float((pred[m] != y[m]).astype(float).mean())}
    return per


def _parity_failures(spec: ModelSpec, metrics: dict[str, Any], limits: dict[str, float]) -> list[str]:
    """Four-fifths on the upper bound of the selection ratio; differences on their lower bound."""
    failures: list[str] = []
    ff = limits.get("four_fifths")
    if ff is not None:
        r = metrics["dp_ratio"]
        metrics["four_fifths"] = {"limit": ff, "ratio": r["value"], "upper_bound": r["ci_high"]}
        if r["ci_high"] < ff:
            failures.append(f"four-fifths: selection-rate ratio {r['value']:.3f} "
                            f"(upper {int(spec.confidence * 100)}% bound {r['ci_high']:.3f}) < {ff:g}")
    for key, label, short in (("max_dp_diff", "demographic parity difference", "dp_diff"),
                              ("max_eo_diff", "equalized odds difference", "eo_diff")):
        lim = limits.get(key)
        if lim is not None:
            d = metrics[short]
            d["limit"] = lim
            if d["ci_low"] > lim:
                failures.append(f"{label} {d['value']:.3f} (lower bound {d['ci_low']:.3f}) > {lim:g} "
                                f"by {d['ci_low'] - lim:.3f}")
    return failures


def _counterfactual(spec: ModelSpec, metrics: dict[str, Any], limits: dict[str, float], model: Any,
                    X: pd.DataFrame, attribute: str) -> list[str]:
    cf = counterfactual_flip(model, X, attribute, seed=spec.seed)
    metrics["counterfactual"] = cf
    lim = limits.get("max_counterfactual_flip")
    if not cf.get("applicable"):
        return []
    lo, hi = wilson(int(cf["changed"]), int(cf["rows"]), spec.confidence)
    cf.update({"ci_low": lo, "ci_high": hi})
    if lim is None:
        return []
    cf["limit"] = lim
    if lo > lim:
        return [f"counterfactual: changing {attribute} flips {cf['flip_rate']:.1%} "
                f"of predictions (lower bound {lo:.1%}) > {lim:.1%}"]
    return []


def _summary(attribute: str, metrics: dict[str, Any]) -> str:
    summary = (f"{attribute}: selection ratio {metrics['dp_ratio']['value']:.3f}, "
               f"DP diff {metrics['dp_diff']['value']:.3f}, EO diff {metrics['eo_diff']['value']:.3f}")
    cf = metrics.get("counterfactual", {})
    if cf.get("applicable"):
        summary += f", counterfactual flips {cf['flip_rate']:.1%}"
    elif cf:
        summary += f", counterfactual flips n/a ({cf.get('reason', 'not applicable')})"
    return summary


def bias_gates(spec: ModelSpec, p: Predictions, df: pd.DataFrame, model: Any = None) -> list[GateResult]:
    from gitml.checks.evaluate import feature_columns

    X = df[feature_columns(model, spec, df)] if model is not None else None
    return [attribute_gate(spec, p, df[a], a, model, X) for a in spec.sensitive]
