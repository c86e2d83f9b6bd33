"""Data-quality gate on a perturbed copy of a real data set, from DataFrames and from
Parquet footers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gitml.checks import quality
from gitml.checks.quality import QualityRules, compare, gate, profile_frame, profile_parquet
from gitml.errors import ConfigError


@pytest.fixture(scope="module")
def arrests() -> pd.DataFrame:
    from sklego.datasets import load_arrests

    return load_arrests(as_frame=True)


def _perturb(df: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    bad = df.copy()
    bad["age"] = bad["age"].astype(float)
    bad.loc[bad.sample(frac=0.05, random_state=1).index, "age"] = np.nan  # nulls (and int->float)
    bad.loc[bad.index[:20], "checks"] = 99  # out of range / outliers
    bad.loc[bad.index[20:30], "colour"] = "Unknown"  # a new category
    bad = pd.concat([bad, bad.iloc[100:300]], ignore_index=True)  # duplicate rows
    bad = bad.drop(columns=["employed"])  # removed column
    bad["note"] = rng.integers(0, 3, len(bad)).astype(str)  # new column
    bad["year"] = bad["year"].astype(str)  # retyped
    return bad


def _by(findings: list[dict], check: str, column: str | None = None) -> list[dict]:
    return [f for f in findings if f["check"] == check and (column is None or f["column"] == column)]


def test_clean_new_version_passes(arrests: pd.DataFrame) -> None:
    prev, cur = arrests.iloc[:2600], arrests.iloc[2600:]
    res = gate(cur, prev, None)
    errors = [f for f in res.metrics["findings"] if f["severity"] == "error"]
    assert res.passed, res.message
    assert not errors


def test_perturbed_copy_findings(arrests: pd.DataFrame) -> None:
    bad = _perturb(arrests)
    rules = {"max_null_rate": 0.01, "min_rows": 1000, "allow_new_columns": False,
             "allow_new_categories": False, "max_duplicate_rate": 0.0,
             "columns": {"checks": {"min": 0, "max": 10}}}
    res = gate(bad, arrests, rules, name="data/arrests.parquet")
    f = res.metrics["findings"]
    assert not res.passed and res.blocking
    assert _by(f, "nulls", "age")[0]["severity"] == "error"
    assert "impute" in _by(f, "nulls", "age")[0]["fix"]
    assert _by(f, "schema", "employed")[0]["severity"] == "error"  # removed
    assert _by(f, "schema", "note")[0]["severity"] == "error"  # new, not allowed
    retyped = _by(f, "schema", "year")[0]
    assert "cast" in retyped["fix"] and retyped["severity"] == "error"
    age_type = _by(f, "schema", "age")[0]
    assert age_type["severity"] == "warning" and "impute" in age_type["fix"]  # int -> float
    dup = _by(f, "duplicates")[0]
    assert dup["severity"] == "error" and "drop" in dup["fix"] and dup["value"] > 0.03
    assert _by(f, "categories", "colour")[0]["severity"] == "error"
    assert "'Unknown'" in _by(f, "categories", "colour")[0]["message"]
    rng_f = _by(f, "range", "checks")
    assert any(x["severity"] == "error" and "declared max" in x["message"] for x in rng_f)
    assert any("previously seen range" in x["message"] and x["value"] == 20 for x in rng_f)
    found = quality.compare(profile_frame(bad, profile_frame(arrests)), profile_frame(arrests),
                            {"max_outlier_rate": 0.001})
    out = _by([x.to_dict() for x in found], "outliers", "checks")
    assert out and out[0]["severity"] == "error" and "winsorize" in out[0]["fix"]
    # without rules the same data gives warnings / infos but only structural errors
    res2 = gate(bad, arrests, None)
    sev = {(x["check"], x["column"]): x["severity"] for x in res2.metrics["findings"]}
    assert sev[("schema", "note")] == "info" and sev[("nulls", "age")] == "warning"
    assert sev[("schema", "employed")] == "error"
    # block = false: reported, not blocking
    res3 = gate(bad, arrests, {**rules, "block": False})
    assert not res3.passed and not res3.blocks


def test_parquet_footer_profile_matches_dataframe(tmp_path: Path, arrests: pd.DataFrame) -> None:
    bad = _perturb(arrests)
    p_prev, p_cur = tmp_path / "prev.parquet", tmp_path / "cur.parquet"
    arrests.to_parquet(p_prev, row_group_size=1000)
    bad.to_parquet(p_cur, row_group_size=1000)
    prev = profile_parquet(p_prev)
    cur = profile_parquet(p_cur, prev)
    ref_cur = profile_frame(bad, profile_frame(arrests))
    assert cur.rows == ref_cur.rows and cur.duplicates == ref_cur.duplicates
    for name, cp in ref_cur.columns.items():
        got = cur.columns[name]
        assert got.family == cp.family and got.nulls == cp.nulls, name
        if cp.family in ("int", "float"):
            assert got.min == cp.min and got.max == cp.max
            assert got.out_of_range == cp.out_of_range
        if cp.categories is not None:
            assert got.categories == cp.categories
    fa = {(f.check, f.column, f.severity) for f in compare(cur, prev, None)}
    fb = {(f.check, f.column, f.severity) for f in compare(ref_cur, profile_frame(arrests), None)}
    assert fa == fb


def test_large_parquet_validated_in_seconds(tmp_path: Path) -> None:
    """~290 MB of float/int/string columns (uncompressed): the footer answers rows, schema,
    nulls and ranges; only a sample and the dictionary of the string column are read. (The
    1 GB figure in the issue note comes from the same code at groups = 14.)"""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    rows_per_group = 1_000_000
    groups = 4
    path = tmp_path / "big.parquet"
    schema = pa.schema([(f"f{i}", pa.float64()) for i in range(8)]
                       + [("n", pa.int64()), ("cat", pa.dictionary(pa.int32(), pa.string()))])
    block = {f"f{i}": rng.normal(size=rows_per_group) for i in range(8)}
    block["n"] = rng.integers(0, 1000, rows_per_group)
    block["cat"] = pa.DictionaryArray.from_arrays(
        pa.array(rng.integers(0, 4, rows_per_group), pa.int32()), pa.array(list("abcd")))

    tbl = pa.Table.from_pydict(block, schema=schema)
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=["cat"]) as w:
        for _ in range(groups):
            w.write_table(tbl)
    size = path.stat().st_size
    assert size > 0.27e9  # above the 256 MB limit for loading whole files
    prev = profile_parquet(path)
    t0 = time.perf_counter()
    cur = profile_parquet(path, prev)
    res = gate(cur, prev, {"max_null_rate": 0.0})
    seconds = time.perf_counter() - t0
    print(f"\nvalidated a {size / 1e9:.2f} GB Parquet file ({groups * rows_per_group:,} rows) in "
          f"{seconds:.2f} s; duplicates: {cur.duplicates}")
    assert res.passed, res.message
    assert cur.rows == groups * rows_per_group and cur.columns["cat"].categories == list("abcd")
    assert cur.duplicates is None  # too large by default: not loaded whole
    assert seconds < 15


def test_rules_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_null_rate"):
        QualityRules.from_mapping({"max_null_rate": 5})
    with pytest.raises(ConfigError, match="unknown rule"):
        QualityRules.from_mapping({"max_nulls": 0.1})
    with pytest.raises(ConfigError, match=r"columns\.age"):
        QualityRules.from_mapping({"columns": {"age": {"maximum": 3}}})
    r = quality.rules_for({"data": {"d.parquet": {"rules": {"min_rows": 5, "block": False}}}},
                          "d.parquet")
    assert r.min_rows == 5 and r.block is False
    df = pd.DataFrame({"a": [1, 2]})
    res = gate(df, None, {"min_rows": 5, "required": ["b"]})
    assert not res.passed and res.metrics["n_errors"] == 2


def test_empty_table_is_an_error() -> None:
    res = gate(pd.DataFrame({"a": pd.Series([], dtype=float)}), None, None)
    assert not res.passed and "no rows" in res.message


def test_timestamps_agree_between_footer_and_frame(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    base = pd.Timestamp("2025-01-01")
    prev = pd.DataFrame({"t": base + pd.to_timedelta(rng.integers(0, 86400 * 30, 5000), unit="s"),
                         "x": rng.normal(size=5000)})
    cur = prev.copy()
    cur.loc[:9, "t"] = pd.Timestamp("2026-06-01")  # ten values after anything seen
    prev["t"] = prev["t"].astype("datetime64[us]")
    cur["t"] = cur["t"].astype("datetime64[ms]")  # another unit: still comparable
    pp, pc_ = tmp_path / "p.parquet", tmp_path / "c.parquet"
    prev.to_parquet(pp, row_group_size=1000)
    cur.to_parquet(pc_, row_group_size=1000)
    base_p = profile_parquet(pp)
    got = profile_parquet(pc_, base_p, sample_rows=2000)  # a sample: exact count reads the column
    ref = profile_frame(cur, profile_frame(prev))
    assert got.columns["t"].min == pytest.approx(ref.columns["t"].min)
    assert got.columns["t"].max == pytest.approx(ref.columns["t"].max)
    assert got.columns["t"].out_of_range == ref.columns["t"].out_of_range == 10
    f = [x for x in compare(got, base_p, None) if x.check == "range"]
    assert f and f[0].column == "t" and f[0].value == 10
