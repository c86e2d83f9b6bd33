"""``gitml.log_param`` / ``gitml.log_metric``: record values from inside a ``git ml run``.

Import-light on purpose (standard library only, imported in milliseconds): a training
script can call these unconditionally. Inside ``git ml run`` each call appends one JSON
line to the file named by ``$GITML_TRACKING_FILE``; outside a run they do nothing and
warn once.
"""

from __future__ import annotations

import math
import os
import time
import warnings

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing/json import at run time: this module must load in milliseconds
    from collections.abc import Mapping
    from typing import Any

ENV_VAR = "GITML_TRACKING_FILE"
#: JSON object of parameter values that override ``log_param`` defaults (set by ``git ml exp``)
OVERRIDES_VAR = "GITML_PARAM_OVERRIDES"
_warned = False
_overrides: dict[str, Any] | None = None


class TrackingValueError(ValueError):
    """A value that cannot be recorded (not JSON, or a metric that is not a number)."""


def _warn_outside_run() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn("gitml: log_param/log_metric called outside `git ml run`; nothing is recorded "
                      "(run the script with `git ml run -- ...`)", RuntimeWarning, stacklevel=4)


def _plain(value: Any) -> Any:
    """Convert numpy scalars and similar to plain Python values; reject what JSON cannot hold."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return _plain(item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise TrackingValueError(f"gitml: cannot record a value of type {type(value).__name__}; "
                             "pass a number, string, bool, list or dict")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or "\n" in name or "=" in name:
        raise TrackingValueError(f"gitml: invalid name {name!r}: use a non-empty string without '=' or newlines")
    return name.strip()


def _append(record: dict[str, Any]) -> None:
    path = os.environ.get(ENV_VAR)
    if not path:
        _warn_outside_run()
        return
    import json

    record["pid"] = os.getpid()
    record["time"] = time.time()
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    # One write on an O_APPEND descriptor: lines from concurrent processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _override(name: str) -> tuple[bool, Any]:
    global _overrides
    if _overrides is None:
        raw = os.environ.get(OVERRIDES_VAR)
        if raw:
            import json

            loaded = json.loads(raw)
            _overrides = loaded if isinstance(loaded, dict) else {}
        else:
            _overrides = {}
    return (True, _overrides[name]) if name in _overrides else (False, None)


def log_param(name: str, value: Any) -> Any:
    """Record a parameter of this run (the last value logged for a name wins) and return it.

    ``value`` is the default: inside ``git ml exp run -S name=...`` or a sweep trial the
    overridden value is recorded and returned instead, so ``C = gitml.log_param("C", 1.0)``
    makes ``C`` a searchable parameter.
    """
    name = _check_name(name)
    found, override = _override(name)
    if found:
        value = override
    rec: dict[str, Any] = {"kind": "param", "name": name, "value": _plain(value)}
    if found:
        rec["override"] = True
    _append(rec)
    return value


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Record a numeric metric of this run; with ``step`` the history is kept, the last value wins."""
    plain = _plain(value)
    if isinstance(plain, bool) or not isinstance(plain, (int, float)):
        raise TrackingValueError(f"gitml: metric {name!r} must be a number, got {type(value).__name__}")
    rec: dict[str, Any] = {"kind": "metric", "name": _check_name(name), "value": plain}
    if step is not None:
        rec["step"] = int(step)
    _append(rec)


def log_params(params: Mapping[str, Any]) -> None:
    for k, v in params.items():
        log_param(k, v)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    for k, v in metrics.items():
        log_metric(k, v, step)
