"""Read params and metrics files (JSON, TOML, YAML when PyYAML is installed).

``-p params.yaml`` takes every key (nested keys flattened with dots);
``-p params.yaml:train.depth,train.lr`` takes only the named keys. Metrics files keep
their numeric leaves. Malformed files raise :class:`ParamsError` with one line saying
where and what to do.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from gitml.runs.errors import ParamsError

FORMATS = (".json", ".toml", ".yaml", ".yml")


def parse_spec(spec: str) -> tuple[str, list[str] | None]:
    """``file[:key1,key2]`` -> (file, keys or None for all)."""
    path, sep, keys = spec.partition(":")
    if not path:
        raise ParamsError(f"invalid params spec {spec!r}", "use FILE or FILE:key1,key2")
    if not sep:
        return path, None
    names = [k.strip() for k in keys.split(",") if k.strip()]
    if not names:
        raise ParamsError(f"invalid params spec {spec!r}: no keys after ':'", "use FILE or FILE:key1,key2")
    return path, names


def _decode_error_line(e: Exception) -> str:
    line = getattr(e, "lineno", None)
    mark = getattr(e, "problem_mark", None)
    if mark is not None:
        line = mark.line + 1
    return f" at line {line}" if line else ""


def load_file(path: Path, display: str | None = None, data: bytes | None = None) -> dict[str, Any]:
    """Load a JSON/TOML/YAML mapping from ``path`` (or from ``data`` read elsewhere)."""
    name = display or str(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ParamsError(f"{name}: unsupported format {suffix or '(no suffix)'}",
                          "use a .json, .toml or .yaml file")
    if data is None:
        try:
            data = path.read_bytes()
        except FileNotFoundError as e:
            raise ParamsError(f"{name}: no such file", "create it or fix the path") from e
        except OSError as e:
            raise ParamsError(f"{name}: cannot read: {e.strerror}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParamsError(f"{name}: not UTF-8 text", "save it as UTF-8") from e
    try:
        if suffix == ".json":
            value = json.loads(text) if text.strip() else {}
        elif suffix == ".toml":
            value = tomllib.loads(text)
        else:
            try:
                import yaml
            except ImportError as e:
                raise ParamsError(f"{name}: reading YAML needs PyYAML",
                                  "`pip install pyyaml` or use JSON/TOML") from e
            value = yaml.safe_load(text)
            if value is None:
                value = {}
    except ParamsError:
        raise
    except Exception as e:  # json/toml/yaml each have their own error classes
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if suffix == ".json":
            msg = getattr(e, "msg", msg)
        raise ParamsError(f"{name}: malformed {suffix.lstrip('.').upper()}{_decode_error_line(e)}: {msg}",
                          "fix the file") from e
    if not isinstance(value, dict):
        raise ParamsError(f"{name}: top level must be a mapping of names to values, got {type(value).__name__}",
                          "fix the file")
    return value


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = _jsonable(v)
    return out


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)  # dates from TOML/YAML


def read_params(path: Path, keys: list[str] | None, display: str | None = None) -> dict[str, Any]:
    flat = flatten(load_file(path, display))
    if keys is None:
        return flat
    out: dict[str, Any] = {}
    name = display or str(path)
    for k in keys:
        if k in flat:
            out[k] = flat[k]
            continue
        nested = {fk: fv for fk, fv in flat.items() if fk.startswith(k + ".")}
        if not nested:
            raise ParamsError(f"{name}: no key {k!r}", f"keys are: {', '.join(sorted(flat)[:20]) or '(none)'}")
        out.update(nested)
    return out


def read_metrics(path: Path, display: str | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in flatten(load_file(path, display)).items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)) and math.isfinite(v):
            out[k] = v
    return out
