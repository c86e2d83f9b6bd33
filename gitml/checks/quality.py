"""Data quality: a tabular data set against its previous version and declared rules.

A data set is summarised into a :class:`TableProfile` (rows, per-column type family,
null count, min/max, categories of low-cardinality columns, robust centre/spread,
duplicate rows). Two profiles and the rules give a list of :class:`Finding` — each with a
severity and a suggested fix — and the gate fails when a finding is an ``error`` and the
rules say ``block = true`` (the default).

For Parquet files the profile comes from the footer where it suffices: row count, schema
and per-row-group statistics (min, max, null count) cost no data reads, so a 1 GB file is
checked in seconds. Columns are loaded only for what the footer cannot answer
(categories, outliers on a bounded sample of row groups, duplicates when the file is not
too large).

Rules (``[data."<path>".rules]`` in the committed config)::

    min_rows = 1000                 max_rows = 10_000_000
    max_row_change = 0.5            # relative change against the previous version
    max_null_rate = 0.01            # every column; or per column below
    max_duplicate_rate = 0.0
    allow_new_columns = false       allow_removed_columns = false
    allow_type_changes = false      allow_new_categories = true
    allow_out_of_range = true       max_outlier_rate = 0.01
    required = ["age", "label"]     # columns that must exist
    block = true
    [data."<path>".rules.columns.age]
    min = 0    max = 120    max_null_rate = 0.0    categories = [...]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.checks.results import GateResult
from gitml.errors import ConfigError, GitMLError, UsageError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from gitml.repo import MLRepo

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}
ROBUST_Z = 3.5  # |0.6745 (x - median) / MAD| above this is an outlier (Iglewicz & Hoaglin)
IQR_K = 3.0  # ... or outside [Q1 - k IQR, Q3 + k IQR] when the MAD is zero


# ---------------------------------------------------------------------------- rules
@dataclass
class ColumnRules:
    min: float | None = None
    max: float | None = None
    max_null_rate: float | None = None
    categories: list[str] | None = None


@dataclass
class QualityRules:
    min_rows: int | None = None
    max_rows: int | None = None
    max_row_change: float | None = None
    max_null_rate: float | None = None
    max_duplicate_rate: float | None = None
    allow_new_columns: bool = True
    allow_removed_columns: bool = False
    allow_type_changes: bool = False
    allow_new_categories: bool = True
    allow_out_of_range: bool = True
    max_outlier_rate: float | None = None
    required: list[str] = field(default_factory=list)
    check_duplicates: bool | None = None  # None: only when the data is small enough
    max_categories: int = 50
    sample_rows: int = 200_000
    block: bool = True
    columns: dict[str, ColumnRules] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "rules") -> QualityRules:
        if not data:
            return cls()
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown rule(s) {', '.join(unknown)}",
                              f"use any of: {', '.join(sorted(known))}")
        kwargs: dict[str, Any] = {}
        for k, v in data.items():
            if k == "columns":
                if not isinstance(v, Mapping):
                    raise ConfigError(f"{where}.columns must be a table of column rules")
                cols: dict[str, ColumnRules] = {}
                ckeys = set(ColumnRules.__dataclass_fields__)
                for name, spec in v.items():
                    if not isinstance(spec, Mapping) or set(spec) - ckeys:
                        raise ConfigError(f"{where}.columns.{name}: unknown or malformed rules",
                                          f"use any of: {', '.join(sorted(ckeys))}")
                    for ck, cv in spec.items():
                        ok = (isinstance(cv, list) if ck == "categories" else
                              isinstance(cv, int | float) and not isinstance(cv, bool))
                        if not ok:
                            raise ConfigError(f"{where}.columns.{name}.{ck} = {cv!r} has the wrong type",
                                              "min/max/max_null_rate are numbers, categories a list")
                    cols[str(name)] = ColumnRules(**dict(spec))
                kwargs["columns"] = cols
            else:
                kwargs[k] = v
        for k in ("allow_new_columns", "allow_removed_columns", "allow_type_changes",
                  "allow_new_categories", "allow_out_of_range", "block"):
            if k in kwargs and not isinstance(kwargs[k], bool):
                raise ConfigError(f"{where}.{k} = {kwargs[k]!r} must be true or false")
        for k in ("max_categories", "sample_rows"):
            if k in kwargs and (not isinstance(kwargs[k], int) or isinstance(kwargs[k], bool)
                                or kwargs[k] < 1):
                raise ConfigError(f"{where}.{k} = {kwargs[k]!r} must be a positive integer")
        if "check_duplicates" in kwargs and not isinstance(kwargs["check_duplicates"], bool):
            raise ConfigError(f"{where}.check_duplicates must be true or false")
        rules = cls(**kwargs)
        rules.validate(where)
        return rules

    def validate(self, where: str = "rules") -> None:
        for name in ("max_null_rate", "max_duplicate_rate", "max_outlier_rate"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and 0 <= v <= 1):
                raise ConfigError(f"{where}.{name} = {v!r} is not a rate in [0, 1]",
                                  f"use e.g. {name} = 0.01")
        for name in ("min_rows", "max_rows"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError(f"{where}.{name} = {v!r} is not a non-negative integer")
        if self.max_row_change is not None and not (isinstance(self.max_row_change, int | float)
                                                    and self.max_row_change >= 0):
            raise ConfigError(f"{where}.max_row_change = {self.max_row_change!r} must be >= 0",
                              "use e.g. 0.5 for ±50%")
        if not isinstance(self.required, list):
            raise ConfigError(f"{where}.required must be a list of column names")


# ---------------------------------------------------------------------------- profiles
@dataclass
class ColumnProfile:
    name: str
    family: str  # int | float | bool | string | datetime | other
    type: str
    nulls: int
    min: float | str | None = None
    max: float | str | None = None
    categories: list[str] | None = None  # None: too many distinct values or not categorical
    median: float | None = None
    mad: float | None = None
    q1: float | None = None
    q3: float | None = None
    outliers: int | None = None  # against the baseline's robust stats (or its own)
    outliers_sampled: int | None = None  # rows the outlier count comes from
    out_of_range: int | None = None  # values outside the baseline's [min, max]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TableProfile:
    rows: int
    columns: dict[str, ColumnProfile]
    duplicates: int | None = None
    source: str = "dataframe"  # dataframe | parquet-metadata
    loaded_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "duplicates": self.duplicates, "source": self.source,
                "loaded_columns": self.loaded_columns,
                "columns": {k: v.to_dict() for k, v in self.columns.items()}}


def _family_of_dtype(dtype: Any) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) \
            or pd.api.types.is_object_dtype(dtype):
        return "string"
    return "other"


def _family_of_arrow(t: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _family_of_arrow(t.value_type)
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) \
            or pa.types.is_large_binary(t):
        return "string"
    if hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t):
        return "string"
    return "other"


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _robust_stats(values: Any) -> tuple[float | None, float | None, float | None, float | None]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None, None, None, None
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    mad = float(np.median(np.abs(v - med)))
    return float(med), mad, float(q1), float(q3)


def _outlier_mask(values: Any, base: ColumnProfile) -> Any:
    """Robust z (median/MAD) beyond 3.5; IQR fences when the MAD is zero."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if base.median is None:
        return np.zeros(v.shape, dtype=bool)
    if base.mad and base.mad > 0:
        return np.abs(0.6745 * (v - base.median) / base.mad) > ROBUST_Z
    if base.q1 is not None and base.q3 is not None and base.q3 > base.q1:
        iqr = base.q3 - base.q1
        return (v < base.q1 - IQR_K * iqr) | (v > base.q3 + IQR_K * iqr)
    return np.zeros(v.shape, dtype=bool)  # a constant column: new values are range findings


