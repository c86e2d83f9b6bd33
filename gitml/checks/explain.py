"""SHAP explanations: global mean-|SHAP| importance, its rank shift against a baseline,
single-prediction explanations, and an additivity check.

Explainer choice (on the model's final estimator, after unwrapping a Pipeline):

* tree ensembles (DecisionTree, RandomForest, ExtraTrees, GradientBoosting,
  HistGradientBoosting): ``shap.TreeExplainer`` on the pipeline's transformed features
  (exact, milliseconds);
* linear models (coef_ + intercept_): ``shap.LinearExplainer`` on transformed features,
  with a background sample;
* anything else, or a preprocessor whose output names are unknown: a sampled
  model-agnostic ``shap.PermutationExplainer`` on the *raw* columns, stopping at a time
  budget (``budget_seconds``, default 20) — fewer rows, never a hung hook.

Transformed features (one-hot columns ``colour_White``...) are summed back into the raw
column they came from, so importances are reported per input column. Sums of SHAP values
stay additive under that aggregation.

What is explained is the model's raw output: ``decision_function`` (log-odds) for
margin models (logistic regression, gradient boosting), P(positive) for forests and
trees and for the model-agnostic explainer, ``predict`` for regressors. The additivity
check compares base value + sum of SHAP values with that output computed by
scikit-learn itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitml.checks.results import GateResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from gitml.models.spec import ModelSpec

    FloatArray = npt.NDArray[np.float64]

TREE_TYPES = ("DecisionTreeClassifier", "DecisionTreeRegressor", "RandomForestClassifier",
              "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
              "GradientBoostingClassifier", "GradientBoostingRegressor",
              "HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
DEFAULT_ROWS = 200
DEFAULT_BACKGROUND = 100
DEFAULT_BUDGET = 10.0
PERMUTATION_ROWS = 50
PERMUTATION_BACKGROUND = 50
DEFAULT_TOP_K = 5


@dataclass
class Explanation:
    explainer: str                  # "tree" | "linear" | "permutation"
    output: str                     # what the values explain, e.g. "decision_function"
    columns: list[str]              # raw columns, aligned with values' second axis
    values: FloatArray              # rows x columns (aggregated to raw columns)
    base_value: float
    model_output: FloatArray        # the model's own output for the rows (sklearn)
    row_index: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    rows_requested: int = 0

    @property
    def additivity_error(self) -> float:
        import numpy as np

        if not len(self.values):
            return 0.0
        recon = self.base_value + self.values.sum(axis=1)
        return float(np.max(np.abs(recon - self.model_output)))

    def importance(self) -> dict[str, float]:
        import numpy as np

        imp = np.abs(self.values).mean(axis=0) if len(self.values) else np.zeros(len(self.columns))
        pairs = sorted(zip(self.columns, imp.tolist(), strict=True), key=lambda kv: -kv[1])
        return dict(pairs)


def _final_and_pre(model: Any) -> tuple[Any, Any]:
    """(preprocessor or None, final estimator) of a Pipeline; (None, model) otherwise."""
    steps = getattr(model, "steps", None)
    if steps and len(steps) > 1:
        return model[:-1], steps[-1][1]
    if steps:
        return None, steps[-1][1]
    return None, model


def explainer_kind(model: Any) -> str:
    _, est = _final_and_pre(model)
    name = type(est).__name__
    if name in TREE_TYPES:
        return "tree"
    if hasattr(est, "coef_") and hasattr(est, "intercept_"):
        return "linear"
    return "permutation"


def _column_of(name: str, raw_columns: list[str]) -> str | None:
    rest = name.split("__", 1)[1] if "__" in name else name
    best: str | None = None
    for c in raw_columns:
        if (rest == c or rest.startswith(c + "_")) and (best is None or len(c) > len(best)):
            best = c
    return best


def _feature_groups(pre: Any, raw_columns: list[str], n_out: int) -> list[str] | None:
    """For each transformed column, the raw column it came from; None when unknown."""
    if pre is None:
        return list(raw_columns) if len(raw_columns) == n_out else None
    try:
        names = [str(n) for n in pre.get_feature_names_out(raw_columns)]
    # any scikit-learn (or third-party) transformer may lack or refuse this: the caller
    # then falls back to the model-agnostic explainer on the raw columns
    except Exception:
        return None
    if len(names) != n_out:
        return None
    out: list[str] = []
    for n in names:
        c = _column_of(n, raw_columns)
        if c is None:
            return None
        out.append(c)
    return out


def _dense(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=float)


def _pos_index(model: Any, spec: ModelSpec) -> int:
    classes = list(getattr(model, "classes_", []))
    if not classes:
        return 1
    if spec.positive is not None:
        for i, c in enumerate(classes):
            if c == spec.positive or str(c) == str(spec.positive):
                return i
    return len(classes) - 1


def _raw_output(model: Any, spec: ModelSpec, X: pd.DataFrame, kind: str) -> tuple[str, FloatArray, float]:
    """The output SHAP explains for this model, computed by scikit-learn, and its sign
    (-1 when a binary margin is oriented towards the other class)."""
    import numpy as np

    _, est = _final_and_pre(model)
    if spec.task == "regression":
        return "predict", np.asarray(model.predict(X), dtype=float), 1.0
    pos = _pos_index(model, spec)
    if kind in ("tree", "linear") and hasattr(est, "decision_function"):
        df = np.asarray(model.decision_function(X), dtype=float)
        if df.ndim == 1:
            sign = 1.0 if pos == 1 else -1.0
            return "decision_function", sign * df, sign
        return "decision_function", df[:, pos], 1.0
    return "predict_proba", np.asarray(model.predict_proba(X), dtype=float)[:, pos], 1.0


def _select(values: Any, expected: Any, pos: int, sign: float) -> tuple[FloatArray, float]:
    """Pick the positive-class slice of SHAP output in any of shap's layouts."""
    import numpy as np

    v = np.asarray(values.values if hasattr(values, "values") else values, dtype=float)
    base = np.asarray(expected, dtype=float)
    if isinstance(values, list):
        v = np.asarray(values[pos], dtype=float)
    if v.ndim == 3:
        v = v[:, :, pos if v.shape[2] > pos else -1]
    if base.ndim >= 1 and base.size > 1:
        base = base.reshape(-1)[pos] if base.ndim == 1 else base[0].reshape(-1)[pos]
    return sign * v, float(sign * base.reshape(-1)[0] if base.size else 0.0)


