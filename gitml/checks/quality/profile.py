"""Profiles of a table: rows, per-column type family, null count, min/max, categories of
low-cardinality columns, robust centre/spread, outliers against a baseline, duplicate rows.

For Parquet files the profile comes from the footer where it suffices: row count, schema
and per-row-group statistics (min, max, null count) cost no data reads, so a 1 GB file is
checked in seconds. Columns are loaded only for what the footer cannot answer
(categories, outliers on a bounded sample of row groups, duplicates when the file is not
too large).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

ROBUST_Z = 3.5  # |0.6745 (x - median) / MAD| above this is an outlier (Iglewicz & Hoaglin)
IQR_K = 3.0  # ... or outside [Q1 - k IQR, Q3 + k IQR] when the MAD is zero
MAX_DUPLICATE_BYTES = 256 * 1024 * 1024  # duplicates need the whole table in memory


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
                    max_duplicate_bytes: int = MAX_DUPLICATE_BYTES) -> TableProfile:
    """The profile of a Parquet file from its footer, loading columns only when needed.

    Row count, schema, null counts and min/max come from row-group statistics; string
    columns are read dictionary-encoded for their categories; robust stats and outliers
    come from a bounded sample of whole row groups spread over the file; duplicates are
    counted only when ``check_duplicates`` (default: when the file is at most
    ``max_duplicate_bytes`` uncompressed).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise GitMLError(f"{path}: not a readable Parquet file: {str(e).splitlines()[0]}",
                         "is the file complete? re-add it or fix the writer") from e
    md = pf.metadata
    cols, need_minmax = _footer_columns(pf)
    loaded: set[str] = set()
    _read_missing_stats(pf, cols, need_minmax, loaded)
    _read_categories(path, pf, cols, max_categories, loaded)
    _sample_numeric(pf, cols, baseline, sample_rows, loaded)
    dups: int | None = None
    size = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    if check_duplicates or (check_duplicates is None and size <= max_duplicate_bytes):
        df = pf.read().to_pandas()
        loaded.update(cols)
        try:
            dups = int(df.duplicated().sum())
        except TypeError:
            dups = int(df.astype(str).duplicated().sum())
    return TableProfile(int(md.num_rows), cols, dups, "parquet-metadata", sorted(loaded))


def _footer_columns(pf: Any) -> tuple[dict[str, ColumnProfile], list[str]]:
    """Column profiles from the footer's row-group statistics, and the columns whose
    statistics are missing (they are read whole)."""
    md = pf.metadata
    # leaf column index of each top-level flat column
    leaf = {md.schema.column(i).path: i for i in range(md.num_columns)}
    cols: dict[str, ColumnProfile] = {}
    need_minmax: list[str] = []
    for f in pf.schema_arrow:
        cp = ColumnProfile(f.name, _family_of_arrow(f.type), str(f.type), 0)
        stats = _footer_stats(md, leaf.get(f.name), cp.family)
        if stats is None:
            need_minmax.append(f.name)
        else:
            cp.nulls, cp.min, cp.max = stats
        cols[f.name] = cp
    return cols, need_minmax


def _footer_stats(md: Any, idx: int | None, family: str) -> tuple[int, Any, Any] | None:
    """(nulls, min, max) of one column over all row groups; None when a group lacks them."""
    if idx is None:
        return None
    nulls = 0
    lo: Any = None
    hi: Any = None
    for rg in range(md.num_row_groups):
        st = md.row_group(rg).column(idx).statistics
        if st is None or not st.has_null_count:
            return None
        nulls += st.null_count
        if family not in ("int", "float", "datetime") or md.row_group(rg).num_rows <= st.null_count:
            continue
        if not st.has_min_max:
            return None
        mn, mx = _stat_value(st.min), _stat_value(st.max)
        if mn is None or mx is None:
            return None
        lo = mn if lo is None else min(lo, mn)
        hi = mx if hi is None else max(hi, mx)
    return int(nulls), lo, hi


def _read_missing_stats(pf: Any, cols: dict[str, ColumnProfile], names: list[str],
                        loaded: set[str]) -> None:
    import pyarrow.compute as pc

    for name in names:
        arr = pf.read(columns=[name]).column(name)
        loaded.add(name)
        cp = cols[name]
        cp.nulls = int(arr.null_count)
        if cp.family in ("int", "float", "datetime") and len(arr) > cp.nulls:
            mm = pc.min_max(arr)
            cp.min, cp.max = _stat_value(mm["min"].as_py()), _stat_value(mm["max"].as_py())


def _read_categories(path: Path, pf: Any, cols: dict[str, ColumnProfile], max_categories: int,
                     loaded: set[str]) -> None:
    """Categories of string/bool columns (dictionary-encoded read: cheap per distinct value)."""
    import pyarrow.parquet as pq

    str_cols = [n for n, c in cols.items() if c.family == "string"]
    pf_dict = pq.ParquetFile(path, read_dictionary=str_cols) if str_cols else pf
    for name, cp in cols.items():
        if cp.family in ("string", "bool"):
            loaded.add(name)
            cp.categories = _distinct_values(pf_dict, name, max_categories)


def _distinct_values(pf: Any, name: str, max_categories: int) -> list[str] | None:
    """The sorted distinct values of a column, or None past ``max_categories`` (read row
    group by row group, so a high-cardinality column such as ids stops early)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    distinct: set[str] = set()
    for rg in range(pf.metadata.num_row_groups):
        col = pf.read_row_group(rg, columns=[name]).column(name)
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
                return None
    return sorted(distinct)


def _sample_numeric(pf: Any, cols: dict[str, ColumnProfile], baseline: TableProfile | None,
                    sample_rows: int, loaded: set[str]) -> None:
    """Robust stats, outliers and out-of-range counts on a sample of row groups."""
    md = pf.metadata
    numeric = [n for n, c in cols.items() if c.family in ("int", "float", "datetime")]
    if not numeric or not md.num_rows:
        return
    table = pf.read_row_groups(_sample_row_groups(md, sample_rows), columns=numeric)
    loaded.update(numeric)
    for name in numeric:
        vals = _arrow_values(table.column(name))
        cp = cols[name]
        cp.median, cp.mad, cp.q1, cp.q3 = _robust_stats(vals)
        _measure_against(cp, vals, baseline)
    if table.num_rows < md.num_rows:
        # out-of-range on the whole file: load only the columns whose footer range
        # exceeds the baseline's (usually none)
        for name in numeric:
            _full_out_of_range(pf, cols[name], baseline)


def _full_out_of_range(pf: Any, cp: ColumnProfile, baseline: TableProfile | None) -> None:
    base = baseline.columns.get(cp.name) if baseline else None
    if base is None or base.min is None or base.max is None:
        return
    lo, hi = _num(base.min), _num(base.max)
    cur_lo, cur_hi = _num(cp.min), _num(cp.max)
    if lo is None or hi is None or cur_lo is None or cur_hi is None:
        return
    if cur_lo >= lo and cur_hi <= hi:
        cp.out_of_range = 0
        return
    v = _arrow_values(pf.read(columns=[cp.name]).column(cp.name))
    cp.out_of_range = int(((v < lo) | (v > hi)).sum())


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


