"""Data drift: two-sample tests per column, a multiple-testing correction, a data-set verdict.

Each column gets the test that fits its type and size:

* numerical (many distinct values): the two-sample Kolmogorov–Smirnov test, or the
  k-sample Anderson–Darling test when either sample is small (more power in the tails
  where KS is weak); the effect size is the Wasserstein distance divided by the
  reference's standard deviation (or IQR/1.349 when that is more robust);
* categorical (strings, booleans, and numbers with few distinct values): Pearson's χ² on
  the 2×k contingency table *reference vs current* — both samples are random, unlike the
  goodness-of-fit χ² that treats the reference frequencies as exact and so over-fires on
  null splits. Categories whose expected count is below ``min_expected`` are merged into
  one "other" cell so the χ² approximation holds; missing values are their own category.
  The effect size is the Jensen–Shannon distance (base 2, in [0, 1]).

The p-values of all tested columns are adjusted together (Holm by default, which controls
the family-wise error rate; or Benjamini–Hochberg). A column drifts when its adjusted
p-value is below ``alpha`` (and its effect size is at least ``min_effect``, which guards
against trivially small but "significant" differences on millions of rows). The data set
drifts when the share of drifted columns exceeds ``max_drift_share`` (default 0: any
drifted column), so on two random halves of one data set the alarm fires with
probability at most about ``alpha``.

:func:`gate` is pure (DataFrames in, :class:`GateResult` out); :func:`drift_between` reads
the two versions through :mod:`gitml.models.tables`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gitml.checks.results import GateResult
from gitml.errors import ConfigError, GitMLError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from gitml.repo import MLRepo

Correction = Literal["holm", "bh", "none"]

OTHER = "__other__"
NULL = "__null__"


@dataclass
class DriftConfig:
    """Settings of the drift gate; every field can be set in the committed config."""

    alpha: float = 0.05
    correction: Correction = "holm"
    max_drift_share: float = 0.0
    min_effect: float = 0.0
    columns: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    max_categories: int = 10  # numbers with at most this many distinct values are categorical
    min_expected: float = 5.0  # χ² cells expected below this are merged into "other"
    small_n: int = 200  # below this many values on either side: Anderson–Darling
    max_rows: int = 200_000  # larger samples are subsampled (seeded) for speed
    seed: int = 0
    block: bool = True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "drift") -> DriftConfig:
        if not data:
            return cls()
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known - {"enabled", "reference"})
        if unknown:
            raise ConfigError(f"{where}: unknown drift setting(s) {', '.join(unknown)}",
                              f"use any of: {', '.join(sorted(known))}")
        kwargs = {k: v for k, v in data.items() if k in known}
        for k, v in kwargs.items():
            if k in ("columns", "exclude"):
                if not (isinstance(v, list) and all(isinstance(c, str) for c in v)):
                    raise ConfigError(f"{where}.{k} must be a list of column names",
                                      f'e.g. {k} = ["age", "sex"]')
            elif k == "correction":
                continue
            elif not _type_ok(v, type(getattr(cls(), k))):
                raise ConfigError(f"{where}.{k} = {v!r} has the wrong type",
                                  f"expected a {type(getattr(cls(), k)).__name__}")
        cfg = cls(**kwargs)
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "drift") -> None:
        if not 0 < float(self.alpha) < 1:
            raise ConfigError(f"{where}.alpha = {self.alpha} is not between 0 and 1",
                              "use e.g. alpha = 0.05")
        if self.correction not in ("holm", "bh", "none"):
            raise ConfigError(f"{where}.correction = {self.correction!r} is unknown",
                              "use 'holm', 'bh' or 'none'")
        if not 0 <= float(self.max_drift_share) < 1:
            raise ConfigError(f"{where}.max_drift_share = {self.max_drift_share} is not in [0, 1)",
                              "use e.g. 0.0 (any drifted column) or 0.3")
        if float(self.min_effect) < 0:
            raise ConfigError(f"{where}.min_effect must be >= 0")
        if int(self.max_categories) < 1 or float(self.min_expected) <= 0:
            raise ConfigError(f"{where}: max_categories and min_expected must be positive")


def _type_ok(value: Any, expected: type) -> bool:
    """TOML types against a field's default type (an int is fine where a float is)."""
    if expected is bool:
        return isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


