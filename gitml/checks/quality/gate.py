"""The data-quality gate: a table's profile against its previous version and the rules
(:mod:`.rules`), as findings (:mod:`.findings`); and the adapters that profile a table
at a revision of a repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.checks.quality.findings import ERROR, WARNING, compare
from gitml.checks.quality.profile import TableProfile, profile_frame, profile_parquet
from gitml.checks.quality.rules import QualityRules
from gitml.checks.results import GateResult
from gitml.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from gitml.repo import MLRepo


def gate(current: pd.DataFrame | TableProfile, previous: pd.DataFrame | TableProfile | None = None,
         rules: QualityRules | Mapping[str, Any] | None = None, *,
         name: str | None = None) -> GateResult:
    """The data-quality gate: fails when an ``error`` finding exists and rules.block.
    Pure: ``current`` / ``previous`` are DataFrames or profiles; ``name`` labels the data."""
    r = rules if isinstance(rules, QualityRules) else QualityRules.from_mapping(rules)
    name = name or "data"
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


# ---------------------------------------------------------------------------- repository adapters
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
    from gitml.models.tables import read_frame

    return profile_frame(read_frame(path, name=label), baseline, max_categories=rules.max_categories,
                         check_duplicates=rules.check_duplicates is not False)


def profile_at(repo: MLRepo, path: str, rev: str | None, baseline: TableProfile | None,
               rules: QualityRules) -> TableProfile:
    """Profile the table ``path`` at ``rev`` (a revision, ``":"`` for the index, None for
    the work tree), through the one artifact resolver."""
    from gitml.artifacts import api
    from gitml.models.tables import read_frame_bytes

    if rev is None and (repo.workdir / path).is_file():
        return profile_path(repo.workdir / path, baseline, rules, name=path)
    loc = api.locate(path, rev, repo)
    local = api.local_file(loc, repo)
    if local is not None:
        return profile_path(local, baseline, rules, name=path)
    return profile_frame(read_frame_bytes(api.read_located(loc, repo), path), baseline,
                         max_categories=rules.max_categories,
                         check_duplicates=rules.check_duplicates is not False)


def validate_path(repo: MLRepo, path: str, previous_rev: str | None,
                  rules: QualityRules | Mapping[str, Any] | None = None,
                  current_rev: str | None = None) -> GateResult:
    """Validate the table ``path`` at ``current_rev`` (None: the work tree, ``":"``: the
    index) against its version at ``previous_rev`` (None, or absent there: no previous
    version) and the rules."""
    from gitml.artifacts import api

    r = rules if isinstance(rules, QualityRules) else QualityRules.from_mapping(rules)
    prev: TableProfile | None = None
    if previous_rev is not None and api.find(path, previous_rev, repo) is not None:
        prev = profile_at(repo, path, previous_rev, None, r)
    cur = profile_at(repo, path, current_rev, prev, r)
    return gate(cur, prev, r, name=path)
