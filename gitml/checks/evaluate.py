"""Evaluation: task metrics (scikit-learn), absolute thresholds, and the regression gate
against a baseline with a paired bootstrap interval on the metric difference.

The bootstrap draws B resamples of the evaluation rows (multinomial weights) and
evaluates *both* models on the same resampled rows, so the interval describes the
difference, not two independent noisy numbers. Every metric has a vectorised weighted
form (``_weighted``) that equals the scikit-learn value when all weights are one (a
test checks this), so 1,000 resamples of 5,000 rows take milliseconds.

The regression gate blocks only when the *whole* interval of (new - baseline), oriented
so that positive is better, lies below ``-tolerance``: a model that is truly worse by
more than the tolerance fails, one that differs by evaluation noise does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitml.checks.results import GateResult
from gitml.models.limits import lower_is_better
from gitml.models.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]


@dataclass
class Predictions:
    """What a model says about the evaluation rows, in a task-neutral form.

    classification: ``y`` / ``pred`` are 0/1 w.r.t. the positive label when binary
    (``binary`` True); ``score`` is P(positive) (None when the model has no
    predict_proba). Multiclass keeps label indices and the full ``proba`` matrix.
    regression: ``y`` / ``pred`` are floats.
    """

    task: str
    y: Any
    pred: Any
    score: Any = None
    proba: Any = None
    binary: bool = True
    labels: list[Any] | None = None


def _positive_label(spec: ModelSpec, classes: list[Any]) -> Any:
    if spec.positive is not None:
        for c in classes:
            if c == spec.positive or str(c) == str(spec.positive):
                return c
        from gitml.errors import ConfigError

        raise ConfigError(f"{spec.key('positive')}: {spec.positive!r} is not a class of the model "
                          f"(classes: {', '.join(map(str, classes))})", "fix positive = ...")
    return classes[-1]


def feature_columns(model: Any, spec: ModelSpec, df: pd.DataFrame) -> list[str]:
    """The columns the model gets: ``features`` when declared, else the names the model
    was fitted on (``feature_names_in_``), else every column but the target."""
    from gitml.errors import ConfigError

    cols = [str(c) for c in df.columns]
    if spec.features is None:
        fitted = getattr(model, "feature_names_in_", None)
        if fitted is not None:
            names = [str(c) for c in fitted]
            missing = [c for c in names if c not in cols]
            if missing:
                raise ConfigError(f"{spec.key('data')}: column {missing[0]!r} the model was trained on "
                                  f"is not in {spec.data}", "add it to the evaluation data")
            return names
    return spec.feature_columns(cols)


def predict(model: Any, spec: ModelSpec, df: pd.DataFrame) -> Predictions:
    """Run the model on the evaluation frame; errors become ConfigError naming the key."""
    import numpy as np

    from gitml.errors import ConfigError

    X = df[feature_columns(model, spec, df)]
    y_raw = df[spec.target].to_numpy()
    try:
        pred_raw = np.asarray(model.predict(X))
    # the user's model runs here: any exception is possible (wrong columns, dtypes, ...)
    except Exception as e:
        raise ConfigError(f"{spec.key('path')}: the model cannot predict on {spec.data}: "
                          f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                          f"check {spec.key('features')} matches what the model was trained on") from e
    if spec.task == "regression":
        return Predictions("regression", y_raw.astype(float), pred_raw.astype(float))
    classes = list(getattr(model, "classes_", sorted(set(y_raw.tolist()) | set(pred_raw.tolist()))))
    if len(classes) > 2:
        # multiclass
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index.get(v, -1) for v in y_raw])
        pred = np.array([index.get(v, -1) for v in pred_raw])
        proba = np.asarray(model.predict_proba(X)) if hasattr(model, "predict_proba") else None
        return Predictions("classification", y, pred, None, proba, binary=False, labels=classes)
    pos = _positive_label(spec, classes)
    y = (y_raw == pos).astype(np.int8) if y_raw.dtype != object else np.array([v == pos for v in y_raw], dtype=np.int8)
    pred = np.array([v == pos for v in pred_raw.tolist()], dtype=np.int8)
    score = None
    if hasattr(model, "predict_proba"):
        try:
            proba = np.asarray(model.predict_proba(X))
            score = proba[:, classes.index(pos)].astype(float)
        # a model may expose predict_proba and refuse it (SVC without probability=True);
        # scores are then absent and the metrics needing them say "unavailable"
        except Exception:
            score = None
    return Predictions("classification", y, pred, score, binary=True, labels=classes)


# point metrics (scikit-learn) -----------------------------------------------------------

def metrics(p: Predictions) -> dict[str, float | None]:
    """Task metrics computed with scikit-learn."""
    import numpy as np
    from sklearn import metrics as m

    if p.task == "regression":
        mse = m.mean_squared_error(p.y, p.pred)
        return {"rmse": float(np.sqrt(mse)), "mae": float(m.mean_absolute_error(p.y, p.pred)),
                "r2": float(m.r2_score(p.y, p.pred))}
    if not p.binary:
        out: dict[str, float | None] = {
            "accuracy": float(m.accuracy_score(p.y, p.pred)),
            "precision": float(m.precision_score(p.y, p.pred, average="macro", zero_division=0)),
            "recall": float(m.recall_score(p.y, p.pred, average="macro", zero_division=0)),
            "f1": float(m.f1_score(p.y, p.pred, average="macro", zero_division=0)),
            "roc_auc": None, "log_loss": None}
        if p.proba is not None:
            labels = list(range(p.proba.shape[1]))
            out["log_loss"] = float(m.log_loss(p.y, p.proba, labels=labels))
            try:
                out["roc_auc"] = float(m.roc_auc_score(p.y, p.proba, multi_class="ovr", labels=labels))
            except ValueError:
                out["roc_auc"] = None
        return out
    out = {
        "accuracy": float(m.accuracy_score(p.y, p.pred)),
        "precision": float(m.precision_score(p.y, p.pred, zero_division=0)),
        "recall": float(m.recall_score(p.y, p.pred, zero_division=0)),
        "f1": float(m.f1_score(p.y, p.pred, zero_division=0)),
        "roc_auc": None,
        "log_loss": None,
    }
    if p.score is not None:
        if len(set(p.y.tolist())) == 2:
            out["roc_auc"] = float(m.roc_auc_score(p.y, p.score))
        out["log_loss"] = float(m.log_loss(p.y, np.column_stack([1 - p.score, p.score]), labels=[0, 1]))
    return out


# weighted (bootstrap) metrics -----------------------------------------------------------

EPS = 1e-15


def _safe_div(a: FloatArray, b: FloatArray) -> FloatArray:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def _weighted_auc(y: Any, score: Any, w: FloatArray) -> FloatArray:
    """ROC-AUC for each row of weights ``w`` (B x n), ties counted as 1/2."""
    import numpy as np

    order = np.argsort(score, kind="mergesort")
    s = score[order]
    yy = y[order].astype(bool)
    ww = w[:, order]
    wneg = np.where(~yy, ww, 0.0)
    wpos = np.where(yy, ww, 0.0)
    # negatives strictly below each position, handling ties by groups of equal scores
    _, start = np.unique(s, return_index=True)
    neg_by_group = np.add.reduceat(wneg, start, axis=1)           # B x G
    pos_by_group = np.add.reduceat(wpos, start, axis=1)
    neg_below = np.cumsum(neg_by_group, axis=1) - neg_by_group    # strictly lower scores
    num = (pos_by_group * (neg_below + 0.5 * neg_by_group)).sum(axis=1)
    den = wpos.sum(axis=1) * wneg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def weighted_metric(name: str, p: Predictions, w: FloatArray) -> FloatArray:
    """The metric for each row of bootstrap weights ``w`` (shape B x n); KeyError when
    the metric does not exist for these predictions."""
    n_w = w.sum(axis=1)
    if p.task == "regression":
        return _regression_metric(name, p, w, n_w)
    if not p.binary:
        return _multiclass_metric(name, p, w, n_w)
    return _binary_metric(name, p, w, n_w)


def _regression_metric(name: str, p: Predictions, w: FloatArray, n_w: FloatArray) -> FloatArray:
    import numpy as np

    err = p.pred - p.y
    if name == "rmse":
        return np.asarray(np.sqrt(_safe_div(w @ (err**2), n_w)))
    if name == "mae":
        return _safe_div(w @ np.abs(err), n_w)
    if name == "r2":
        mean_y = _safe_div(w @ p.y, n_w)
        sst = w @ (p.y**2) - n_w * mean_y**2
        return np.asarray(1 - _safe_div(w @ (err**2), sst))
    raise KeyError(name)


def _multiclass_metric(name: str, p: Predictions, w: FloatArray, n_w: FloatArray) -> FloatArray:
    import numpy as np

    if name == "accuracy":
        return _safe_div(w @ (p.y == p.pred).astype(float), n_w)
    if name == "log_loss" and p.proba is not None:
        pr = np.clip(p.proba[np.arange(len(p.y)), np.clip(p.y, 0, None)], EPS, 1)
        return _safe_div(w @ (-np.log(pr)), n_w)
    raise KeyError(name)


def _binary_metric(name: str, p: Predictions, w: FloatArray, n_w: FloatArray) -> FloatArray:
    import numpy as np

    y = p.y.astype(float)
    pr = p.pred.astype(float)
    tp, fp = w @ (y * pr), w @ ((1 - y) * pr)
    fn, tn = w @ (y * (1 - pr)), w @ ((1 - y) * (1 - pr))
    counts: dict[str, FloatArray] = {
        "accuracy": _safe_div(tp + tn, n_w),
        "precision": _safe_div(tp, tp + fp),
        "recall": _safe_div(tp, tp + fn),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": np.asarray(0.5 * (_safe_div(tp, tp + fn) + _safe_div(tn, tn + fp))),
    }
    if name in counts:
        return counts[name]
    if p.score is None:
        raise KeyError(name)
    if name == "roc_auc":
        return _weighted_auc(p.y, p.score, w)
    if name == "log_loss":
        s = np.clip(p.score, EPS, 1 - EPS)
        loss = -(y * np.log(s) + (1 - y) * np.log(1 - s))
        return _safe_div(w @ loss, n_w)
    raise KeyError(name)


def bootstrap_weights(n: int, b: int, seed: int) -> FloatArray:
    """B x n multinomial resampling counts (a row of ones is the original sample)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)


