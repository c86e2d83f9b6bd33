"""``git ml log``: one row per commit with the artifacts it changed and its key metrics.

Fast by construction: the walk diffs each commit's tree against its first parent inside
libgit2 (unchanged subtrees are skipped by id), only the run records and gate results a
commit changed are read, and each parsed blob is cached by its Git blob id so a record
carried unchanged through many commits is parsed once.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitml.repo import MLRepo
from gitml.runs.errors import ManifestError
from gitml.runs.records import (
    CHECKS_DIR,
    RUNS_DIR,
    check_passed,
    parse_check,
    summarize_run_record,
)


@dataclass
class LogRow:
    commit: str
    time: int
    author: str
    summary: str
    artifacts: list[str] = field(default_factory=list)      # "+path", "~path", "-path"
    stages: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "time": self.time, "author": self.author, "summary": self.summary,
                "artifacts": self.artifacts, "stages": self.stages, "metrics": self.metrics,
                "params": self.params, "checks": self.checks, "errors": self.errors}


_MARK = {"A": "+", "M": "~", "D": "-"}


def log_rows(repo: MLRepo, rev: str = "HEAD", max_count: int | None = None, *,
             first_parent: bool = False, only_manifest: bool = False,
             path: str | None = None) -> list[LogRow]:
    from gitml.git import history
    from gitml.store import pointer as ptr

    raw = repo.git.raw
    cache: dict[str, Any] = {}
    disk = _DiskCache(repo.ml_dir / "cache" / "log-blobs.json")
    rows: list[LogRow] = []
    want_ptr = ptr.pointer_path_for(path.rstrip("/")) if path else None
    if path:
        specs: tuple[str, ...] = (want_ptr or "",)
    elif only_manifest:
        specs = ("*" + ptr.SUFFIX, ".gitml/runs/", ".gitml/checks/")
    else:
        specs = ()
    for info in history.log_raw(str(repo.workdir), rev, max_count, first_parent=first_parent,
                                pathspecs=specs):
        row = LogRow(info.id, info.time, info.author, info.summary)
        for ch in info.changes:
            p = ch.path
            if p.endswith(ptr.SUFFIX):
                row.artifacts.append(_MARK[ch.status] + ptr.artifact_path_for(p))
            elif ch.new is None or not p.endswith(".json"):
                continue
            elif p.startswith(RUNS_DIR + "/"):
                rec = cache.get(ch.new) or disk.get(ch.new)
                if rec is None:
                    try:
                        rec = summarize_run_record(history.blob(raw, ch.new), f"{p} (at {info.id[:12]})")
                        disk.put(ch.new, list(rec))
                    except ManifestError as e:
                        rec = e
                    cache[ch.new] = rec
                if isinstance(rec, ManifestError):
                    row.errors.append(str(rec))
                    continue
                row.stages.append(rec[0])
                row.metrics.update(rec[1])
                row.params.update(rec[2])
            elif p.startswith(CHECKS_DIR + "/"):
                key = "check:" + ch.new
                chk = cache.get(key) or disk.get(key)
                if chk is None:
                    try:
                        chk = [check_passed(parse_check(history.blob(raw, ch.new), p))]
                        disk.put(key, chk)
                    except ManifestError as e:
                        chk = e
                    cache[key] = chk
                if isinstance(chk, ManifestError):
                    row.errors.append(str(chk))
                    continue
                row.checks[p[len(CHECKS_DIR) + 1:-5]] = chk[0]
        if want_ptr is not None and not any(ch.path == want_ptr for ch in info.changes):
            continue
        if only_manifest and not (row.artifacts or row.stages or row.checks):
            continue
        rows.append(row)
        if max_count is not None and len(rows) >= max_count:
            break
    disk.save()
    return rows


class _DiskCache:
    """Summaries of run-record and check blobs by Git blob id (blobs never change), kept
    in the store folder so the next `git ml log` reads no blobs it has seen before."""

    MAX = 200_000

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dirty = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self.data: dict[str, Any] = data if isinstance(data, dict) and data.get("v") == 1 else {"v": 1}
        except (OSError, ValueError):
            self.data = {"v": 1}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.dirty = True

    def save(self) -> None:
        if not self.dirty or len(self.data) > self.MAX:
            return
        from gitml.store.fsutil import atomic_write_text

        with contextlib.suppress(OSError):  # a cache: never fail a read-only command over it
            atomic_write_text(self.path, json.dumps(self.data, separators=(",", ":")))


def key_metrics(rows: list[LogRow], limit: int = 3) -> list[str]:
    """The metrics shown as columns: the most frequently recorded ones."""
    counts: dict[str, int] = {}
    for r in rows:
        for k in r.metrics:
            counts[k] = counts.get(k, 0) + 1
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
