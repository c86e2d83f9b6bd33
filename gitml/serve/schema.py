"""Checking and converting request rows into the model's input columns.

Every problem is a :class:`RequestError` (an HTTP status and a message that names the
column or field); nothing a client sends may become a 500.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from gitml.models.bundle import InputSpec

Columns = dict[str, np.ndarray]
_NUM: set[type] = {int, float}
_NUM_NULL: set[type] = {int, float, type(None)}
_STR: set[type] = {str}
_STR_NULL: set[type] = {str, type(None)}
_BOOL: set[type] = {bool}
_BOOL_NULL: set[type] = {bool, type(None)}


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str, status: int = 400) -> RequestError:
    return RequestError(status, message)


class Schema:
    """The inputs of one model version and the converters for each request format."""

    def __init__(self, inputs: list[InputSpec]) -> None:
        self.inputs = inputs
        self.names = [i.name for i in inputs]
        self.name_set = frozenset(self.names)
        self.by_name = {i.name: i for i in inputs}

    # columns ---------------------------------------------------------------------------
    def check_names(self, got: list[Any] | set[Any] | Any) -> None:
        got_set = set(got)
        if got_set == self.name_set:
            return
        missing = [n for n in self.names if n not in got_set]
        extra = sorted(str(x) for x in got_set - self.name_set)
        parts = []
        if missing:
            parts.append(f"missing column(s): {', '.join(missing)}")
        if extra:
            parts.append(f"unknown column(s): {', '.join(extra[:10])}")
        raise bad("; ".join(parts) + f" (the model takes: {', '.join(self.names)})")

    def column(self, spec: InputSpec, values: Any) -> np.ndarray:
        """One column's JSON values (a list or tuple) as a checked array."""
        name = spec.name
        types = set(map(type, values))
        dt = spec.dtype
        if dt == "string":
            allowed = _STR_NULL if spec.nullable else _STR
            if not types <= allowed:
                self._type_error(spec, values, allowed)
            return np.array(values, dtype=object)
        if dt == "bool":
            allowed = _BOOL_NULL if spec.nullable else _BOOL
            if not types <= allowed:
                self._type_error(spec, values, allowed)
            if type(None) in types:
                return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            return np.array(values, dtype=np.float64)
        allowed = _NUM_NULL if spec.nullable else _NUM
        if not types <= allowed:
            self._type_error(spec, values, allowed)
        try:
            arr = np.array(values, dtype=np.float64)
        except (OverflowError, ValueError, TypeError):
            raise bad(f"column {name!r}: a number is out of range") from None
        if float in types or type(None) in types:
            nan = np.isnan(arr)
            if nan.any() and not spec.nullable:
                raise bad(f"column {name!r}: null/NaN at row {int(np.argmax(nan))} but the model's "
                          "input does not allow missing values")
            if np.isinf(arr).any():
                raise bad(f"column {name!r}: infinite value at row {int(np.argmax(np.isinf(arr)))}")
            if dt == "int64":
                finite = arr[~nan]
                if (finite != np.round(finite)).any():
                    raise bad(f"column {name!r}: expects integers, got a fractional number")
        return arr

    def _type_error(self, spec: InputSpec, values: Any, allowed: set[type]) -> None:
        for i, v in enumerate(values):
            if type(v) not in allowed:
                what = "null" if v is None else type(v).__name__
                want = {"string": "a string", "bool": "true/false", "int64": "an integer",
                        "float64": "a number"}[spec.dtype]
                raise bad(f"column {spec.name!r}: row {i} is {what} ({_short(v)}), expected {want}"
                          + ("" if spec.nullable or v is not None else
                             " (the model's input does not allow missing values)"))
        raise bad(f"column {spec.name!r}: wrong value types")

    # formats ---------------------------------------------------------------------------
    def from_split(self, obj: Any) -> tuple[Columns, int]:
        if not isinstance(obj, dict):
            raise bad("dataframe_split must be an object with 'columns' and 'data'")
        cols = obj.get("columns")
        data = obj.get("data")
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise bad("dataframe_split.columns must be a list of column names")
        if not isinstance(data, list):
            raise bad("dataframe_split.data must be a list of rows")
        if len(set(cols)) != len(cols):
            raise bad("dataframe_split.columns has duplicate names")
        self.check_names(cols)
        n = len(data)
        width = len(cols)
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != width:
                raise bad(f"dataframe_split.data row {i} must be a list of {width} values")
        if n == 0:
            raise bad("no rows to predict")
        transposed = list(zip(*data, strict=True))
        out = {c: self.column(self.by_name[c], transposed[j]) for j, c in enumerate(cols)}
        return out, n

    def from_records(self, obj: Any, field: str = "dataframe_records") -> tuple[Columns, int]:
        if not isinstance(obj, list) or not obj:
            raise bad(f"{field} must be a non-empty list of objects")
        first = obj[0]
        if not isinstance(first, dict):
            raise bad(f"{field}[0] must be an object of column: value")
        self.check_names(first.keys())
        keys = first.keys()
        for i, r in enumerate(obj):
            if not isinstance(r, dict) or r.keys() != keys:
                if not isinstance(r, dict):
                    raise bad(f"{field}[{i}] must be an object of column: value")
                try:
                    self.check_names(r.keys())
                except RequestError as e:
                    raise bad(f"{field}[{i}]: {e.message}") from e
        out = {c: self.column(self.by_name[c], [r[c] for r in obj]) for c in self.names}
        return out, len(obj)

    def from_columnar(self, obj: dict[str, Any], field: str) -> tuple[Columns, int]:
        self.check_names(obj.keys())
        n = -1
        out = {}
        for c in self.names:
            v = obj[c]
            if not isinstance(v, list):
                v = [v]
            if n == -1:
                n = len(v)
            elif len(v) != n:
                raise bad(f"{field}: column {c!r} has {len(v)} values, expected {n}")
            out[c] = self.column(self.by_name[c], v)
        if n <= 0:
            raise bad("no rows to predict")
        return out, n

    def from_csv(self, body: bytes) -> tuple[Columns, int]:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise bad(f"CSV body is not UTF-8 ({e.reason})") from e
        try:
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error as e:
            raise bad(f"malformed CSV: {e}") from e
        if not rows:
            raise bad("empty CSV body: expected a header row and data rows")
        header = rows[0]
        data = [r for r in rows[1:] if r]
        if len(set(header)) != len(header):
            raise bad("CSV header has duplicate column names")
        self.check_names(header)
        if not data:
            raise bad("no rows to predict")
        for i, r in enumerate(data):
            if len(r) != len(header):
                raise bad(f"CSV row {i + 1} has {len(r)} fields, the header has {len(header)}")
        out = {}
        for j, c in enumerate(header):
            spec = self.by_name[c]
            raw = [r[j] for r in data]
            out[c] = self.column(spec, [_csv_value(spec, c, v, i) for i, v in enumerate(raw)])
        return out, len(data)

    def from_body(self, obj: Any) -> tuple[Columns, int]:
        """MLflow's /invocations JSON: exactly one of the four keys."""
        if not isinstance(obj, dict):
            raise bad("request body must be a JSON object with one of: dataframe_split, "
                      "dataframe_records, instances, inputs")
        keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in obj]
        if len(keys) != 1:
            raise bad("request body must have exactly one of: dataframe_split, dataframe_records, "
                      f"instances, inputs (got: {', '.join(map(str, obj)) or 'none'})")
        key = keys[0]
        val = obj[key]
        if key == "dataframe_split":
            return self.from_split(val)
        if key == "dataframe_records":
            return self.from_records(val)
        if isinstance(val, dict):
            return self.from_columnar(val, key)
        if isinstance(val, list) and val and isinstance(val[0], dict):
            return self.from_records(val, key)
        if isinstance(val, list) and val and isinstance(val[0], list):
            rows = val
            return self.from_split({"columns": self.names, "data": rows})
        raise bad(f"{key} must be a list of row objects, a list of rows in the model's column "
                  "order, or an object of column: values")


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _csv_value(spec: InputSpec, col: str, v: str, i: int) -> Any:
    if v == "":
        return None
    if spec.dtype == "string":
        return v
    if spec.dtype == "bool":
        low = v.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise bad(f"column {col!r}: row {i} is {_short(v)}, expected true/false")
    try:
        x = float(v)
    except ValueError:
        raise bad(f"column {col!r}: row {i} is {_short(v)}, expected a number") from None
    if math.isnan(x):
        return None
    return x
