"""gitml: version data sets and models next to your code.

Public Python API (imports stay light; heavy modules load on first use):
``gitml.open``, ``gitml.read_bytes``, ``gitml.materialize`` (any artifact at any revision),
``gitml.log_param``, ``gitml.log_metric`` (inside ``git ml run``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs ~2.5 ms of every command's start-up
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"
__all__ = ["log_metric", "log_param", "materialize", "open", "read_bytes"]

_LAZY = {
    "open": "gitml.artifacts.api",
    "read_bytes": "gitml.artifacts.api",
    "materialize": "gitml.artifacts.api",
    "log_param": "gitml.runs.tracking",
    "log_metric": "gitml.runs.tracking",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gitml' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