def _numeric_values(s: pd.Series) -> Any:
    import numpy as np
    import pandas as pd

    s = s.dropna()
    if pd.api.types.is_datetime64_any_dtype(s):
        # seconds since the epoch, whatever the unit and time zone (as Parquet stats)
        epoch = pd.Timestamp(0, tz=getattr(s.dt, "tz", None))
        return ((s - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)
    if pd.api.types.is_bool_dtype(s):
        return np.empty(0)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def profile_frame(df: pd.DataFrame, baseline: TableProfile | None = None, *,
                  max_categories: int = 50, check_duplicates: bool = True) -> TableProfile:
    """The profile of an in-memory table; outliers and out-of-range counts are measured
    against ``baseline`` (the previous version) when given, else against itself."""
    import numpy as np

    cols: dict[str, ColumnProfile] = {}
    for name in df.columns:
        s = df[name]
        fam = _family_of_dtype(s.dtype)
        cp = ColumnProfile(str(name), fam, str(s.dtype), int(s.isna().sum()))
        if fam in ("int", "float", "datetime"):
            vals = _numeric_values(s)
            vals = vals[np.isfinite(vals)]
            if vals.size:
                cp.min, cp.max = float(vals.min()), float(vals.max())
                cp.median, cp.mad, cp.q1, cp.q3 = _robust_stats(vals)
            _measure_against(cp, vals, baseline)
        elif fam in ("string", "bool"):
            nonnull = s.dropna()
            try:
                uniques = nonnull.unique()
            except TypeError:  # unhashable cells (lists, dicts): compare their text
                uniques = nonnull.astype(str).unique()
            if len(uniques) <= max_categories:
                cp.categories = sorted(str(u) for u in uniques)
        cols[str(name)] = cp
    dups = None
    if check_duplicates and len(df):
        try:
            dups = int(df.duplicated().sum())
        except TypeError:  # unhashable cells (lists, dicts)
            dups = int(df.astype(str).duplicated().sum())
    return TableProfile(len(df), cols, dups, "dataframe", [str(c) for c in df.columns])


def _measure_against(cp: ColumnProfile, vals: Any, baseline: TableProfile | None) -> None:
    base = baseline.columns.get(cp.name) if baseline else None
    if base is None or base.family not in ("int", "float", "datetime"):
        base = cp
    cp.outliers = int(_outlier_mask(vals, base).sum()) if len(vals) else 0
    cp.outliers_sampled = len(vals)
    if base is not cp and base.min is not None and base.max is not None and len(vals):
        lo, hi = _num(base.min), _num(base.max)
        if lo is not None and hi is not None:
            cp.out_of_range = int(((vals < lo) | (vals > hi)).sum())


def profile_parquet(path: Path | str, baseline: TableProfile | None = None, *,
                    max_categories: int = 50, sample_rows: int = 200_000,
                    check_duplicates: bool | None = None,
                    max_duplicate_bytes: int = 256 * 1024 * 1024) -> TableProfile:
    """The profile of a Parquet file from its footer, loading columns only when needed.

    Row count, schema, null counts and min/max come from row-group statistics; string
    columns are read dictionary-encoded for their categories; robust stats and outliers
    come from a bounded sample of whole row groups spread over the file; duplicates are
    counted only when ``check_duplicates`` (default: when the file is at most
    ``max_duplicate_bytes`` uncompressed).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise GitMLError(f"{path}: not a readable Parquet file: {str(e).splitlines()[0]}",
                         "is the file complete? re-add it or fix the writer") from e
    md = pf.metadata
    schema = pf.schema_arrow
    n_rg = md.num_row_groups
    # leaf column index of each top-level flat column
    leaf = {md.schema.column(i).path: i for i in range(md.num_columns)}
    cols: dict[str, ColumnProfile] = {}
    need_minmax: list[str] = []
    for f in schema:
        fam = _family_of_arrow(f.type)
        cp = ColumnProfile(f.name, fam, str(f.type), 0)
        idx = leaf.get(f.name)
        nulls = 0
        lo: Any = None
        hi: Any = None
        stats_ok = idx is not None
        for rg in range(n_rg):
            if not stats_ok or idx is None:
                break
            st = md.row_group(rg).column(idx).statistics
            if st is None or not st.has_null_count:
                stats_ok = False
                break
            nulls += st.null_count
            if fam in ("int", "float", "datetime") and md.row_group(rg).num_rows > st.null_count:
                if not st.has_min_max:
                    stats_ok = False
                    break
                mn, mx = _stat_value(st.min), _stat_value(st.max)
                if mn is None or mx is None:
                    stats_ok = False
                    break
                lo = mn if lo is None else min(lo, mn)
                hi = mx if hi is None else max(hi, mx)
        if stats_ok:
            cp.nulls = int(nulls)
            cp.min, cp.max = lo, hi
        else:
            need_minmax.append(f.name)
        cols[f.name] = cp
    loaded: set[str] = set()

    # columns whose footer statistics are missing: read them whole
    for name in need_minmax:
        arr = pf.read(columns=[name]).column(name)
        loaded.add(name)
        cp = cols[name]
        cp.nulls = int(arr.null_count)
        if cp.family in ("int", "float", "datetime") and len(arr) > cp.nulls:
            mm = pc.min_max(arr)
            cp.min, cp.max = _stat_value(mm["min"].as_py()), _stat_value(mm["max"].as_py())

    # categories of string/bool columns (dictionary-encoded read: cheap per distinct value)
    str_cols = [n for n, c in cols.items() if c.family == "string"]
    pf_dict = pq.ParquetFile(path, read_dictionary=str_cols) if str_cols else pf
    for name, cp in cols.items():
        if cp.family not in ("string", "bool"):
            continue
        loaded.add(name)
        distinct: set[str] = set()
        too_many = False
        # row group by row group, so a high-cardinality column (ids, free text) stops early
        for rg in range(n_rg):
            col = pf_dict.read_row_group(rg, columns=[name]).column(name)
            for chunk in col.chunks:
                if pa.types.is_dictionary(chunk.type):
                    values = chunk.dictionary
                    if len(values) > max_categories:
                        # a dictionary may hold unused entries: count the used ones
                        values = values.take(pc.unique(chunk.indices).drop_null())
                else:
                    values = pc.unique(chunk)
                distinct.update(str(v) for v in values.to_pylist() if v is not None)
                if len(distinct) > max_categories:
                    too_many = True
                    break
            if too_many:
                break
        cp.categories = None if too_many else sorted(distinct)

    # robust stats, outliers and out-of-range counts on a sample of row groups
    numeric = [n for n, c in cols.items() if c.family in ("int", "float", "datetime")]
    if numeric and md.num_rows:
        groups = _sample_row_groups(md, sample_rows)
        table = pf.read_row_groups(groups, columns=numeric)
        loaded.update(numeric)
        for name in numeric:
            arr = table.column(name)
            vals = _arrow_values(arr)
            cp = cols[name]
            cp.median, cp.mad, cp.q1, cp.q3 = _robust_stats(vals)
            _measure_against(cp, vals, baseline)
        if table.num_rows < md.num_rows:
            # out-of-range on the whole file: load only the columns whose footer range
            # exceeds the baseline's (usually none)
            for name in numeric:
                cp = cols[name]
                base = baseline.columns.get(name) if baseline else None
                if base is None or base.min is None or base.max is None:
                    continue
                lo, hi = _num(base.min), _num(base.max)
                cur_lo, cur_hi = _num(cp.min), _num(cp.max)
                if lo is None or hi is None or cur_lo is None or cur_hi is None:
                    continue
                if cur_lo >= lo and cur_hi <= hi:
                    cp.out_of_range = 0
                    continue
                v = _arrow_values(pf.read(columns=[name]).column(name))
                cp.out_of_range = int(((v < lo) | (v > hi)).sum())

    dups: int | None = None
    size = sum(md.row_group(i).total_byte_size for i in range(n_rg))
    if check_duplicates or (check_duplicates is None and size <= max_duplicate_bytes):
        df = pf.read().to_pandas()
        loaded.update(cols)
        try:
            dups = int(df.duplicated().sum())
        except TypeError:
            dups = int(df.astype(str).duplicated().sum())
    return TableProfile(int(md.num_rows), cols, dups, "parquet-metadata", sorted(loaded))


def _stat_value(v: Any) -> float | None:
    """A footer statistic as a number; datetimes and dates as seconds since the epoch."""
    import datetime as dt

    if isinstance(v, dt.datetime):
        return v.timestamp() if v.tzinfo else v.replace(tzinfo=dt.UTC).timestamp()
    if isinstance(v, dt.date):
        return float(dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC).timestamp())
    return _num(v)


def _arrow_values(arr: Any) -> Any:
    """Finite float values of a numeric/temporal Arrow column (temporal: epoch seconds)."""
    import numpy as np
    import pyarrow as pa

    t = arr.type
    if pa.types.is_timestamp(t):
        scale = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
        v = np.asarray(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=float) / scale
    elif pa.types.is_date32(t):
        v = np.asarray(arr.cast(pa.int32()).to_numpy(zero_copy_only=False), dtype=float) * 86400.0
    elif pa.types.is_date64(t):
        v = np.asarray(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=float) / 1e3
    else:
        v = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=float)
    return v[np.isfinite(v)]


def _sample_row_groups(md: Any, sample_rows: int) -> list[int]:
    n = md.num_row_groups
    if md.num_rows <= sample_rows:
        return list(range(n))
    per = max(1, md.num_rows // max(1, n))
    k = max(1, min(n, math.ceil(sample_rows / per)))
    return sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)}) if k > 1 else [n // 2]


# ---------------------------------------------------------------------------- findings
@dataclass
class Finding:
    check: str
    severity: str
    message: str
    fix: str
    column: str | None = None
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(current: TableProfile, previous: TableProfile | None,
            rules: QualityRules | Mapping[str, Any] | None = None) -> list[Finding]:
    """Every finding for ``current`` against the previous version and the rules."""
    r = rules if isinstance(rules, QualityRules) else QualityRules.from_mapping(rules)
    out: list[Finding] = []
    add = out.append
    n = current.rows

    # rows
    if r.min_rows is not None and n < r.min_rows:
        add(Finding("row_count", ERROR, f"{n} rows < min_rows = {r.min_rows}",
                    "add the missing data or lower rules.min_rows", None, n))
    if r.max_rows is not None and n > r.max_rows:
        add(Finding("row_count", ERROR, f"{n} rows > max_rows = {r.max_rows}",
                    "drop the extra rows or raise rules.max_rows", None, n))
    if n == 0:
        add(Finding("row_count", ERROR, "the data set has no rows",
                    "regenerate the data; an empty table is almost always a bug", None, 0))
    if previous is not None and previous.rows:
        change = (n - previous.rows) / previous.rows
        sev = INFO
        if r.max_row_change is not None and abs(change) > r.max_row_change:
            sev = ERROR
        elif abs(change) > 0.5:
            sev = WARNING
        if change != 0:
            add(Finding("row_count", sev,
                        f"rows {previous.rows} -> {n} ({change:+.1%})",
                        "check the filter/join that produced it" if change < 0 else
                        "expected growth? otherwise look for duplicated input", None, change))

    # schema
    for col in r.required:
        if col not in current.columns:
            add(Finding("schema", ERROR, f"required column '{col}' is missing",
                        "restore the column or remove it from rules.required", col))
    if previous is not None:
        for col in previous.columns:
            if col not in current.columns and col not in r.required:
                add(Finding("schema", INFO if r.allow_removed_columns else ERROR,
                            f"column '{col}' was removed",
                            "restore it, or set rules.allow_removed_columns = true", col))
        for col in current.columns:
            if col not in previous.columns:
                add(Finding("schema", INFO if r.allow_new_columns else ERROR,
                            f"new column '{col}' ({current.columns[col].type})",
                            "drop it, or set rules.allow_new_columns = true", col))
        for col, cp in current.columns.items():
            pp = previous.columns.get(col)
            if pp is None or pp.family == cp.family:
                continue
            widening = {pp.family, cp.family} == {"int", "float"}
            sev = INFO if r.allow_type_changes else (WARNING if widening else ERROR)
            fix = ("cast back to int (an int column becomes float when it gains nulls: "
                   "impute them or use a nullable Int64)" if widening and cp.family == "float"
                   else f"cast '{col}' back to {pp.family} ({pp.type})")
            add(Finding("schema", sev, f"column '{col}' changed type {pp.type} -> {cp.type}",
                        fix, col))

    # nulls
    for col, cp in current.columns.items():
        rate = cp.nulls / n if n else 0.0
        crule = r.columns.get(col)
        limit = crule.max_null_rate if crule and crule.max_null_rate is not None else r.max_null_rate
        pp = previous.columns.get(col) if previous else None
        prev_rate = (pp.nulls / previous.rows) if (pp and previous and previous.rows) else None
        fix = ("impute (median/mode) or drop the rows with missing " + col
               if cp.family != "string" else f"impute a placeholder category or drop the rows missing {col}")
        if limit is not None and rate > limit:
            add(Finding("nulls", ERROR, f"'{col}' null rate {rate:.2%} > {limit:.2%}", fix, col, rate))
        elif prev_rate is not None and rate > max(2 * prev_rate, prev_rate + 0.01):
            add(Finding("nulls", WARNING, f"'{col}' null rate {prev_rate:.2%} -> {rate:.2%}", fix,
                        col, rate))

    # duplicates
    if current.duplicates is not None and n:
        rate = current.duplicates / n
        prev_rate = (previous.duplicates / previous.rows
                     if previous and previous.duplicates is not None and previous.rows else None)
        fix = "drop duplicates (df.drop_duplicates()) or fix the join that repeats rows"
        if r.max_duplicate_rate is not None and rate > r.max_duplicate_rate:
            add(Finding("duplicates", ERROR,
                        f"{current.duplicates} duplicate rows ({rate:.2%} > {r.max_duplicate_rate:.2%})",
                        fix, None, rate))
        elif current.duplicates and (prev_rate is None or rate > prev_rate + 1e-12):
            # many tables legitimately repeat rows (few categorical features): a finding
            # worth a warning only when the share grows against the previous version
            add(Finding("duplicates", INFO if prev_rate is None else WARNING,
                        f"{current.duplicates} duplicate rows ({rate:.2%}"
                        + (f", was {prev_rate:.2%})" if prev_rate is not None else ")"),
                        fix, None, rate))

    # ranges: declared and previously seen
    for col, cp in current.columns.items():
        crule = r.columns.get(col)
        lo, hi = _num(cp.min), _num(cp.max)
        if crule and lo is not None and hi is not None:
            if crule.min is not None and lo < crule.min:
                add(Finding("range", ERROR, f"'{col}' min {lo:g} < declared min {crule.min:g}",
                            f"clip or drop rows with {col} < {crule.min:g}", col, lo))
            if crule.max is not None and hi > crule.max:
                add(Finding("range", ERROR, f"'{col}' max {hi:g} > declared max {crule.max:g}",
                            f"clip or drop rows with {col} > {crule.max:g}", col, hi))
        pp = previous.columns.get(col) if previous else None
        if pp is None or pp.family != cp.family or lo is None or hi is None:
            continue
        plo, phi = _num(pp.min), _num(pp.max)
        if plo is None or phi is None or (lo >= plo and hi <= phi):
            continue
        count = f"{cp.out_of_range} values " if cp.out_of_range else "values "
        add(Finding("range", INFO if r.allow_out_of_range else ERROR,
                    f"'{col}': {count}outside the previously seen range [{plo:g}, {phi:g}] "
                    f"(now [{lo:g}, {hi:g}])",
                    "check units/encoding; clip to the seen range or set "
                    "rules.allow_out_of_range = true if real", col,
                    float(cp.out_of_range) if cp.out_of_range is not None else None))

    # categories
    for col, cp in current.columns.items():
        crule = r.columns.get(col)
        if cp.categories is None:
            continue
        if crule and crule.categories is not None:
            bad = sorted(set(cp.categories) - {str(c) for c in crule.categories})
            if bad:
                add(Finding("categories", ERROR,
                            f"'{col}' has undeclared categories {_short(bad)}",
                            "map them to declared ones or extend rules.columns."
                            f"{col}.categories", col, len(bad)))
        pp = previous.columns.get(col) if previous else None
        if pp is None or pp.categories is None:
            continue
        new = sorted(set(cp.categories) - set(pp.categories))
        if new:
            add(Finding("categories", INFO if r.allow_new_categories else ERROR,
                        f"'{col}' has new categories {_short(new)}",
                        "map them to known categories (or 'other') before the model sees "
                        "them, or retrain", col, len(new)))

    # outliers
    for col, cp in current.columns.items():
        if not cp.outliers or not cp.outliers_sampled:
            continue
        rate = cp.outliers / cp.outliers_sampled
        pp = previous.columns.get(col) if previous else None
        prev_rate = (pp.outliers / pp.outliers_sampled
                     if pp and pp.outliers is not None and pp.outliers_sampled else None)
        sampled = "" if cp.outliers_sampled >= n else f" in a sample of {cp.outliers_sampled}"
        msg = f"'{col}': {cp.outliers} outliers{sampled} ({rate:.2%}, robust z > {ROBUST_Z})"
        fix = "winsorize/clip, or drop the rows if they are errors"
        if r.max_outlier_rate is not None and rate > r.max_outlier_rate:
            add(Finding("outliers", ERROR, msg + f" > {r.max_outlier_rate:.2%}", fix, col, rate))
        elif prev_rate is not None and rate > max(2 * prev_rate, prev_rate + 0.005):
            add(Finding("outliers", WARNING, msg + f", was {prev_rate:.2%}", fix, col, rate))
    out.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.check, f.column or ""))
    return out


def _short(values: Sequence[str], k: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:k])
    return f"[{shown}{', …' if len(values) > k else ''}]"


# ---------------------------------------------------------------------------- the gate
def gate(current: pd.DataFrame | TableProfile, previous: pd.DataFrame | TableProfile | None = None,
         rules: QualityRules | Mapping[str, Any] | None = None, *,
         config: Mapping[str, Any] | None = None, data: str | None = None,
         name: str | None = None, repo: MLRepo | None = None,
         model: str | None = None) -> GateResult:
    """The data-quality gate: fails when an ``error`` finding exists and rules.block.

    Pure given ``current`` / ``previous`` (DataFrames or profiles) and ``rules``. As the
    runner calls it, ``config`` holds ``gates.quality`` of the model and, when that is
    empty, the rules come from ``[data."<data>".rules]`` of the repository config.
    """
    if rules is None and config:
        rules = QualityRules.from_mapping(config, f"models.{model}.gates.quality" if model
                                          else "gates.quality")
    if rules is None and repo is not None and data:
        rules = rules_for(repo.config.data, data)
    r = rules if isinstance(rules, QualityRules) else QualityRules.from_mapping(rules)
    name = data or name or "data"
    prev_p = previous if (previous is None or isinstance(previous, TableProfile)) else \
        profile_frame(previous, max_categories=r.max_categories,
                      check_duplicates=r.check_duplicates is not False)
    cur_p = current if isinstance(current, TableProfile) else \
        profile_frame(current, prev_p, max_categories=r.max_categories,
                      check_duplicates=r.check_duplicates is not False)
    findings = compare(cur_p, prev_p, r)
    errors = [f for f in findings if f.severity == ERROR]
    warnings_ = [f for f in findings if f.severity == WARNING]
    if errors:
        message = f"{name}: {len(errors)} error(s): " + "; ".join(f.message for f in errors[:3])
    elif warnings_:
        message = f"{name}: ok with {len(warnings_)} warning(s): " + "; ".join(
            f.message for f in warnings_[:3])
    else:
        message = f"{name}: {cur_p.rows} rows, {len(cur_p.columns)} columns, no problems"
    metrics = {
        "data": name,
        "rows": cur_p.rows,
        "previous_rows": previous_rows(prev_p),
        "n_errors": len(errors),
        "n_warnings": len(warnings_),
        "findings": [f.to_dict() for f in findings],
        "source": cur_p.source,
        "loaded_columns": cur_p.loaded_columns,
    }
    return GateResult(gate="quality", passed=not errors, metrics=metrics, message=message,
                      blocking=r.block)


def previous_rows(p: TableProfile | None) -> int | None:
    return None if p is None else p.rows


# ---------------------------------------------------------------------------- adapters
def profile_path(path: Path, baseline: TableProfile | None, rules: QualityRules,
                 name: str | None = None) -> TableProfile:
    """Profile a local table file: Parquet from its footer, anything else via pandas.
    ``name`` (the logical path) decides the format of extension-less store objects."""
    label = name or str(path)
    if not path.exists():
        raise UsageError(f"{label}: no such file", "check the path")
    if Path(label).suffix.lower() in (".parquet", ".pq"):
        return profile_parquet(path, baseline, max_categories=rules.max_categories,
                               sample_rows=rules.sample_rows,
                               check_duplicates=rules.check_duplicates)
    from gitml.checks.drift import read_frame

    return profile_frame(read_frame(path, name=label), baseline, max_categories=rules.max_categories,
                         check_duplicates=rules.check_duplicates is not False)


def profile_at(repo: MLRepo | None, path: str, rev: str | None, baseline: TableProfile | None,
               rules: QualityRules) -> TableProfile:
    """Profile the table ``path`` at ``rev`` (None: the work tree)."""
    from gitml.checks.drift import locate_table, read_frame_bytes

    local, data = locate_table(repo, path, rev)
    if local is not None:
        return profile_path(local, baseline, rules, name=path)
    assert data is not None
    return profile_frame(read_frame_bytes(data, path), baseline, max_categories=rules.max_categories,
                         check_duplicates=rules.check_duplicates is not False)


def rules_for(config_data: Mapping[str, Any], path: str) -> QualityRules:
    """The rules declared for ``path`` under ``[data."<path>".rules]`` (none: defaults)."""
    data = config_data.get("data", {})
    if not isinstance(data, Mapping):
        raise ConfigError("[data] must be a table of data sets", 'use [data."path".rules]')
    entry = data.get(path, {})
    if not isinstance(entry, Mapping):
        raise ConfigError(f'[data."{path}"] must be a table', 'use [data."path".rules]')
    return QualityRules.from_mapping(entry.get("rules"), f'data."{path}".rules')


def validate_path(repo: MLRepo | None, path: str, previous_rev: str | None,
                  rules: QualityRules | Mapping[str, Any] | None = None,
                  current_rev: str | None = None) -> GateResult:
    """Validate the table ``path`` at ``current_rev`` (None: the work tree) against its
    version at ``previous_rev`` (None or absent there: no previous version) and the rules."""
    r = rules if isinstance(rules, QualityRules) else QualityRules.from_mapping(rules)
    prev: TableProfile | None = None
    if previous_rev is not None and repo is not None:
        try:
            prev = profile_at(repo, path, previous_rev, None, r)
        except UsageError:
            prev = None  # a new data set: nothing to compare with
    cur = profile_at(repo, path, current_rev, prev, r)
    return gate(cur, prev, r, name=path)
