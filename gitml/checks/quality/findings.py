"""Findings: what is wrong with a table's profile against its previous version and the
rules, each with a severity and a suggested fix. One function per kind of check.

Without a declared limit, a change against the previous version is a warning only when
it is large both relatively and absolutely: the unnamed numbers below are those limits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gitml.checks.quality.profile import ROBUST_Z, TableProfile, _num
from gitml.checks.quality.rules import QualityRules

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}

# rows: growing or shrinking by more than half between two versions is almost always a
# changed filter or join, not new data
ROW_CHANGE_WARNING = 0.5
# nulls: a column's missing share doubling is worth a look, but only once it moves by a
# whole percentage point (0.01% -> 0.03% is noise on small tables)
NULL_GROWTH_FACTOR = 2.0
NULL_GROWTH_MIN = 0.01
# outliers: robust-z outliers are ~0.1% of normal data; doubling and +0.5 points means the
# tail changed, less is sampling noise on the bounded outlier sample
OUTLIER_GROWTH_FACTOR = 2.0
OUTLIER_GROWTH_MIN = 0.005
# duplicates: rates are ratios of integer counts; equal counts must not compare as growth
RATE_EPSILON = 1e-12


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


def _grew(rate: float, prev: float, factor: float, minimum: float) -> bool:
    return rate > max(factor * prev, prev + minimum)


def row_findings(cur: TableProfile, prev: TableProfile | None, r: QualityRules) -> list[Finding]:
    out: list[Finding] = []
    n = cur.rows
    if r.min_rows is not None and n < r.min_rows:
        out.append(Finding("row_count", ERROR, f"{n} rows < min_rows = {r.min_rows}",
                           "add the missing data or lower rules.min_rows", None, n))
    if r.max_rows is not None and n > r.max_rows:
        out.append(Finding("row_count", ERROR, f"{n} rows > max_rows = {r.max_rows}",
                           "drop the extra rows or raise rules.max_rows", None, n))
    if n == 0:
        out.append(Finding("row_count", ERROR, "the data set has no rows",
                           "regenerate the data; an empty table is almost always a bug", None, 0))
    if prev is None or not prev.rows:
        return out
    change = (n - prev.rows) / prev.rows
    if change == 0:
        return out
    sev = INFO
    if r.max_row_change is not None and abs(change) > r.max_row_change:
        sev = ERROR
    elif abs(change) > ROW_CHANGE_WARNING:
        sev = WARNING
    out.append(Finding("row_count", sev, f"rows {prev.rows} -> {n} ({change:+.1%})",
                       "check the filter/join that produced it" if change < 0 else
                       "expected growth? otherwise look for duplicated input", None, change))
    return out


def schema_findings(cur: TableProfile, prev: TableProfile | None, r: QualityRules) -> list[Finding]:
    out = [Finding("schema", ERROR, f"required column '{col}' is missing",
                   "restore the column or remove it from rules.required", col)
           for col in r.required if col not in cur.columns]
    if prev is None:
        return out
    for col in prev.columns:
        if col not in cur.columns and col not in r.required:
            out.append(Finding("schema", INFO if r.allow_removed_columns else ERROR,
                               f"column '{col}' was removed",
                               "restore it, or set rules.allow_removed_columns = true", col))
    for col in cur.columns:
        if col not in prev.columns:
            out.append(Finding("schema", INFO if r.allow_new_columns else ERROR,
                               f"new column '{col}' ({cur.columns[col].type})",
                               "drop it, or set rules.allow_new_columns = true", col))
    for col, cp in cur.columns.items():
        pp = prev.columns.get(col)
        if pp is None or pp.family == cp.family:
            continue
        widening = {pp.family, cp.family} == {"int", "float"}
        sev = INFO if r.allow_type_changes else (WARNING if widening else ERROR)
        fix = ("cast back to int (an int column becomes float when it gains nulls: "
               "impute them or use a nullable Int64)" if widening and cp.family == "float"
               else f"cast '{col}' back to {pp.family} ({pp.type})")
        out.append(Finding("schema", sev, f"column '{col}' changed type {pp.type} -> {cp.type}",
                           fix, col))
    return out


def null_findings(cur: TableProfile, prev: TableProfile | None, r: QualityRules) -> list[Finding]:
    out: list[Finding] = []
    n = cur.rows
    for col, cp in cur.columns.items():
        rate = cp.nulls / n if n else 0.0
        crule = r.columns.get(col)
        limit = crule.max_null_rate if crule and crule.max_null_rate is not None else r.max_null_rate
        pp = prev.columns.get(col) if prev else None
        prev_rate = (pp.nulls / prev.rows) if (pp and prev and prev.rows) else None
        fix = ("impute (median/mode) or drop the rows with missing " + col
               if cp.family != "string" else f"impute a placeholder category or drop the rows missing {col}")
        if limit is not None and rate > limit:
            out.append(Finding("nulls", ERROR, f"'{col}' null rate {rate:.2%} > {limit:.2%}", fix, col, rate))
        elif prev_rate is not None and _grew(rate, prev_rate, NULL_GROWTH_FACTOR, NULL_GROWTH_MIN):
            out.append(Finding("nulls", WARNING, f"'{col}' null rate {prev_rate:.2%} -> {rate:.2%}",
                               fix, col, rate))
    return out


def duplicate_findings(cur: TableProfile, prev: TableProfile | None, r: QualityRules) -> list[Finding]:
    n = cur.rows
    if cur.duplicates is None or not n:
        return []
    rate = cur.duplicates / n
    prev_rate = (prev.duplicates / prev.rows
                 if prev and prev.duplicates is not None and prev.rows else None)
    fix = "drop duplicates (df.drop_duplicates()) or fix the join that repeats rows"
    if r.max_duplicate_rate is not None and rate > r.max_duplicate_rate:
        return [Finding("duplicates", ERROR,
                        f"{cur.duplicates} duplicate rows ({rate:.2%} > {r.max_duplicate_rate:.2%})",
                        fix, None, rate)]
    if cur.duplicates and (prev_rate is None or rate > prev_rate + RATE_EPSILON):
        # many tables legitimately repeat rows (few categorical features): a finding
        # worth a warning only when the share grows against the previous version
        return [Finding("duplicates", INFO if prev_rate is None else WARNING,
                        f"{cur.duplicates} duplicate rows ({rate:.2%}"
                        + (f", was {prev_rate:.2%})" if prev_rate is not None else ")"),
                        fix, None, rate)]
    return []


def range_findings(cur: TableProfile, prev: TableProfile | None, r: QualityRules) -> list[Finding]:
    """Declared ranges, and values outside the range the previous version had."""
    out: list[Finding] = []
    for col, cp in cur.columns.items():
        crule = r.columns.get(col)
        lo, hi = _num(cp.min), _num(cp.max)
        if crule and lo is not None and hi is not None:
            if crule.min is not None and lo < crule.min:
                out.append(Finding("range", ERROR, f"'{col}' min {lo:g} < declared min {crule.min:g}",
                                   f"clip or drop rows with {col} < {crule.min:g}", col, lo))
            if crule.max is not None and hi > crule.max:
                out.append(Finding("range", ERROR, f"'{col}' max {hi:g} > declared max {crule.max:g}",
                                   f"clip or drop rows with {col} > {crule.max:g}", col, hi))
        pp = prev.columns.get(col) if prev else None
        if pp is None or pp.family != cp.family or lo is None or hi is None:
            continue
        plo, phi = _num(pp.min), _num(pp.max)
        if plo is None or phi is None or (lo >= plo and hi <= phi):
            continue
        count = f"{cp.out_of_range} values " if cp.out_of_range else "values "
        out.append(Finding("range", INFO if r.allow_out_of_range else ERROR,
                           f"'{col}': {count}outside the previously seen range [{plo:g}, {phi:g}] "
                           f"(now [{lo:g}, {hi:g}])",
                           "check units/encoding; clip to the seen range or set "
                           "rules.allow_out_of_range = true if real", col,
                           float(cp.out_of_range) if cp.out_of_range is not None else None))
    return out


def category_findings(cur: TableProfile, prev: TableProfile | None, r: QualityRules) -> list[Finding]:
    out: list[Finding] = []
    for col, cp in cur.columns.items():
        if cp.categories is None:
            continue
        crule = r.columns.get(col)
        if crule and crule.categories is not None:
            bad = sorted(set(cp.categories) - {str(c) for c in crule.categories})
            if bad:
                out.append(Finding("categories", ERROR, f"'{col}' has undeclared categories {_short(bad)}",
                                   f"map them to declared ones or extend rules.columns.{col}.categories",
                                   col, len(bad)))
        pp = prev.columns.get(col) if prev else None
        if pp is None or pp.categories is None:
            continue
        new = sorted(set(cp.categories) - set(pp.categories))
        if new:
            out.append(Finding("categories", INFO if r.allow_new_categories else ERROR,
                               f"'{col}' has new categories {_short(new)}",
                               "map them to known categories (or 'other') before the model sees "
                               "them, or retrain", col, len(new)))
    return out


def outlier_findings(cur: TableProfile, prev: TableProfile | None, r: QualityRules) -> list[Finding]:
    out: list[Finding] = []
    for col, cp in cur.columns.items():
        if not cp.outliers or not cp.outliers_sampled:
            continue
        rate = cp.outliers / cp.outliers_sampled
        pp = prev.columns.get(col) if prev else None
        prev_rate = (pp.outliers / pp.outliers_sampled
                     if pp and pp.outliers is not None and pp.outliers_sampled else None)
        sampled = "" if cp.outliers_sampled >= cur.rows else f" in a sample of {cp.outliers_sampled}"
        msg = f"'{col}': {cp.outliers} outliers{sampled} ({rate:.2%}, robust z > {ROBUST_Z})"
        fix = "winsorize/clip, or drop the rows if they are errors"
        if r.max_outlier_rate is not None and rate > r.max_outlier_rate:
            out.append(Finding("outliers", ERROR, msg + f" > {r.max_outlier_rate:.2%}", fix, col, rate))
        elif prev_rate is not None and _grew(rate, prev_rate, OUTLIER_GROWTH_FACTOR, OUTLIER_GROWTH_MIN):
            out.append(Finding("outliers", WARNING, msg + f", was {prev_rate:.2%}", fix, col, rate))
    return out


CHECKS: tuple[Callable[[TableProfile, TableProfile | None, QualityRules], list[Finding]], ...] = (
    row_findings, schema_findings, null_findings, duplicate_findings, range_findings,
    category_findings, outlier_findings)


def compare(current: TableProfile, previous: TableProfile | None,
            rules: QualityRules | Mapping[str, Any] | None = None) -> list[Finding]:
    """Every finding for ``current`` against the previous version and the rules, most
    severe first."""
    r = rules if isinstance(rules, QualityRules) else QualityRules.from_mapping(rules)
    out = [f for check in CHECKS for f in check(current, previous, r)]
    out.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.check, f.column or ""))
    return out


def _short(values: Sequence[str], k: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:k])
    return f"[{shown}{', …' if len(values) > k else ''}]"
