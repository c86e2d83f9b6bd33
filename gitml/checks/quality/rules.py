"""Quality rules: ``[data."<path>".rules]`` in the committed config (or a model's
``gates.quality`` table), parsed and range-checked when read::

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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitml.errors import ConfigError


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
        kwargs: dict[str, Any] = dict(data)
        if "columns" in kwargs:
            kwargs["columns"] = _column_rules(where, kwargs["columns"])
        _check_types(where, kwargs)
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


def _column_rules(where: str, value: Any) -> dict[str, ColumnRules]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.columns must be a table of column rules")
    cols: dict[str, ColumnRules] = {}
    ckeys = set(ColumnRules.__dataclass_fields__)
    for name, spec in value.items():
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
    return cols


def _check_types(where: str, kwargs: Mapping[str, Any]) -> None:
    for k in ("allow_new_columns", "allow_removed_columns", "allow_type_changes",
              "allow_new_categories", "allow_out_of_range", "block", "check_duplicates"):
        if k in kwargs and not isinstance(kwargs[k], bool):
            raise ConfigError(f"{where}.{k} = {kwargs[k]!r} must be true or false")
    for k in ("max_categories", "sample_rows"):
        if k in kwargs and (not isinstance(kwargs[k], int) or isinstance(kwargs[k], bool)
                            or kwargs[k] < 1):
            raise ConfigError(f"{where}.{k} = {kwargs[k]!r} must be a positive integer")


def rules_for(config_data: Mapping[str, Any], path: str) -> QualityRules:
    """The rules declared for ``path`` under ``[data."<path>".rules]`` (none: defaults)."""
    data = config_data.get("data", {})
    if not isinstance(data, Mapping):
        raise ConfigError("[data] must be a table of data sets", 'use [data."path".rules]')
    entry = data.get(path, {})
    if not isinstance(entry, Mapping):
        raise ConfigError(f'[data."{path}"] must be a table', 'use [data."path".rules]')
    return QualityRules.from_mapping(entry.get("rules"), f'data."{path}".rules')
