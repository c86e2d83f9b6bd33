"""The list of paths that make a commit gitml's business, for the shell hooks' fast path.

`pre-commit` starts Python only when a staged change touches a pointer (``*.gitml``),
``.gitml/`` or a path the committed config declares (a model or data file kept in Git,
data with rules). The declared paths depend on the config, so the list is written with the
blob id of the config it came from; a hook that finds another id staged runs Python, which
writes the list anew. A stale or missing list therefore costs a Python start-up, never a
skipped gate.
"""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any

from gitml.layout import COMMITTED_DIR, COMMITTED_NAME
from gitml.store.fsutil import atomic_write_text

if TYPE_CHECKING:
    from gitml.repo import MLRepo

WATCH_FILE = "hook-watch"
CONFIG_PATH = f"{COMMITTED_DIR}/{COMMITTED_NAME}"


def declared_paths(config: dict[str, Any]) -> list[str]:
    """Every path the config's ``[models.*]`` (path, data, reference) and ``[data."<path>"]``
    tables name, as written (work-tree relative)."""
    paths: set[str] = set()
    models = config.get("models", {})
    if isinstance(models, dict):
        for spec in models.values():
            if isinstance(spec, dict):
                for key in ("path", "data", "reference"):
                    value = spec.get(key)
                    if isinstance(value, str) and value.strip("/"):
                        paths.add(value.strip("/"))
    data = config.get("data", {})
    if isinstance(data, dict):
        paths.update(k.strip("/") for k in data if isinstance(k, str) and k.strip("/"))
    return sorted(p for p in paths if "\n" not in p)


def write_watch_list(repo: MLRepo) -> None:
    """Record the staged config's declared paths for the next commit's shell fast path.

    Written only from a config that parses: a malformed one keeps every commit on the slow
    path, where the hook reports it."""
    blob_id = repo.git.index_blob_id(CONFIG_PATH)
    data = repo.git.read_blob(None, CONFIG_PATH) if blob_id else b""
    try:
        config = tomllib.loads((data or b"").decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        (repo.ml_dir / WATCH_FILE).unlink(missing_ok=True)
        return
    lines = [f"config {blob_id or 'none'}", *declared_paths(config)]
    repo.ml_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(repo.ml_dir / WATCH_FILE, "\n".join(lines) + "\n")
