"""Cache of gate results keyed by (model id, data id, config hash, baseline id).

Lives under ``<git common dir>/ml/cache/checks/`` (local, never committed). A commit that
does not change a model, its evaluation data, its declaration or its baseline costs a
file read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.checks.results import ModelResult

if TYPE_CHECKING:
    from gitml.repo import MLRepo

CACHE_VERSION = "2"  # 2: the registry (trivial-baseline gate; explain only when declared)


def cache_key(model_oid: str, data_oid: str, config_hash: str, baseline: str | None) -> str:
    blob = "\0".join([CACHE_VERSION, model_oid, data_oid, config_hash, baseline or "-"])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cache_dir(repo: MLRepo) -> Path:
    return repo.ml_dir / "cache" / "checks"


def get(repo: MLRepo, key: str) -> ModelResult | None:
    path = cache_dir(repo) / f"{key}.json"
    try:
        result = ModelResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    result.cached = True
    return result


def put(repo: MLRepo, key: str, result: ModelResult) -> None:
    from gitml.store.fsutil import atomic_write_bytes

    path = cache_dir(repo) / f"{key}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, result.dumps().encode())
    except OSError:
        pass  # a cache that cannot be written only costs time