def explain(model: Any, spec: ModelSpec, df: pd.DataFrame, *, rows: list[int] | None = None,
            n_rows: int | None = None, background: pd.DataFrame | None = None,
            budget_seconds: float | None = None, force: str | None = None,
            seed: int = 0) -> Explanation:
    """SHAP values (aggregated to raw columns) for a sample of rows, or the given rows
    (positions in ``df``)."""
    import numpy as np

    limits: dict[str, float] = spec.gates.get("explain", {})
    n_rows = int(n_rows or limits.get("rows", DEFAULT_ROWS))
    budget = float(budget_seconds or limits.get("budget_seconds", DEFAULT_BUDGET))
    from gitml.checks.evaluate import feature_columns

    cols = feature_columns(model, spec, df)
    X_all = df[cols]
    if rows is not None:
        X = X_all.iloc[rows]
    elif len(X_all) > n_rows:
        X = X_all.sample(n=n_rows, random_state=seed).sort_index()
    else:
        X = X_all
    bg = background if background is not None else X_all
    if len(bg) > DEFAULT_BACKGROUND:
        bg = bg.sample(n=DEFAULT_BACKGROUND, random_state=seed + 1)
    kind = force or explainer_kind(model)
    pre, est = _final_and_pre(model)
    t0 = time.perf_counter()
    groups: list[str] | None = None
    if kind in ("tree", "linear"):
        Xt = _dense(pre.transform(X)) if pre is not None else _dense(X)
        groups = _feature_groups(pre, cols, Xt.shape[1])
        if groups is None:
            kind = "permutation"
    if kind == "tree":
        ex = _tree_values(model, spec, X, Xt, est)
    elif kind == "linear":
        bgt = _dense(pre.transform(bg)) if pre is not None else _dense(bg)
        ex = _linear_values(model, spec, X, Xt, est, bgt)
    else:
        if rows is None and len(X) > PERMUTATION_ROWS:
            X = X.sample(n=PERMUTATION_ROWS, random_state=seed).sort_index()
        if len(bg) > PERMUTATION_BACKGROUND:
            bg = bg.sample(n=PERMUTATION_BACKGROUND, random_state=seed + 2)
        ex = _permutation_values(model, spec, X, bg, budget, t0)
        groups = list(cols)
    assert groups is not None
    values, base, output_name, out = ex
    # aggregate transformed columns back to raw columns
    index = {c: i for i, c in enumerate(cols)}
    agg = np.zeros((values.shape[0], len(cols)))
    for j, c in enumerate(groups):
        agg[:, index[c]] += values[:, j]
    done = values.shape[0]
    return Explanation(kind, output_name, cols, agg, base, out[:done],
                       row_index=list(X.index[:done]), seconds=time.perf_counter() - t0,
                       rows_requested=len(X))