def paired_difference(name: str, new: Predictions, base: Predictions, *, n_boot: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Bootstrap interval of (new - base) on the same resampled rows, oriented so that
    positive means the new model is better."""
    import numpy as np

    n = len(new.y)
    sign = -1.0 if lower_is_better(name) else 1.0
    ones = np.ones((1, n))
    point = float(sign * (weighted_metric(name, new, ones)[0] - weighted_metric(name, base, ones)[0]))
    diffs: list[FloatArray] = []
    block = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    done = 0
    while done < n_boot:
        k = min(block, n_boot - done)
        w = bootstrap_weights(n, k, seed + done)
        diffs.append(sign * (weighted_metric(name, new, w) - weighted_metric(name, base, w)))
        done += k
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    alpha = 1 - confidence
    lo, hi = (np.quantile(d, [alpha / 2, 1 - alpha / 2]) if len(d) else (np.nan, np.nan))
    return {"difference": point, "ci_low": float(lo), "ci_high": float(hi),
            "se": float(d.std(ddof=1)) if len(d) > 1 else float("nan")}


# gates -------------------------------------------------------------------------------

def threshold_gate(spec: ModelSpec, values: dict[str, float | None]) -> GateResult:
    """Absolute thresholds: ``gates.min`` (at least) and ``gates.max`` (at most)."""
    mins: dict[str, float] = spec.gates.get("min", {})
    maxs: dict[str, float] = spec.gates.get("max", {})
    failures: list[str] = []
    checked: dict[str, Any] = {}
    for metric, limit in mins.items():
        v = values.get(metric)
        checked[metric] = {"value": v, "min": limit}
        if v is None:
            failures.append(f"{metric} unavailable (model has no predict_proba?)")
        elif v < limit:
            failures.append(f"{metric} {v:.4f} < min {limit:g} (short by {limit - v:.4f})")
    for metric, limit in maxs.items():
        v = values.get(metric)
        checked.setdefault(metric, {"value": v})["max"] = limit
        if v is None:
            failures.append(f"{metric} unavailable")
        elif v > limit:
            failures.append(f"{metric} {v:.4f} > max {limit:g} (over by {v - limit:.4f})")
    shown = ", ".join(f"{k}={v:.4f}" for k, v in values.items() if v is not None)
    if failures:
        return GateResult("eval.threshold", False, {"metrics": values, "checked": checked},
                          "; ".join(failures))
    msg = f"{shown}" + (f"; {len(checked)} threshold(s) met" if checked else "")
    return GateResult("eval.threshold", True, {"metrics": values, "checked": checked}, msg)


def regression_gate(spec: ModelSpec, new: Predictions, base: Predictions | None,
                    baseline_label: str | None) -> GateResult:
    tolerances: dict[str, float] = spec.gates.get("max_regression", {})
    if not tolerances:
        return GateResult("eval.regression", True, {}, "no max_regression declared", skipped=True)
    if base is None:
        return GateResult("eval.regression", True, {"baseline": baseline_label},
                          f"no baseline ({baseline_label or 'not declared'}): nothing to compare",
                          skipped=True)
    out: dict[str, Any] = {"baseline": baseline_label, "confidence": spec.confidence,
                           "bootstrap": spec.n_bootstrap, "rows": len(new.y)}
    failures: list[str] = []
    notes: list[str] = []
    for metric, tol in tolerances.items():
        try:
            d = paired_difference(metric, new, base, n_boot=spec.n_bootstrap,
                                  confidence=spec.confidence, seed=spec.seed)
        except KeyError:
            failures.append(f"{metric}: not computable for this model")
            continue
        d["tolerance"] = tol
        out[metric] = d
        worse = -d["difference"]
        if d["ci_high"] < -tol:
            failures.append(
                f"{metric} worse than {baseline_label} by {worse:.4f} "
                f"({int(spec.confidence * 100)}% CI of the change [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] "
                f"is entirely below -{tol:g})")
        else:
            notes.append(f"{metric} {d['difference']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
    if failures:
        return GateResult("eval.regression", False, out, "; ".join(failures))
    return GateResult("eval.regression", True, out, f"vs {baseline_label}: " + "; ".join(notes))


def trivial_predictions(p: Predictions) -> Predictions:
    """What a model that learned nothing says about the same rows: the majority class
    (with the base rate as its score) or the mean target. Its metrics are those of
    scikit-learn's ``DummyClassifier(strategy="prior")`` / ``DummyRegressor()`` fitted on
    the evaluation labels, a slightly optimistic trivial baseline."""
    import numpy as np

    n = len(p.y)
    if p.task == "regression":
        return Predictions("regression", p.y, np.full(n, float(np.mean(p.y))))
    if not p.binary:
        majority = int(np.bincount(p.y[p.y >= 0]).argmax()) if (p.y >= 0).any() else 0
        proba = None
        if p.proba is not None:
            prior = np.bincount(np.clip(p.y, 0, None), minlength=p.proba.shape[1]) / max(n, 1)
            proba = np.tile(prior, (n, 1))
        return Predictions("classification", p.y, np.full(n, majority), None, proba, binary=False,
                           labels=p.labels)
    rate = float(np.mean(p.y)) if n else 0.0
    pred = np.full(n, 1 if rate > 0.5 else 0, dtype=np.int8)
    score = np.full(n, rate) if p.score is not None else None
    return Predictions("classification", p.y, pred, score, binary=True, labels=p.labels)


def trivial_metric(p: Predictions) -> str:
    """The metric the trivial-baseline gate compares on: ranking quality when there are
    scores, else one that the majority class cannot game on imbalanced data."""
    if p.task == "regression":
        return "rmse"
    if not p.binary:
        return "accuracy"
    return "roc_auc" if p.score is not None else "balanced_accuracy"


def trivial_gate(spec: ModelSpec, p: Predictions) -> GateResult:
    """Block a model that is not better than predicting the majority class / the mean:
    the paired bootstrap interval of (model - trivial) must lie above zero."""
    metric = trivial_metric(p)
    trivial = trivial_predictions(p)
    d = paired_difference(metric, p, trivial, n_boot=spec.n_bootstrap,
                          confidence=spec.confidence, seed=spec.seed + 11)
    what = "the mean" if p.task == "regression" else "the majority class"
    out: dict[str, Any] = {"metric": metric, "trivial": what, "confidence": spec.confidence,
                           "rows": len(p.y), **d}
    interval = f"{int(spec.confidence * 100)}% CI [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
    if not d["ci_low"] > 0:
        return GateResult("eval.trivial", False, out,
                          f"not better than predicting {what}: {metric} {d['difference']:+.4f} "
                          f"vs the trivial model ({interval} does not exclude 0); "
                          f"set gates.trivial = false if that is expected")
    return GateResult("eval.trivial", True, out,
                      f"beats {what} on {metric} by {d['difference']:+.4f} ({interval})")
