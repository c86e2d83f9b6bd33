"""Summaries of tabular artifacts (Parquet, CSV) and what changed between two of them.

Parquet summaries come from the file footer only (schema, row count, per-column
min/max/null counts from row-group statistics): no data pages are read. CSV has no
metadata, so it is streamed once in record batches with pyarrow (never held whole).
pyarrow is imported inside the functions: commands that never summarise data do not pay
for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PARQUET_EXT = (".parquet", ".pq", ".parq")
CSV_EXT = (".csv", ".tsv", ".csv.gz", ".tsv.gz")


def kind_of(name: str, path: Path | None = None) -> str | None:
    """'parquet', 'csv' or None, from the artifact name (and the file's magic bytes)."""
    low = name.lower()
    if low.endswith(".gitml"):
        low = low[: -len(".gitml")]
    if low.endswith(PARQUET_EXT):
        return "parquet"
    if low.endswith(CSV_EXT):
        return "csv"
    if path is not None:
        try:
            with open(path, "rb") as f:
                if f.read(4) == b"PAR1":
                    return "parquet"
        except OSError:
            return None
    return None


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def summarize(path: Path, name: str, max_csv_bytes: int | None = None) -> dict[str, Any] | None:
    """Schema, rows and per-column stats of a Parquet/CSV file; None if not tabular.
    A CSV larger than ``max_csv_bytes`` gets its schema only (from the first block)."""
    kind = kind_of(name, path)
    if kind == "parquet":
        return _parquet(path)
    if kind == "csv":
        schema_only = max_csv_bytes is not None and path.stat().st_size > max_csv_bytes
        return _csv(path, tsv=".tsv" in name.lower(), schema_only=schema_only)
    return None


def _parquet(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    md = pf.metadata
    schema = pf.schema_arrow
    cols: dict[str, dict[str, Any]] = {f.name: {"type": str(f.type)} for f in schema}
    # Row-group statistics are per leaf column; top-level columns map one to one.
    names = [md.schema.column(i).path for i in range(md.num_columns)]
    for i, cname in enumerate(names):
        if cname not in cols:
            continue
        nulls = 0
        mins: list[Any] = []
        maxs: list[Any] = []
        complete = True
        for rg in range(md.num_row_groups):
            st = md.row_group(rg).column(i).statistics
            if st is None:
                complete = False
                continue
            if st.has_null_count:
                nulls += st.null_count
            else:
                complete = False
            if st.has_min_max:
                mins.append(st.min)
                maxs.append(st.max)
        c = cols[cname]
        if complete:
            c["nulls"] = nulls
        try:
            if mins:
                c["min"], c["max"] = _scalar(min(mins)), _scalar(max(maxs))
        except TypeError:
            pass
    return {"format": "parquet", "rows": md.num_rows, "columns": cols, "row_groups": md.num_row_groups,
            "bytes": path.stat().st_size}


def _csv(path: Path, tsv: bool, schema_only: bool = False) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    parse = csv.ParseOptions(delimiter="\t" if tsv else ",")
    # empty fields count as missing in string columns too, as pandas reads them
    reader = csv.open_csv(path, parse_options=parse,
                          convert_options=csv.ConvertOptions(strings_can_be_null=True))
    schema = reader.schema
    cols: dict[str, dict[str, Any]] = {f.name: {"type": str(f.type), "nulls": 0} for f in schema}
    if schema_only:
        return {"format": "csv", "rows": None, "columns": {f.name: {"type": str(f.type)} for f in schema},
                "bytes": path.stat().st_size, "note": "large file: schema only"}
    rows = 0
    for batch in reader:
        rows += batch.num_rows
        for f, arr in zip(schema, batch.columns, strict=False):
            c = cols[f.name]
            c["nulls"] += arr.null_count
            if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_string(f.type) \
                    or pa.types.is_temporal(f.type):
                try:
                    mm = pc.min_max(arr).as_py()
                except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                    continue
                if mm["min"] is not None:
                    c["min"] = _scalar(mm["min"]) if "min" not in c else _scalar(min(c["min"], mm["min"]))
                    c["max"] = _scalar(mm["max"]) if "max" not in c else _scalar(max(c["max"], mm["max"]))
    return {"format": "csv", "rows": rows, "columns": cols, "bytes": path.stat().st_size}


def diff_summaries(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    """Rows delta, columns added/removed/retyped, and columns whose stats changed."""
    a = a or {"rows": 0, "columns": {}}
    b = b or {"rows": 0, "columns": {}}
    ca, cb = a["columns"], b["columns"]
    changed = {}
    for name in sorted(set(ca) & set(cb)):
        diffs = {k: [ca[name].get(k), cb[name].get(k)] for k in ("type", "nulls", "min", "max")
                 if ca[name].get(k) != cb[name].get(k)}
        if diffs:
            changed[name] = diffs
    return {
        "rows": [a.get("rows"), b.get("rows")],
        "rows_delta": (None if a.get("rows") is None or b.get("rows") is None
                       else b["rows"] - a["rows"]),
        "columns_added": sorted(set(cb) - set(ca)),
        "columns_removed": sorted(set(ca) - set(cb)),
        "columns_changed": changed,
    }


def format_summary(s: dict[str, Any]) -> list[str]:
    rows = "? (large file, not counted)" if s["rows"] is None else s["rows"]
    lines = [f"{s['format']}: {rows} rows, {len(s['columns'])} columns"]
    for name, c in s["columns"].items():
        extra = []
        if "nulls" in c:
            extra.append(f"nulls={c['nulls']}")
        if "min" in c:
            extra.append(f"min={c['min']!s:.40} max={c['max']!s:.40}")
        lines.append(f"  {name}: {c['type']}" + (f"  ({', '.join(extra)})" if extra else ""))
    return lines


def format_diff(d: dict[str, Any]) -> list[str]:
    a, b = d["rows"]
    delta = "?" if d["rows_delta"] is None else f"{d['rows_delta']:+d}"
    lines = [f"rows: {a} -> {b} ({delta})"]
    if d["columns_added"]:
        lines.append("columns added: " + ", ".join(d["columns_added"]))
    if d["columns_removed"]:
        lines.append("columns removed: " + ", ".join(d["columns_removed"]))
    for name, ch in d["columns_changed"].items():
        lines.append(f"  {name}: " + "; ".join(f"{k} {v[0]} -> {v[1]}" for k, v in ch.items()))
    if not (d["columns_added"] or d["columns_removed"] or d["columns_changed"]) and d["rows_delta"] == 0:
        lines.append("schema and column statistics unchanged (values may differ)")
    return lines