def _tree_values(model: Any, spec: ModelSpec, X: pd.DataFrame, Xt: FloatArray,
                 est: Any) -> tuple[FloatArray, float, str, FloatArray]:
    import shap

    output_name, out, sign = _raw_output(model, spec, X, "tree")
    explainer = shap.TreeExplainer(est)
    sv = explainer.shap_values(Xt, check_additivity=False)
    values, base = _select(sv, explainer.expected_value, _pos_index(model, spec), sign)
    return values, base, output_name, out


def _linear_values(model: Any, spec: ModelSpec, X: pd.DataFrame, Xt: FloatArray, est: Any,
                   bgt: FloatArray) -> tuple[FloatArray, float, str, FloatArray]:
    import shap

    output_name, out, sign = _raw_output(model, spec, X, "linear")
    explainer = shap.LinearExplainer(est, bgt)
    sv = explainer.shap_values(Xt)
    values, base = _select(sv, explainer.expected_value, _pos_index(model, spec), sign)
    return values, base, output_name, out


def _permutation_values(model: Any, spec: ModelSpec, X: pd.DataFrame, bg: pd.DataFrame,
                        budget: float, t0: float) -> tuple[FloatArray, float, str, FloatArray]:
    import numpy as np
    import pandas as pd
    import shap

    cols = list(X.columns)
    dtypes = X.dtypes
    pos = _pos_index(model, spec)
    # shap's maskers need numbers: non-numeric columns travel as category codes
    cats: dict[str, list[Any]] = {}
    for c in cols:
        if not (pd.api.types.is_numeric_dtype(dtypes[c]) and not pd.api.types.is_bool_dtype(dtypes[c])):
            cats[c] = list(pd.unique(pd.concat([X[c], bg[c]], ignore_index=True).astype(object)))

    def encode(frame: pd.DataFrame) -> Any:
        out = np.empty((len(frame), len(cols)), dtype=float)
        for j, c in enumerate(cols):
            if c in cats:
                lookup = {v: i for i, v in enumerate(cats[c])}
                out[:, j] = [lookup.get(v, -1) for v in frame[c].astype(object)]
            else:
                out[:, j] = frame[c].to_numpy(dtype=float)
        return out

    def decode(arr: Any) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for j, c in enumerate(cols):
            if c in cats:
                values = np.asarray(cats[c], dtype=object)
                data[c] = pd.Series(values[arr[:, j].astype(int)]).astype(dtypes[c])
            else:
                data[c] = pd.Series(arr[:, j]).astype(dtypes[c])
        return pd.DataFrame(data)

    def f(arr: Any) -> Any:
        frame = decode(np.asarray(arr, dtype=float))
        if spec.task == "regression":
            return np.asarray(model.predict(frame), dtype=float)
        return np.asarray(model.predict_proba(frame), dtype=float)[:, pos]

    masker = shap.maskers.Independent(encode(bg), max_samples=len(bg))
    X_obj = encode(X)
    values, base = _explain_in_batches(shap.PermutationExplainer(f, masker), X_obj, len(cols),
                                       budget, t0)
    out = f(X_obj[: len(values)])
    name = "predict" if spec.task == "regression" else "predict_proba"
    return values, base, name, out


def _explain_in_batches(explainer: Any, X_obj: Any, n_cols: int, budget: float,
                        t0: float) -> tuple[FloatArray, float]:
    """SHAP values of the rows of ``X_obj``, five at a time, until the time budget is spent."""
    import numpy as np

    parts: list[Any] = []
    base = 0.0
    batch = 5
    for i in range(0, len(X_obj), batch):
        res = explainer(X_obj[i:i + batch], max_evals=6 * n_cols + 1, silent=True)
        parts.append(np.asarray(res.values, dtype=float))
        base = float(np.asarray(res.base_values).reshape(-1)[0])
        if time.perf_counter() - t0 > budget:
            break
    return (np.concatenate(parts) if parts else np.zeros((0, n_cols))), base


# comparison and gate ----------------------------------------------------------------

