"""The full manifest of a commit: artifacts, run records, environments, gate results.

Everything is read from the commit itself (committed files under ``.gitml/`` plus the
pointers), so it is the same after a push and a fresh clone. The ``Gitml-Manifest``
trailer carries an id over the Git blob ids of those files; :func:`load` recomputes it
to say whether the message still matches the tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gitml.errors import GitMLError
from gitml.repo import MLRepo
from gitml.runs.errors import ManifestError
from gitml.runs.records import (
    CHECKS_DIR,
    ENV_DIR,
    RUNS_DIR,
    RunRecord,
    check_passed,
    parse_check,
    parse_environment,
    parse_run_record,
)

TRAILER_PREFIX = "Gitml-"
_TRAILER_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*):\s*(.*)$")


def manifest_id(entries: Iterable[tuple[str, str]]) -> str:
    """An id over (path, Git blob id) of every pointer and manifest file."""
    from gitml.store.ids import hash_bytes

    text = "".join(f"{p} {b}\n" for p, b in sorted(entries))
    return hash_bytes(text.encode("utf-8"))


def parse_trailers(message: str) -> list[tuple[str, str]]:
    """Trailers of the last paragraph of a commit message, in order."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return []
    out = []
    for line in paragraphs[-1].splitlines():
        m = _TRAILER_RE.match(line.strip())
        if m:
            out.append((m.group(1), m.group(2).strip()))
    return out


@dataclass
class Manifest:
    commit: str
    summary: str
    author: str
    time: int
    parents: list[str]
    manifest_id: str
    trailer_id: str | None
    trailers: list[tuple[str, str]]
    artifacts: dict[str, dict[str, Any]]
    changed_artifacts: list[dict[str, Any]]
    runs: dict[str, RunRecord]
    changed_runs: list[str]
    environments: dict[str, dict[str, Any]]
    checks: dict[str, dict[str, Any]]
    changed_checks: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool | None:
        return None if self.trailer_id is None else self.trailer_id == self.manifest_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit, "summary": self.summary, "author": self.author, "time": self.time,
            "parents": self.parents, "manifest_id": self.manifest_id,
            "trailer_manifest_id": self.trailer_id, "verified": self.verified,
            "trailers": [[k, v] for k, v in self.trailers],
            "artifacts": self.artifacts, "changed_artifacts": self.changed_artifacts,
            "runs": {k: v.to_dict() for k, v in self.runs.items()}, "changed_runs": self.changed_runs,
            "environments": self.environments,
            "checks": self.checks, "changed_checks": self.changed_checks,
        }


def load(repo: MLRepo, rev: str = "HEAD") -> Manifest:
    from gitml.git import history
    from gitml.store import pointer as ptr

    raw = repo.git.raw
    info = history.commit_info(raw, rev)
    entries = history.tree_manifest_entries(raw, info.id)
    artifacts: dict[str, dict[str, Any]] = {}
    runs: dict[str, RunRecord] = {}
    envs: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, Any]] = {}
    short = info.id[:12]
    for path, blob_id in sorted(entries.items()):
        where = f"{path} (at {short})"
        if path.endswith(ptr.SUFFIX):
            p = ptr.parse(history.blob(raw, blob_id), where)
            artifacts[ptr.artifact_path_for(path)] = p.to_dict()
        elif path.startswith(RUNS_DIR + "/") and path.endswith(".json"):
            rec = parse_run_record(history.blob(raw, blob_id), where)
            runs[rec.stage] = rec
        elif path.startswith(CHECKS_DIR + "/") and path.endswith(".json"):
            checks[path[len(CHECKS_DIR) + 1:-5]] = parse_check(history.blob(raw, blob_id), where)
    for rec in runs.values():
        if rec.env and rec.env not in envs:
            env_blob = entries.get(f"{ENV_DIR}/{rec.env}.json")
            if env_blob is not None:
                envs[rec.env] = parse_environment(history.blob(raw, env_blob), f"{ENV_DIR}/{rec.env}.json")
    changed_arts: list[dict[str, Any]] = []
    changed_runs: list[str] = []
    changed_checks: list[str] = []
    for ch in info.changes:
        if ch.path.endswith(ptr.SUFFIX):
            d: dict[str, Any] = {"path": ptr.artifact_path_for(ch.path), "status": ch.status}
            for side, bid in (("old", ch.old), ("new", ch.new)):
                if bid:
                    try:
                        d[side] = ptr.parse(history.blob(raw, bid), ch.path).to_dict()
                    except GitMLError:  # a damaged pointer is shown as unknown, not a crash
                        d[side] = None
            changed_arts.append(d)
        elif ch.path.startswith(RUNS_DIR + "/") and ch.path.endswith(".json"):
            changed_runs.append(ch.path[len(RUNS_DIR) + 1:-5])
        elif ch.path.startswith(CHECKS_DIR + "/") and ch.path.endswith(".json"):
            changed_checks.append(ch.path[len(CHECKS_DIR) + 1:-5])
    trailers = parse_trailers(info.message)
    tid = next((v for k, v in trailers if k == "Gitml-Manifest"), None)
    return Manifest(commit=info.id, summary=info.summary, author=info.author, time=info.time,
                    parents=info.parents, manifest_id=manifest_id(entries.items()), trailer_id=tid,
                    trailers=trailers, artifacts=artifacts, changed_artifacts=changed_arts, runs=runs,
                    changed_runs=changed_runs, environments=envs, checks=checks,
                    changed_checks=changed_checks)


def checks_summary(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    out = {}
    for name, c in checks.items():
        passed = check_passed(c)
        results = [r for r in c.get("results", []) if isinstance(r, dict)]
        n_ok = sum(1 for r in results if r.get("passed"))
        state = "passed" if passed else ("failed" if passed is False else "no results")
        out[name] = f"{state} ({n_ok}/{len(results)} gates)" if results else state
    return out


__all__ = ["Manifest", "ManifestError", "checks_summary", "load", "manifest_id", "parse_trailers"]
