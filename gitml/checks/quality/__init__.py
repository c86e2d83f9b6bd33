"""Data quality: a tabular data set against its previous version and declared rules.

:mod:`.rules` parses the rules, :mod:`.profile` summarises a table (from a Parquet footer
where it can), :mod:`.findings` compares two profiles under the rules, and :mod:`.gate`
turns findings into a gate result and reads tables at revisions.
"""

from __future__ import annotations

from gitml.checks.quality.findings import ERROR, INFO, WARNING, Finding, compare
from gitml.checks.quality.gate import gate, profile_at, profile_path, validate_path
from gitml.checks.quality.profile import ColumnProfile, TableProfile, profile_frame, profile_parquet
from gitml.checks.quality.rules import ColumnRules, QualityRules, rules_for

__all__ = ["ERROR", "INFO", "WARNING", "ColumnProfile", "ColumnRules", "Finding", "QualityRules",
           "TableProfile", "compare", "gate", "profile_at", "profile_frame", "profile_parquet",
           "profile_path", "rules_for", "validate_path"]