def rank_shift(new: dict[str, float], base: dict[str, float], top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
    """How the importance ranking moved: Kendall's tau over all columns, the largest rank
    move among either model's top-k columns, and how many top-k columns are new."""
    import numpy as np
    from scipy.stats import kendalltau

    cols = sorted(set(new) | set(base))
    a = np.array([new.get(c, 0.0) for c in cols])
    b = np.array([base.get(c, 0.0) for c in cols])
    rank_new = {c: i + 1 for i, c in enumerate(sorted(cols, key=lambda c: -new.get(c, 0.0)))}
    rank_base = {c: i + 1 for i, c in enumerate(sorted(cols, key=lambda c: -base.get(c, 0.0)))}
    top_new = [c for c in cols if rank_new[c] <= top_k]
    top_base = [c for c in cols if rank_base[c] <= top_k]
    watched = sorted(set(top_new) | set(top_base), key=lambda c: rank_new[c])
    shifts = {c: rank_new[c] - rank_base[c] for c in watched}
    tau = float(kendalltau(a, b).statistic) if len(cols) > 1 else 1.0
    return {"kendall_tau": tau if np.isfinite(tau) else 1.0,
            "max_rank_shift": max((abs(v) for v in shifts.values()), default=0),
            "rank_shifts": shifts, "top_k": top_k,
            "top_k_change": len(set(top_new) - set(top_base)),
            "entered_top_k": sorted(set(top_new) - set(top_base)),
            "left_top_k": sorted(set(top_base) - set(top_new))}


def explain_gate(spec: ModelSpec, new: Explanation, base: Explanation | None,
                 baseline_label: str | None) -> GateResult:
    limits: dict[str, float] = spec.gates.get("explain", {})
    tol = float(limits.get("additivity_tol", 1e-3 if new.explainer != "permutation" else 1e-2))
    imp = new.importance()
    metrics: dict[str, Any] = {
        "explainer": new.explainer, "output": new.output, "rows": len(new.values),
        "rows_requested": new.rows_requested, "seconds": round(new.seconds, 3),
        "base_value": new.base_value, "importance": imp,
        "additivity_max_error": new.additivity_error, "additivity_tol": tol,
    }
    failures: list[str] = []
    scale = max(1.0, float(abs(new.model_output).max()) if len(new.model_output) else 1.0)
    if new.additivity_error > tol * scale:
        failures.append(f"additivity: base + sum(SHAP) differs from the model output by "
                        f"{new.additivity_error:.2g} > {tol:g}")
    if base is not None:
        top_k = int(limits.get("top_k", DEFAULT_TOP_K))
        shift = rank_shift(imp, base.importance(), top_k)
        shift["baseline"] = baseline_label
        shift["baseline_importance"] = base.importance()
        metrics["shift"] = shift
        mrs = limits.get("max_rank_shift")
        if mrs is not None and shift["max_rank_shift"] > mrs:
            worst = max(shift["rank_shifts"].items(), key=lambda kv: abs(kv[1]))
            failures.append(f"rank shift: {worst[0]} moved {abs(worst[1])} places vs {baseline_label} "
                            f"(max {mrs:g})")
        mkt = limits.get("min_kendall_tau")
        if mkt is not None and shift["kendall_tau"] < mkt:
            failures.append(f"importance ranking changed: Kendall tau {shift['kendall_tau']:.2f} < {mkt:g}")
        mtc = limits.get("max_top_k_change")
        if mtc is not None and shift["top_k_change"] > mtc:
            failures.append(f"{shift['top_k_change']} new column(s) in the top {top_k}: "
                            f"{', '.join(shift['entered_top_k'])} (max {mtc:g})")
    top = ", ".join(f"{c} {v:.3g}" for c, v in list(imp.items())[:3])
    if failures:
        return GateResult("explain", False, metrics, "; ".join(failures))
    msg = f"{new.explainer} explainer, top: {top}"
    if "shift" in metrics:
        msg += f"; Kendall tau vs {baseline_label} {metrics['shift']['kendall_tau']:.2f}"
    return GateResult("explain", True, metrics, msg)


def explain_row(model: Any, spec: ModelSpec, df: pd.DataFrame, row: int) -> dict[str, Any]:
    """One prediction explained: each column's value and contribution."""
    from gitml.errors import UsageError

    if not -len(df) <= row < len(df):
        raise UsageError(f"--row {row}: the evaluation data has {len(df)} rows",
                         f"use 0..{len(df) - 1}")
    row = row % len(df)
    ex = explain(model, spec, df, rows=[row], budget_seconds=60.0)
    if not len(ex.values):
        from gitml.errors import GitMLError

        raise GitMLError("the explainer ran out of time on one row", "raise gates.explain.budget_seconds")
    contrib = dict(zip(ex.columns, ex.values[0].tolist(), strict=True))
    record = df.iloc[row]
    items = sorted(contrib.items(), key=lambda kv: -abs(kv[1]))
    pred = model.predict(df[ex.columns].iloc[[row]])[0]
    return {"row": row, "explainer": ex.explainer, "output": ex.output,
            "base_value": ex.base_value, "model_output": float(ex.model_output[0]),
            "prediction": pred.item() if hasattr(pred, "item") else pred,
            "actual": (record[spec.target].item() if hasattr(record[spec.target], "item")
                       else record[spec.target]),
            "additivity_error": ex.additivity_error,
            "contributions": [{"column": c, "value": (record[c].item() if hasattr(record[c], "item") else record[c]),
                               "shap": v} for c, v in items]}