@dataclass
class FeatureDrift:
    column: str
    kind: str  # numerical | categorical | skipped
    test: str  # ks | anderson | chi2 | none
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    effect: float | None  # normalised Wasserstein or Jensen–Shannon distance
    effect_name: str
    drifted: bool
    n_reference: int
    n_current: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftReport:
    features: list[FeatureDrift]
    alpha: float
    correction: str
    max_drift_share: float

    @property
    def tested(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.p_value is not None]

    @property
    def n_drifted(self) -> int:
        return sum(f.drifted for f in self.features)

    @property
    def drift_share(self) -> float:
        n = len(self.tested)
        return self.n_drifted / n if n else 0.0

    @property
    def dataset_drift(self) -> bool:
        return self.n_drifted > 0 and self.drift_share > self.max_drift_share

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "n_drifted": self.n_drifted,
            "n_tested": len(self.tested),
            "alpha": self.alpha,
            "correction": self.correction,
            "max_drift_share": self.max_drift_share,
            "features": [f.to_dict() for f in self.features],
        }


# ---------------------------------------------------------------------------- corrections
def adjust_pvalues(pvalues: Sequence[float], method: Correction = "holm") -> list[float]:
    """Adjusted p-values (Holm step-down or Benjamini–Hochberg step-up), same order."""
    m = len(pvalues)
    if m == 0 or method == "none":
        return [min(1.0, float(p)) for p in pvalues]
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
            adjusted[i] = running
    elif method == "bh":
        running = 1.0
        for rank in range(m - 1, -1, -1):
            i = order[rank]
            running = min(running, float(pvalues[i]) * m / (rank + 1))
            adjusted[i] = min(1.0, running)
    else:
        raise ConfigError(f"unknown correction {method!r}", "use 'holm', 'bh' or 'none'")
    return adjusted


# ---------------------------------------------------------------------------- column tests
def column_kind(ref: pd.Series, cur: pd.Series, max_categories: int,
                both: pd.Series | None = None,
                counts: tuple[int, int] | None = None) -> str:
    """'numerical', 'categorical' or 'skipped:<why>' for a pair of columns.

    ``counts`` = (distinct non-missing values, non-missing values) when already known."""
    import pandas as pd

    if ref.dtype != cur.dtype:
        num_ref = pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref)
        num_cur = pd.api.types.is_numeric_dtype(cur) and not pd.api.types.is_bool_dtype(cur)
        if num_ref != num_cur:
            return "skipped:type changed"
    s = pd.concat([ref, cur], ignore_index=True) if both is None else both
    n_unique, n = counts if counts is not None else (int(s.nunique(dropna=True)), int(s.notna().sum()))
    if n == 0:
        return "skipped:all values missing"
    if pd.api.types.is_bool_dtype(s):
        return "categorical"
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        return "categorical" if n_unique <= max_categories else "numerical"
    if n_unique <= max_categories:
        return "categorical"
    if n_unique > 0.5 * n and n_unique > 50:
        return "skipped:identifier-like (almost every value distinct)"
    return "categorical"


def _robust_scale(x: np.ndarray) -> float:
    import numpy as np

    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    q75, q25 = np.percentile(x, [75, 25]) if x.size else (0.0, 0.0)
    iqr = float(q75 - q25) / 1.349
    scale = min(v for v in (sd, iqr) if v > 0) if (sd > 0 or iqr > 0) else 0.0
    return scale


