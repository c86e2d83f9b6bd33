"""Profile changes between two commits, for `git ml diff`: for each model, the newest
version profiled at A against the newest at B (load, memory, latency, throughput), and a
warning when the two were measured in different environments."""

from __future__ import annotations

from typing import Any

from gitml.deploy.profiles import profiles_at
from gitml.repo import MLRepo


def _key(p: dict[str, Any]) -> tuple[Any, ...]:
    v = p.get("version")
    nums = tuple(int(x) for x in v.split(".")) if isinstance(v, str) and v.count(".") == 2 else ()
    return (nums, str(p.get("profiled_at", "")))


def _group(p: dict[str, Any]) -> str:
    return str(p.get("model")) + (" (onnx)" if p.get("flavor") == "onnx" else "")


def _metrics(p: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    ld = p.get("load") or {}
    for k in ("seconds", "rss_bytes", "model_bytes"):
        if isinstance(ld.get(k), int | float):
            out[f"load.{k}"] = float(ld[k])
    for rows, e in (p.get("latency") or {}).items():
        for k in ("p50_ms", "p99_ms"):
            v = (e.get("server_path") or {}).get(k)
            if isinstance(v, int | float):
                out[f"latency.{rows}row.{k}"] = float(v)
    for s in p.get("server") or []:
        tag = f"server.w{s.get('workers')}.r{s.get('rows')}"
        for k in ("rps", "p99_ms", "rss_bytes"):
            if isinstance(s.get(k), int | float):
                out[f"{tag}.{k}"] = float(s[k])
    return out


def diff_profiles(repo: MLRepo, a: str, b: str) -> dict[str, dict[str, Any]]:
    """model → {"old", "new" (version labels), "same_environment", "metrics": {name: {old, new, delta}}}."""
    pa, pb = profiles_at(repo, a), profiles_at(repo, b)
    out: dict[str, dict[str, Any]] = {}
    changed = {path for path in set(pa) | set(pb) if pa.get(path) != pb.get(path)}
    groups = {_group(pa.get(p) or pb.get(p) or {}) for p in changed}
    for model in sorted(groups):
        olds = [p for p in pa.values() if _group(p) == model]
        news = [p for p in pb.values() if _group(p) == model]
        old = max(olds, key=_key) if olds else None
        new = max(news, key=_key) if news else None
        if new is None:
            continue
        mo, mn = _metrics(old or {}), _metrics(new)
        metrics = {k: {"old": mo.get(k), "new": mn.get(k),
                       "delta": (mn[k] - mo[k]) if k in mo and k in mn else None}
                   for k in sorted(set(mo) | set(mn)) if mo.get(k) != mn.get(k)}
        out[model] = {
            "old": None if old is None else (old.get("version") or str(old.get("commit"))[:12]),
            "new": new.get("version") or str(new.get("commit"))[:12],
            "same_environment": old is None or old.get("environment") == new.get("environment"),
            "environments": [None if old is None else old.get("environment"), new.get("environment")],
            "cpus": [None if old is None else (old.get("cpu") or {}).get("model"),
                     (new.get("cpu") or {}).get("model")],
            "metrics": metrics,
        }
    return out


def format_profile_diff(d: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for model, e in d.items():
        lines.append(f"profile of {model}: {e['old'] or '-'} -> {e['new']}")
        if not e["same_environment"]:
            lines.append(f"  measured in different environments ({str(e['environments'][0])[:12]} on "
                         f"{e['cpus'][0]} vs {str(e['environments'][1])[:12]} on {e['cpus'][1]}): "
                         "not comparable")
        for name, v in e["metrics"].items():
            old = "-" if v["old"] is None else f"{v['old']:.6g}"
            new = "-" if v["new"] is None else f"{v['new']:.6g}"
            delta = "" if v["delta"] is None else f" ({v['delta']:+.6g})"
            lines.append(f"  {name}: {old} -> {new}{delta}")
    return lines
