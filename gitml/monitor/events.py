"""The monitor's own record of what it did (rollbacks, marks, retrains), one JSON object a
line in ``<gitml dir>/monitor/<model>/events.jsonl``. Git holds the authoritative story
(deploy records, tags, retrain commits); this file lets the report draw it over time."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitml.repo import MLRepo


def events_path(repo: MLRepo, model: str) -> Path:
    return repo.ml_dir / "monitor" / model / "events.jsonl"


def record(repo: MLRepo, model: str, kind: str, **fields: Any) -> dict[str, Any]:
    """Append one event (``kind``: rollback | mark | retrain | promote | alarm)."""
    from gitml.store.fsutil import file_lock

    ev = {"ts": time.time(), "model": model, "kind": kind, **fields}
    path = events_path(repo, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_suffix(".lock")), path.open("a") as f:
        f.write(json.dumps(ev, default=str) + "\n")
    return ev


def read(repo: MLRepo, model: str) -> list[dict[str, Any]]:
    path = events_path(repo, model)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash
    return out