def numerical_test(ref: np.ndarray, cur: np.ndarray, small_n: int) -> tuple[str, float, float, float]:
    """(test, statistic, p-value, normalised Wasserstein distance) for two numeric samples."""
    import numpy as np
    from scipy import stats

    if min(ref.size, cur.size) < small_n and np.unique(np.concatenate([ref, cur])).size > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # p-values are floored/capped to [0.001, 0.25]
            res = stats.anderson_ksamp([ref, cur])
        test, statistic, p = "anderson", float(res.statistic), float(res.pvalue)
    else:
        # exact p-values for small samples; the asymptotic ones are accurate (and much
        # cheaper) once both samples are large
        method = "exact" if ref.size * cur.size <= 250_000 else "asymp"
        res_ks = stats.ks_2samp(ref, cur, method=method)
        test, statistic, p = "ks", float(res_ks.statistic), float(res_ks.pvalue)
    scale = _robust_scale(ref)
    w = float(stats.wasserstein_distance(ref, cur))
    effect = w / scale if scale > 0 else (0.0 if w == 0 else math.inf)
    return test, statistic, min(1.0, max(0.0, p)), effect


def categorical_table(ref: pd.Series, cur: pd.Series, min_expected: float,
                      both: pd.Series | None = None,
                      factorized: tuple[np.ndarray, Any] | None = None) -> tuple[np.ndarray, list[str]]:
    """The 2×k table of counts (rows: reference, current) with rare categories merged.

    Missing values are a category of their own. A category is rare when its expected
    count in the smaller sample is below ``min_expected``; rare ones are merged into
    one "other" cell, which is itself folded into the smallest category when still small.
    """
    import numpy as np
    import pandas as pd

    if both is None:
        both = pd.concat([ref, cur], ignore_index=True)
    codes, uniques = factorized if factorized is not None else _factorize(both)
    k = len(uniques)
    n_r = len(ref)
    counts = np.vstack([np.bincount(codes[:n_r], minlength=k),
                        np.bincount(codes[n_r:], minlength=k)]).astype(float)
    names = [NULL if pd.isna(u) else str(u) for u in uniques]
    n_small = counts.sum(axis=1).min()
    share_small = n_small / counts.sum()
    expected_small = counts.sum(axis=0) * share_small
    rare = expected_small < min_expected
    if rare.any() and (~rare).any():
        other = counts[:, rare].sum(axis=1)
        counts = counts[:, ~rare]
        names = [n for n, r in zip(names, rare, strict=True) if not r]
        if other.sum() * share_small >= min_expected or counts.shape[1] < 2:
            counts = np.column_stack([counts, other])
            names.append(OTHER)
        else:
            j = int(np.argmin(counts.sum(axis=0)))
            counts[:, j] += other
            names[j] = f"{names[j]}+{OTHER}"
    return counts, names


def chi2_two_sample(table: np.ndarray) -> tuple[float, float]:
    """Pearson's χ² test of homogeneity on a 2×k table: (statistic, p-value)."""
    import numpy as np
    from scipy.special import chdtrc

    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(chdtrc(table.shape[1] - 1, statistic))


def _factorize(both: pd.Series) -> tuple[np.ndarray, Any]:
    """Codes (missing values get a code of their own) and the distinct values."""
    import pandas as pd

    try:
        return pd.factorize(both, use_na_sentinel=False)
    except TypeError:  # unhashable or mixed values: compare their text
        return pd.factorize(both.astype(str), use_na_sentinel=False)


def categorical_test(ref: pd.Series, cur: pd.Series, min_expected: float,
                     both: pd.Series | None = None,
                     factorized: tuple[np.ndarray, Any] | None = None) -> tuple[float, float, float, int]:
    """(χ² statistic, p-value, Jensen–Shannon distance, categories) of the 2×k table."""
    table, cats = categorical_table(ref, cur, min_expected, both, factorized)
    if table.shape[1] < 2:
        return 0.0, 1.0, 0.0, table.shape[1]
    statistic, p = chi2_two_sample(table)
    return statistic, p, jensen_shannon(table[0], table[1]), len(cats)


