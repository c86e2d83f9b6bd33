"""LIME explanations of one prediction, and how far they agree with SHAP's.

LIME (``lime.lime_tabular``) fits a weighted linear model to the model's answers on
perturbations of the row; SHAP attributes the output exactly (for trees and linear
models). They explain different things (LIME the local slope of P(positive), SHAP the
raw output's deviation from the average), so their magnitudes are not comparable: what is
compared is the ranking of columns by absolute weight (the top-k overlap and Kendall's
tau) and, for the columns both put in their top k, whether they push the same way.

Categorical columns are label-encoded for LIME (it samples them from their training
frequencies) and decoded back before the model sees them, so the model always gets the
frame it was trained on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitml.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from gitml.models.spec import ModelSpec

DEFAULT_SAMPLES = 2000
DEFAULT_TOP_K = 5


class _Codec:
    """Raw frame <-> the float matrix LIME works on (categories as their codes)."""

    def __init__(self, df: pd.DataFrame, columns: list[str]) -> None:
        import pandas as pd

        self.columns = columns
        self.dtypes = df[columns].dtypes
        self.categories: dict[int, list[Any]] = {}
        for j, c in enumerate(columns):
            s = df[c]
            if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
                self.categories[j] = list(pd.unique(s.astype(object)))

    def encode(self, frame: pd.DataFrame) -> Any:
        import numpy as np

        out = np.empty((len(frame), len(self.columns)), dtype=float)
        for j, c in enumerate(self.columns):
            if j in self.categories:
                lookup = {v: i for i, v in enumerate(self.categories[j])}
                out[:, j] = [lookup.get(v, 0) for v in frame[c].astype(object)]
            else:
                out[:, j] = frame[c].to_numpy(dtype=float)
        return out

    def decode(self, arr: Any) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        data: dict[str, Any] = {}
        for j, c in enumerate(self.columns):
            if j in self.categories:
                values = np.asarray(self.categories[j], dtype=object)
                idx = np.clip(np.rint(arr[:, j]).astype(int), 0, len(values) - 1)
                data[c] = pd.Series(values[idx]).astype(self.dtypes[c])
            else:
                data[c] = pd.Series(arr[:, j]).astype(self.dtypes[c])
        return pd.DataFrame(data)


def explain_row_lime(model: Any, spec: ModelSpec, df: pd.DataFrame, row: int, *,
                     num_samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """LIME's weight for every column of one row, largest first."""
    import numpy as np
    from lime.lime_tabular import LimeTabularExplainer

    from gitml.checks.evaluate import feature_columns

    if not -len(df) <= row < len(df):
        raise UsageError(f"--row {row}: the evaluation data has {len(df)} rows", f"use 0..{len(df) - 1}")
    row = row % len(df)
    cols = feature_columns(model, spec, df)
    codec = _Codec(df, cols)
    train = codec.encode(df)
    regression = spec.task == "regression"
    pos = 1
    if not regression:
        classes = list(getattr(model, "classes_", []))
        pos = classes.index(spec.positive) if spec.positive in classes else len(classes) - 1

    def predict(arr: Any) -> Any:
        frame = codec.decode(np.asarray(arr, dtype=float))
        if regression:
            return np.asarray(model.predict(frame), dtype=float)
        return np.asarray(model.predict_proba(frame), dtype=float)

    explainer = LimeTabularExplainer(
        train, mode="regression" if regression else "classification", feature_names=cols,
        categorical_features=sorted(codec.categories),
        categorical_names={j: [str(v) for v in vals] for j, vals in codec.categories.items()},
        discretize_continuous=True, random_state=seed)
    exp = explainer.explain_instance(train[row], predict, num_features=len(cols),
                                     labels=None if regression else (pos,), num_samples=num_samples)
    label = 1 if regression else pos
    weights = dict(exp.as_map()[label])
    rules = dict(exp.as_list(label=label))
    record = df.iloc[row]
    contributions = []
    for j in sorted(weights, key=lambda j: -abs(weights[j])):
        c = cols[j]
        v = record[c]
        rule = next((r for r in rules if c in r), c)
        contributions.append({"column": c, "value": v.item() if hasattr(v, "item") else v,
                              "lime": float(weights[j]), "rule": rule})
    return {"row": row, "explainer": "lime", "output": "predict" if regression else "predict_proba",
            "intercept": float(np.asarray(exp.intercept[label]).reshape(-1)[0]),
            "local_prediction": float(np.asarray(exp.local_pred).reshape(-1)[0]),
            "score": float(exp.score), "samples": num_samples, "contributions": contributions}


def agreement(shap_contrib: dict[str, float], lime_contrib: dict[str, float],
              k: int = DEFAULT_TOP_K) -> dict[str, Any]:
    """Top-k overlap, Kendall's tau of |weights| over shared columns, and sign agreement."""
    from scipy.stats import kendalltau

    cols = sorted(set(shap_contrib) & set(lime_contrib))
    k = min(k, len(cols))
    top_s = sorted(cols, key=lambda c: -abs(shap_contrib[c]))[:k]
    top_l = sorted(cols, key=lambda c: -abs(lime_contrib[c]))[:k]
    both = [c for c in top_s if c in top_l]
    same_sign = [c for c in both if (shap_contrib[c] > 0) == (lime_contrib[c] > 0)]
    tau = None
    if len(cols) >= 2:
        res = kendalltau([abs(shap_contrib[c]) for c in cols], [abs(lime_contrib[c]) for c in cols])
        tau = None if res.statistic != res.statistic else float(res.statistic)  # NaN: constant ranks
    return {"k": k, "top_shap": top_s, "top_lime": top_l, "shared": both,
            "overlap": len(both) / k if k else None, "same_sign": same_sign,
            "sign_agreement": len(same_sign) / len(both) if both else None, "kendall_tau": tau}
