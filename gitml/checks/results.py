"""Gate results: the one shape every gate returns, and the committed per-model JSON.

Every gate (evaluation, bias, explanations, drift, data quality, anomaly) returns a
:class:`GateResult`. Its ``to_dict()`` is the stable JSON shape

    {"gate": str, "passed": bool, "metrics": dict, "message": str}

(plus ``"blocking": bool`` and ``"skipped": bool`` which default to True / False).
A model's results are written to ``.gitml/checks/<model>.json`` (committed) as

    {"model", "model_oid", "data_oid", "config_hash", "rev", "created", "passed",
     "results": [GateResult.to_dict(), ...]}

This module imports nothing heavy: ``git ml status`` and the hooks may import it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
CHECKS_DIR = ".gitml/checks"


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: numpy scalars -> Python, NaN/inf -> None, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    # numpy scalars / arrays without importing numpy
    item = getattr(value, "item", None)
    tolist = getattr(value, "tolist", None)
    ndim = getattr(value, "ndim", None)
    if tolist is not None and ndim:
        return _clean(tolist())
    if item is not None:
        try:
            return _clean(item())
        except (TypeError, ValueError):
            pass
    return str(value)


@dataclass
class GateResult:
    """The outcome of one gate.

    ``passed`` False with ``blocking`` True blocks a commit/deploy. ``skipped`` marks a
    gate that had nothing to compare (e.g. no baseline yet); skipped gates pass.
    """

    gate: str
    passed: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    blocking: bool = True
    skipped: bool = False

    @property
    def blocks(self) -> bool:
        return (not self.passed) and self.blocking

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "passed": bool(self.passed),
            "metrics": _clean(self.metrics),
            "message": self.message,
            "blocking": bool(self.blocking),
            "skipped": bool(self.skipped),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateResult:
        return cls(
            gate=str(d["gate"]),
            passed=bool(d["passed"]),
            metrics=dict(d.get("metrics") or {}),
            message=str(d.get("message", "")),
            blocking=bool(d.get("blocking", True)),
            skipped=bool(d.get("skipped", False)),
        )


@dataclass
class ModelResult:
    """All gate results for one model at one (model id, data id, config hash)."""

    model: str
    model_oid: str
    data_oid: str
    config_hash: str
    results: list[GateResult] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    rev: str | None = None
    cached: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not any(r.blocks for r in self.results)

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if r.blocks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "model": self.model,
            "model_oid": self.model_oid,
            "data_oid": self.data_oid,
            "config_hash": self.config_hash,
            "rev": self.rev,
            "created": self.created,
            "passed": self.passed,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelResult:
        return cls(
            model=str(d["model"]),
            model_oid=str(d.get("model_oid", "")),
            data_oid=str(d.get("data_oid", "")),
            config_hash=str(d.get("config_hash", "")),
            results=[GateResult.from_dict(r) for r in d.get("results", [])],
            created=str(d.get("created", "")),
            rev=d.get("rev"),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def config_hash(model_config: dict[str, Any]) -> str:
    """A stable hash of a model's declaration (gates included)."""
    blob = json.dumps(_clean(model_config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def results_relpath(model: str) -> str:
    """The committed results file of a model, relative to the work tree."""
    return f"{CHECKS_DIR}/{model}.json"


def write_results(workdir: Path, result: ModelResult, relpath: str | None = None) -> Path:
    """Write ``.gitml/checks/<model>.json`` (or ``relpath``) under ``workdir`` atomically;
    returns its path."""
    from gitml.store.fsutil import atomic_write_bytes

    path = workdir / (relpath or results_relpath(result.model))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, result.dumps().encode())
    return path