def jensen_shannon(a: np.ndarray, b: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two count vectors."""
    import numpy as np

    p = a / a.sum()
    q = b / b.sum()
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    js = float(np.sqrt(max(0.0, 0.5 * (kl_p + kl_q))))
    return js if np.isfinite(js) else 0.0


# ---------------------------------------------------------------------------- the report
def compute_drift(reference: pd.DataFrame, current: pd.DataFrame,
                  config: DriftConfig | Mapping[str, Any] | None = None) -> DriftReport:
    """Test every shared column; adjust the p-values together; decide per column."""
    import numpy as np
    import pandas as pd

    cfg = config if isinstance(config, DriftConfig) else DriftConfig.from_mapping(config)
    cfg.validate()
    if reference.empty or current.empty:
        which = "reference" if reference.empty else "current"
        raise GitMLError(f"drift: the {which} data set has no rows",
                         "compare against a revision where the data has rows")
    columns = list(cfg.columns) if cfg.columns else [c for c in reference.columns]
    missing = [c for c in columns if c not in reference.columns or c not in current.columns]
    if cfg.columns and missing:
        raise ConfigError(f"drift.columns: column(s) {', '.join(map(str, missing))} not in both data sets",
                          "fix the list or the data")
    rng = np.random.default_rng(cfg.seed)

    def sample(df: pd.DataFrame) -> pd.DataFrame:
        if len(df) <= cfg.max_rows:
            return df
        idx = rng.choice(len(df), size=cfg.max_rows, replace=False)
        return df.iloc[np.sort(idx)]

    ref_df, cur_df = sample(reference), sample(current)
    shared = [c for c in columns if c in ref_df.columns and c in cur_df.columns
              and c not in cfg.exclude]
    combined = pd.concat([ref_df[shared], cur_df[shared]], ignore_index=True)
    features = [_test_column(col, ref_df, cur_df, combined, cfg) for col in columns
                if col not in cfg.exclude]
    tested = [f for f in features if f.p_value is not None]
    adjusted = adjust_pvalues([f.p_value for f in tested if f.p_value is not None], cfg.correction)
    for f, pa in zip(tested, adjusted, strict=True):
        f.p_adjusted = pa
        f.drifted = pa < cfg.alpha and (f.effect is None or f.effect >= cfg.min_effect)
    return DriftReport(features, float(cfg.alpha), cfg.correction, float(cfg.max_drift_share))


def _skipped(name: str, n_ref: int, n_cur: int, why: str) -> FeatureDrift:
    return FeatureDrift(name, "skipped", "none", None, None, None, None, "", False, n_ref, n_cur, why)


def _test_column(col: Any, ref_df: pd.DataFrame, cur_df: pd.DataFrame, combined: pd.DataFrame,
                 cfg: DriftConfig) -> FeatureDrift:
    """The drift test of one column (p-values are adjusted afterwards, all together)."""
    import numpy as np
    import pandas as pd

    name = str(col)
    if col not in ref_df.columns or col not in cur_df.columns:
        where = "reference" if col not in ref_df.columns else "current"
        return _skipped(name, 0, 0, f"column missing from the {where} data")
    r, c = ref_df[col], cur_df[col]
    both = combined[col] if r.dtype == c.dtype else pd.concat([r, c], ignore_index=True)
    codes, uniques = _factorize(both)
    null_codes = [i for i, u in enumerate(uniques) if pd.isna(u)]
    n_missing = int(np.isin(codes, null_codes).sum()) if null_codes else 0
    n_distinct = len(uniques) - len(null_codes)
    kind = column_kind(r, c, cfg.max_categories, both, (n_distinct, len(both) - n_missing))
    if kind.startswith("skipped"):
        return _skipped(name, int(r.notna().sum()), int(c.notna().sum()), kind.split(":", 1)[1])
    if kind == "numerical":
        return _numerical_column(name, r, c, cfg)
    stat, p, eff, k = categorical_test(r, c, cfg.min_expected, both, (codes, uniques))
    n_cats = len(uniques)
    note = f"{n_cats} categories, rare ones merged into {k} cells" if k < n_cats else ""
    return FeatureDrift(name, "categorical", "chi2", stat, p, None, eff, "jensen_shannon", False,
                        len(r), len(c), note)


def _numerical_column(name: str, r: pd.Series, c: pd.Series, cfg: DriftConfig) -> FeatureDrift:
    import numpy as np

    rv, cv = _as_float(r), _as_float(c)
    if rv.size == 0 or cv.size == 0:
        return _skipped(name, int(rv.size), int(cv.size), "no non-missing values on one side")
    test, stat, p, eff = numerical_test(rv, cv, cfg.small_n)
    note = ""
    miss_r, miss_c = len(r) - rv.size, len(c) - cv.size
    if miss_r or miss_c:
        # a change in how often values are missing is drift too: a 2×2 χ² on the
        # missing indicator, combined with the distribution test (Bonferroni)
        _, p_miss = chi2_two_sample(np.array([[miss_r, rv.size], [miss_c, cv.size]], float))
        note = f"missing {miss_r / len(r):.1%} -> {miss_c / len(c):.1%} (p {p_miss:.2g})"
        if p_miss < p:
            test = f"{test}+missing"
        p = min(1.0, 2 * min(p, p_miss))
    return FeatureDrift(name, "numerical", test, stat, p, None, eff, "wasserstein_norm", False,
                        int(rv.size), int(cv.size), note)


def _as_float(s: pd.Series) -> np.ndarray:
    import numpy as np
    import pandas as pd

    s = s.dropna()
    if pd.api.types.is_datetime64_any_dtype(s):
        epoch = pd.Timestamp(0, tz=getattr(s.dt, "tz", None))
        return ((s - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)
    arr: np.ndarray = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    out: np.ndarray = arr[np.isfinite(arr)]
    return out


def gate(reference_df: pd.DataFrame, current_df: pd.DataFrame,
         config: DriftConfig | Mapping[str, Any] | None = None, *,
         model: str | None = None) -> GateResult:
    """The drift gate: fails when the data set drifts (see the module docstring).
    ``model`` only names the config key in error messages."""
    where = f"models.{model}.gates.drift" if model else "drift"
    cfg = config if isinstance(config, DriftConfig) else DriftConfig.from_mapping(config, where)
    report = compute_drift(reference_df, current_df, cfg)
    drifted = [f.column for f in report.features if f.drifted]
    if report.dataset_drift:
        worst = sorted((f for f in report.features if f.drifted), key=lambda f: f.p_adjusted or 0.0)
        detail = ", ".join(f"{f.column} ({f.test} p_adj={f.p_adjusted:.2g})" for f in worst[:5])
        message = (f"data drift in {len(drifted)} of {len(report.tested)} columns "
                   f"(share {report.drift_share:.0%} > {report.max_drift_share:.0%}): {detail}")
    elif drifted:
        message = (f"{len(drifted)} of {len(report.tested)} columns drifted "
                   f"(share {report.drift_share:.0%} ≤ {report.max_drift_share:.0%} allowed)")
    else:
        message = f"no drift in {len(report.tested)} columns at alpha={report.alpha:g} ({report.correction})"
    return GateResult(gate="drift", passed=not report.dataset_drift, metrics=report.to_dict(),
                      message=message, blocking=cfg.block)


# ---------------------------------------------------------------------------- adapters
def drift_between(repo: MLRepo, data: str, reference_rev: str, current: str | None,
                  config: DriftConfig | Mapping[str, Any] | None = None) -> GateResult:
    """Drift of ``data`` between a reference revision and a current path or revision.

    ``current`` is a revision, a path to a table file, or None for the work-tree ``data``.
    """
    from gitml.models.tables import read_frame, read_table

    ref = read_table(repo, data, reference_rev)
    if current is not None and Path(current).is_file():
        cur = read_frame(Path(current))
    else:
        cur = read_table(repo, data, current)
    return gate(ref, cur, config)
