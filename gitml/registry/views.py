"""What `git ml models`, `history` and `deployments` show (plain data; the CLI renders)."""

from __future__ import annotations

import json
from typing import Any

from gitml.errors import GitMLError
from gitml.git.registry import Registry, load
from gitml.registry import records
from gitml.repo import MLRepo
from gitml.runs.records import CHECKS_DIR, check_passed


def models(repo: MLRepo, *, deprecated: bool = False) -> list[dict[str, Any]]:
    """One row per model: latest version, stage -> version, what serves on each target.
    Shapes follow ``gto show --json`` (``version``, ``stage``, ``registered``, ``active``)."""
    reg: Registry = load(repo.git)
    stages = reg.stages()
    recs = records.read_records(repo.git)
    out = []
    for name, art in sorted(reg.artifacts.items()):
        if not art.active and not deprecated:
            continue
        latest = art.latest()
        current = art.stages()
        serving: dict[str, Any] = {}
        rollbacks = []
        for target in sorted({str(r.get("target")) for r in recs if r.get("model") == name}):
            r = records.serving_at(recs, name, target)
            if r is None:
                continue
            serving[target] = {"version": f"v{r['version']}", "since": r.get("time"),
                               "action": r.get("action"), "reason": r.get("reason")}
            if r.get("action") == "rollback" and r.get("from"):
                serving[target].update({"from": f"v{r['from']}", "automatic": bool(r.get("automatic"))})
                rollbacks.append(_rollback(target, r))
        out.append({"name": name, "version": latest.version if latest else None,
                    "stage": {s: (current[s][0].version if s in current else None) for s in stages},
                    "registered": any(v.registered for v in art.versions.values()),
                    "active": art.active, "serving": serving, "rolled_back": rollbacks})
    return out


def _rollback(target: str, r: dict[str, Any]) -> dict[str, Any]:
    """What a rollback record says about the version it took out of service."""
    return {"target": target, "version": f"v{r['from']}", "serving": f"v{r['version']}",
            "automatic": bool(r.get("automatic")), "reason": r.get("reason"), "time": r.get("time"),
            "stage": r.get("unassigned"), "unassign_tag": r.get("unassign_tag"),
            "unassign_error": r.get("unassign_error")}


def stage_notes(row: dict[str, Any], stage: str) -> list[str]:
    """Why the stage's version and what serves differ after a rollback (for the table)."""
    notes = []
    named = row["stage"].get(stage)
    for rb in row.get("rolled_back", []):
        if named == rb["version"]:
            notes.append(f"rolled back on {rb['target']}")  # the stage still names it
        elif rb["stage"] == stage:
            notes.append(f"{rb['version']} rolled back")  # taken out of the stage
    return notes


def _metrics_at(repo: MLRepo, name: str, commit: str, cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if commit in cache:
        return cache[commit]
    out: dict[str, Any] = {}
    raw = repo.git.read_blob(commit, f"{CHECKS_DIR}/{name}.json")
    if raw is not None:
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {}
        for r in doc.get("results", []) if isinstance(doc, dict) else []:
            if isinstance(r, dict) and r.get("gate") == "eval.threshold":
                vals = (r.get("metrics") or {}).get("metrics") or {}
                out.update({k: v for k, v in vals.items() if isinstance(v, int | float)})
        ok = check_passed(doc) if isinstance(doc, dict) else None
        out["gates"] = "passed" if ok else ("failed" if ok is False else "none")
    cache[commit] = out
    return out


def history(repo: MLRepo, name: str | None = None) -> list[dict[str, Any]]:
    """Registry events (GTO's ``history`` fields) and deploy records, oldest first, each
    with the metrics its commit recorded."""
    reg = load(repo.git, name)
    if name is not None and name not in reg.artifacts:
        reg.artifact(name)  # raises the "no registry tags" error
    cache: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for art in reg.artifacts.values():
        for e in art.events():
            d = e.to_dict()
            d["kind"] = "registry"
            d["metrics"] = _metrics_at(repo, art.name, e.commit, cache)
            rows.append(d)
    for r in records.read_records(repo.git, name=name):
        commit = str(r.get("commit") or "")
        rows.append({"timestamp": r.get("time"), "artifact": r.get("model"),
                     "event": str(r.get("action")), "version": f"v{r['version']}" if r.get("version") else None,
                     "stage": None, "target": r.get("target"), "from": r.get("from"),
                     "commit": commit or None, "author": r.get("by"), "message": r.get("reason", ""),
                     "signed": bool(r.get("signed")), "tag": r.get("tag"), "kind": "deploy",
                     "metrics": _metrics_at(repo, str(r.get("model")), commit, cache) if commit else {}})
    rows.sort(key=lambda d: float(d.get("timestamp") or 0))
    return rows


def deployments(repo: MLRepo, *, at: float | None = None) -> list[dict[str, Any]]:
    """What serves (or served at ``at``) per model and target, since when and why."""
    recs = records.read_records(repo.git)
    pairs = sorted({(str(r.get("model")), str(r.get("target"))) for r in recs})
    stages: dict[str, dict[str, str]] = {}
    watched: dict[str, list[str]] = {}
    if at is None and pairs:  # the registry as it is now (the stages of a past time: `history`)
        from gitml.registry.settings import load_settings

        reg = load(repo.git)
        stages = {n: {s: v.version for s, (v, _) in a.stages().items()}
                  for n, a in reg.artifacts.items()}
        watched = {t.name: t.stages for t in load_settings(repo).targets.values()}
    out = []
    for model, target in pairs:
        r = records.serving_at(recs, model, target, at)
        if r is None:
            continue
        out.append({"model": model, "target": target, "version": r.get("version"),
                    "since": r.get("time"), "action": r.get("action"), "from": r.get("from"),
                    "reason": r.get("reason"), "by": r.get("by"), "url": r.get("url"),
                    "commit": r.get("commit"), "tag": r.get("tag"),
                    "signed": bool(r.get("signed")), "signer": r.get("signer"),
                    "automatic": bool(r.get("automatic")), "unassigned": r.get("unassigned"),
                    "unassign_tag": r.get("unassign_tag"), "unassign_error": r.get("unassign_error"),
                    "stages": _stages_naming_other(stages.get(model, {}), watched.get(target),
                                                   str(r.get("version")))})
    return out


def _stages_naming_other(stages: dict[str, str], watched: list[str] | None,
                         serving: str) -> dict[str, str]:
    """The target's stages (all, for a target the config does not declare) whose version
    is not the one serving: stage -> version."""
    return {s: v for s, v in stages.items()
            if (watched is None or s in watched) and v.removeprefix("v") != serving}


def parse_when(text: str) -> float:
    """A time for --at: Unix seconds, or an ISO 8601 date/time (UTC unless it says)."""
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as e:
        raise GitMLError(f"cannot read the time {text!r}",
                         "use ISO 8601 (2026-11-30T06:00:00) or Unix seconds") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
