"""Turning a fitted model into a fast batch predictor over column arrays.

Requests arrive as columns (``dict[name, ndarray]``: object arrays of ``str``/None for
string inputs, float64 with NaN for numeric ones). ``pipe.predict(DataFrame)`` costs ~10 ms
for one row, almost all of it pandas and validation, so for pipelines whose steps we know
(ColumnTransformer of OneHotEncoder / StandardScaler / SimpleImputer / passthrough, then a
linear or any sklearn estimator) the steps are re-expressed on NumPy arrays. The result is
compared with ``pipe.predict`` / ``predict_proba`` on the bundle's smoke rows when loading;
any difference (or any step we do not know) falls back to the DataFrame path, so the fast
path is an optimisation that can never change an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from gitml.models.bundle import Bundle

Columns = dict[str, np.ndarray]
Step = Callable[[Columns, int], np.ndarray]


class BadInput(ValueError):
    """A request the model cannot take (unknown category where the encoder refuses, ...)."""


class Unsupported(Exception):
    """A step the fast path does not handle: use the DataFrame path."""


@dataclass
class Prediction:
    labels: np.ndarray           # (n,) predicted label (class or value)
    values: np.ndarray | None    # (n,) regression value or the positive class's score
    proba: np.ndarray | None     # (n, k) class probabilities


# column transformers ------------------------------------------------------------------

def _as_float(cols: list[np.ndarray]) -> np.ndarray:
    n = len(cols[0]) if cols else 0
    out = np.empty((n, len(cols)), dtype=np.float64)
    for i, c in enumerate(cols):
        out[:, i] = c
    return out


def _compile_matrix_step(t: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A numeric transformer on a float matrix."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if t == "passthrough" or t is None:
        return lambda x: x
    if type(t) is StandardScaler:
        mean = None if t.mean_ is None or not t.with_mean else np.asarray(t.mean_, dtype=np.float64)
        scale = None if t.scale_ is None or not t.with_std else np.asarray(t.scale_, dtype=np.float64)

        def scaler(x: np.ndarray) -> np.ndarray:
            if mean is not None:
                x = x - mean
            if scale is not None:
                x = x / scale
            return x
        return scaler
    if type(t) is SimpleImputer:
        stats = np.asarray(t.statistics_, dtype=np.float64)
        mv = t.missing_values
        if not (isinstance(mv, float) and mv != mv) or np.isnan(stats).any() or t.add_indicator:
            raise Unsupported("SimpleImputer variant")

        def impute(x: np.ndarray) -> np.ndarray:
            nan = np.isnan(x)
            if nan.any():
                x = np.where(nan, stats, x)
            return x
        return impute
    if type(t) is Pipeline:
        steps = [_compile_matrix_step(s) for _, s in t.steps]

        def chain(x: np.ndarray) -> np.ndarray:
            for s in steps:
                x = s(x)
            return x
        return chain
    raise Unsupported(type(t).__name__)


def _compile_onehot(t: Any, names: list[str]) -> Step:
    from sklearn.preprocessing import OneHotEncoder

    if type(t) is not OneHotEncoder or getattr(t, "_infrequent_enabled", False):
        raise Unsupported("OneHotEncoder variant")
    if t.handle_unknown not in ("ignore", "error") or t.drop_idx_ is not None:
        raise Unsupported("OneHotEncoder drop/unknown handling")
    maps: list[dict[Any, int]] = []
    widths = []
    offset = 0
    for cats in t.categories_:
        m: dict[Any, int] = {}
        for i, c in enumerate(cats.tolist()):
            if c is None or (isinstance(c, float) and c != c):
                m[None] = offset + i
            else:
                m[c] = offset + i
        maps.append(m)
        widths.append(len(cats))
        offset += len(cats)
    total = offset
    ignore = t.handle_unknown == "ignore"
    dtype = np.float64

    def onehot(cols: Columns, n: int) -> np.ndarray:
        out = np.zeros((n, total), dtype=dtype)
        flat = out.reshape(-1)
        base = np.arange(0, n * total, total) if n > 1 else 0
        for name, m in zip(names, maps, strict=True):
            col = cols[name]
            get = m.get
            if n == 1:
                j = get(col[0], -1)
                if j >= 0:
                    flat[j] = 1.0
                elif not ignore:
                    raise BadInput(f"column {name!r}: unknown category {col[0]!r}")
                continue
            arr = np.fromiter([get(v, -1) for v in col.tolist()], dtype=np.intp, count=n)
            ok = arr >= 0
            if ok.all():
                flat[base + arr] = 1.0
            else:
                if not ignore:
                    raise BadInput(f"column {name!r}: unknown category {col[~ok][0]!r}")
                flat[(base + arr)[ok]] = 1.0
        return out
    return onehot


def _compile_column_transformer(ct: Any, schema_names: list[str]) -> Step:
    parts: list[Step] = []
    feature_names = list(getattr(ct, "feature_names_in_", schema_names))
    for _name, trans, cols in ct.transformers_:
        if trans == "drop":
            continue
        if isinstance(cols, slice) or callable(cols):
            raise Unsupported("column selector")
        col_list = list(np.atleast_1d(cols).tolist())
        if col_list and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in col_list):
            col_list = [feature_names[int(c)] for c in col_list]
        if not col_list:
            continue
        if not all(isinstance(c, str) and c in schema_names for c in col_list):
            raise Unsupported("columns not in the input schema")
        names = [str(c) for c in col_list]
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder

        if type(trans) is OneHotEncoder:
            parts.append(_compile_onehot(trans, names))
            continue
        if type(trans) is Pipeline and type(trans.steps[-1][1]) is OneHotEncoder and len(trans.steps) == 1:
            parts.append(_compile_onehot(trans.steps[-1][1], names))
            continue
        fn = _compile_matrix_step(trans)

        def numeric(cols: Columns, n: int, names: list[str] = names,
                    fn: Callable[[np.ndarray], np.ndarray] = fn) -> np.ndarray:
            return fn(_as_float([cols[c] for c in names]))
        parts.append(numeric)

    def transform(cols: Columns, n: int) -> np.ndarray:
        return np.concatenate([p(cols, n) for p in parts], axis=1) if len(parts) > 1 else parts[0](cols, n)
    if not parts:
        raise Unsupported("empty ColumnTransformer")
    return transform


# final estimators ---------------------------------------------------------------------

def _final(est: Any, task: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]:
    """(labels, proba) from a feature matrix."""
    from sklearn.linear_model import LogisticRegression

    if task == "classification":
        classes = np.asarray(est.classes_)
        if type(est) is LogisticRegression and len(classes) == 2 and est.coef_.shape[0] == 1:
            coef = np.ascontiguousarray(est.coef_[0], dtype=np.float64)
            b = float(est.intercept_[0])

            def logreg(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
                z = x @ coef + b
                if not np.isfinite(z).all():  # what sklearn refuses ("Input X contains NaN")
                    raise BadInput("missing values reach the model, which cannot take them")
                proba = np.empty((len(z), 2))
                proba[:, 1] = 1.0 / (1.0 + np.exp(-z))
                proba[:, 0] = 1.0 - proba[:, 1]
                return classes[(z > 0).astype(np.intp)], proba
            return logreg
        if hasattr(est, "predict_proba"):
            def proba_est(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
                p = est.predict_proba(x)
                return est.predict(x), p
            return proba_est

    def plain(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return np.asarray(est.predict(x)), None
    return plain


# the predictor -----------------------------------------------------------------------

class Predictor:
    """``predict(columns, n) -> Prediction`` for one loaded model version."""

    def __init__(self, model: Any, bundle: Bundle) -> None:
        self.model = model
        self.bundle = bundle
        self.task = bundle.task
        self.names = bundle.input_names
        self.dtypes = {i.name: i.dtype for i in bundle.inputs}
        classes = bundle.classes
        self.classes = list(classes) if classes is not None else None
        pos = bundle.positive
        self.pos_index: int | None = None
        if self.classes:
            self.pos_index = self.classes.index(pos) if pos in self.classes else len(self.classes) - 1
        self.mode = "dataframe"
        self._fast: Callable[[Columns, int], tuple[np.ndarray, np.ndarray | None]] | None = None
        self.parity_error: str | None = None

    # paths
    def compile(self) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        m = self.model
        if self.bundle.flavor == "onnx":  # onnxruntime takes the request columns as they are
            self._fast = lambda cols, n: m.run(cols)
            return
        if type(m) is not Pipeline or len(m.steps) < 2:
            raise Unsupported(type(m).__name__)
        first = m.steps[0][1]
        if type(first) is not ColumnTransformer:
            raise Unsupported("first step is not a ColumnTransformer")
        transform = _compile_column_transformer(first, self.names)
        middle = [_compile_matrix_step(s) for _, s in m.steps[1:-1]]
        final = _final(m.steps[-1][1], self.task)

        def fast(cols: Columns, n: int) -> tuple[np.ndarray, np.ndarray | None]:
            x = transform(cols, n)
            for s in middle:
                x = s(x)
            return final(np.ascontiguousarray(x, dtype=np.float64))
        self._fast = fast

    def frame(self, cols: Columns) -> pd.DataFrame:
        import pandas as pd

        data: dict[str, Any] = {}
        for name in self.names:
            c = cols[name]
            dt = self.dtypes[name]
            if dt == "int64" and not np.isnan(c).any():
                data[name] = c.astype(np.int64)
            elif dt == "bool" and c.dtype != object:
                data[name] = c.astype(bool)
            else:
                data[name] = c
        return pd.DataFrame(data, columns=self.names)

    def _slow(self, cols: Columns, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        df = self.frame(cols)
        try:
            if self.task == "classification" and hasattr(self.model, "predict_proba"):
                p = self.model.predict_proba(df)
                return np.asarray(self.model.predict(df)), np.asarray(p)
            return np.asarray(self.model.predict(df)), None
        except ValueError as e:
            raise BadInput(str(e)[:300]) from e

    def predict(self, cols: Columns, n: int) -> Prediction:
        raw = self._fast(cols, n) if self._fast is not None else self._slow(cols, n)
        labels, proba = raw
        values: np.ndarray | None = None
        if self.task == "regression":
            values = np.asarray(labels, dtype=np.float64)
        elif proba is not None and self.pos_index is not None:
            values = proba[:, self.pos_index]
        return Prediction(np.asarray(labels), values, proba)

    # loading
    def prepare(self, smoke: Columns, n: int) -> None:
        """Try the fast path and keep it only if it agrees with the model on ``smoke``."""
        try:
            self.compile()
        except Unsupported as e:
            self.parity_error = f"fast path unavailable: {e}"
            self._fast = None
            return
        except Exception as e:  # an unexpected fitted attribute layout: stay correct
            self.parity_error = f"fast path failed to compile: {type(e).__name__}: {e}"
            self._fast = None
            return
        if n == 0:
            self._fast = None
            self.parity_error = "no smoke rows to check the fast path against"
            return
        try:
            fast_labels, fast_proba = self._fast(smoke, n)  # type: ignore[misc]
            slow_labels, slow_proba = self._slow(smoke, n)
            same = bool(np.array_equal(np.asarray(fast_labels).astype(str),
                                       np.asarray(slow_labels).astype(str)))
            if same and slow_proba is not None:
                same = fast_proba is not None and bool(np.allclose(fast_proba, slow_proba,
                                                                   rtol=1e-7, atol=1e-9))
            if same and self.task == "regression":
                same = bool(np.allclose(np.asarray(fast_labels, dtype=float),
                                        np.asarray(slow_labels, dtype=float), rtol=1e-7, atol=1e-9))
        except Exception as e:
            same = False
            self.parity_error = f"fast path raised {type(e).__name__}: {e}"
        if same:
            self.mode = "numpy"
        else:
            self.parity_error = self.parity_error or "fast path disagrees with the model"
            self._fast = None
