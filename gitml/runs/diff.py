"""``git ml diff A B``: what changed in metrics, params, environment and data."""

from __future__ import annotations

from typing import Any

from gitml.errors import GitMLError
from gitml.repo import MLRepo
from gitml.runs.manifest import Manifest


def _version_key(v: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for piece in v.replace("-", ".").replace("+", ".").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return tuple(parts)


def diff_packages(a: dict[str, str], b: dict[str, str]) -> dict[str, Any]:
    added = {k: b[k] for k in sorted(set(b) - set(a))}
    removed = {k: a[k] for k in sorted(set(a) - set(b))}
    upgraded: dict[str, list[str]] = {}
    downgraded: dict[str, list[str]] = {}
    for k in sorted(set(a) & set(b)):
        if a[k] == b[k]:
            continue
        try:
            up = _version_key(b[k]) > _version_key(a[k])
        except TypeError:
            up = True
        (upgraded if up else downgraded)[k] = [a[k], b[k]]
    return {"added": added, "removed": removed, "upgraded": upgraded, "downgraded": downgraded}


def diff_environments(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    a = a or {}
    b = b or {}
    out: dict[str, Any] = {"ids": [a.get("id"), b.get("id")], "same": a.get("id") == b.get("id")}
    if out["same"]:
        return out
    if not a or not b:  # a stage that appeared or went away: nothing to compare
        out["only"] = "new" if b else "old"
        return out
    for key in ("python", "platform", "cpu", "memory_bytes", "gpus"):
        if a.get(key) != b.get(key):
            out[key] = [a.get(key), b.get(key)]
    out["packages"] = diff_packages(a.get("packages", {}) or {}, b.get("packages", {}) or {})
    return out


def _numeric_delta(x: Any, y: Any) -> float | None:
    if isinstance(x, bool) or isinstance(y, bool):
        return None
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return y - x
    return None


def diff_values(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if x == y and k in a and k in b:
            continue
        out[k] = {"old": x, "new": y, "delta": _numeric_delta(x, y)}
    return out


def _data_diff(repo: MLRepo, path: str, rev_a: str, rev_b: str, old: dict[str, Any] | None,
               new: dict[str, Any] | None) -> dict[str, Any] | None:
    from gitml.runs import tabular

    if tabular.kind_of(path) is None:
        return None
    if (old and old.get("kind") == "dir") or (new and new.get("kind") == "dir"):
        return None
    from gitml.artifacts import api

    summaries: list[dict[str, Any] | None] = []
    for rev, side in ((rev_a, old), (rev_b, new)):
        if side is None:
            summaries.append(None)
            continue
        try:
            f = api.materialize(path, rev, repo)
            summaries.append(tabular.summarize(f, path))
        except GitMLError as e:
            return {"error": f"content not available: {e.message}"}
        except Exception as e:  # a damaged file: report it, do not fail the whole diff
            return {"error": f"cannot read as {tabular.kind_of(path)}: {type(e).__name__}: {e}"}
    out = tabular.diff_summaries(summaries[0], summaries[1])
    out["format"] = tabular.kind_of(path)
    return out


def diff(repo: MLRepo, a: Manifest, b: Manifest, *, data: bool = True) -> dict[str, Any]:
    params_a: dict[str, Any] = {}
    params_b: dict[str, Any] = {}
    metrics_a: dict[str, Any] = {}
    metrics_b: dict[str, Any] = {}
    stages = sorted(set(a.runs) | set(b.runs))
    multi = len(stages) > 1
    for stage in stages:
        pre = f"{stage}." if multi else ""
        if stage in a.runs:
            params_a.update({pre + k: v for k, v in a.runs[stage].params.items()})
            metrics_a.update({pre + k: v for k, v in a.runs[stage].metrics.items()})
        if stage in b.runs:
            params_b.update({pre + k: v for k, v in b.runs[stage].params.items()})
            metrics_b.update({pre + k: v for k, v in b.runs[stage].metrics.items()})
    envs = {}
    for stage in stages:
        ea = a.environments.get(a.runs[stage].env or "") if stage in a.runs else None
        eb = b.environments.get(b.runs[stage].env or "") if stage in b.runs else None
        if ea or eb:
            envs[stage] = diff_environments(ea, eb)
    artifacts = []
    for path in sorted(set(a.artifacts) | set(b.artifacts)):
        old, new = a.artifacts.get(path), b.artifacts.get(path)
        if old == new:
            continue
        status = "added" if old is None else ("removed" if new is None else "modified")
        entry: dict[str, Any] = {"path": path, "status": status, "old": old, "new": new}
        if data:
            d = _data_diff(repo, path, a.commit, b.commit, old, new)
            if d is not None:
                entry["data"] = d
        artifacts.append(entry)
    from gitml.runs.manifest import checks_summary

    ca, cb = checks_summary(a.checks), checks_summary(b.checks)
    checks = {k: [ca.get(k), cb.get(k)] for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)}
    return {
        "a": a.commit, "b": b.commit,
        "metrics": diff_values(metrics_a, metrics_b),
        "params": diff_values(params_a, params_b),
        "environment": envs,
        "artifacts": artifacts,
        "checks": checks,
        "stages": {"added": sorted(set(b.runs) - set(a.runs)), "removed": sorted(set(a.runs) - set(b.runs))},
    }
