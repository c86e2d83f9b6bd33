"""Model cards from what Git already holds.

A card describes one version: intended use and owner (``[card.<model>]`` in
``.gitml/config.toml``: ``owner``, ``intended_use``, ``limitations``), the training data
and lineage with their ids (the run records at the commit), the environment, the
evaluation metrics with their intervals, the bias table, the top SHAP features, the gate
verdicts, and the registry and deploy events (who, when, signed or not).

One structure, two renderings: :func:`card_markdown` (``git ml card``, the registration
tag's message) and :func:`card_html` (a section of the HTML report).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError
from gitml.models.spec import spec_at_or_current

if TYPE_CHECKING:
    from gitml.models.spec import ModelSpec
    from gitml.registry.gates import Verdict
    from gitml.repo import MLRepo


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)                 # plain text lines
    header: list[str] = field(default_factory=list)                # a table, when set
    rows: list[list[str]] = field(default_factory=list)


def _when(ts: int | float | None) -> str:
    if not ts:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, int | float):
        return f"{v:.4g}"
    return str(v)


def _interval(d: Any) -> str:
    if isinstance(d, dict) and "value" in d:
        lo, hi = d.get("ci_low"), d.get("ci_high")
        base = _num(d["value"])
        return f"{base} [{_num(lo)}, {_num(hi)}]" if lo is not None and hi is not None else base
    return _num(d)


def _runs_at(repo: MLRepo, commit: str) -> list[dict[str, Any]]:
    blobs = repo.git.tree_blobs(commit, ".json")
    out = []
    for path, raw in sorted(blobs.items()):
        if path.startswith(".gitml/runs/"):
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
    return out


def sections(repo: MLRepo, name: str, version: str, commit: str, *,
             verdict: Verdict | None = None) -> list[Section]:
    """The card's sections, each from what Git holds at ``commit``."""
    from gitml.registry import gates

    spec = spec_at_or_current(repo, name, commit)
    if verdict is None:
        verdict = gates.recorded(repo, spec, commit)
    results = [r for r in (verdict.doc or {}).get("results", []) if isinstance(r, dict)]
    data, env_id = _data_section(repo, spec, commit)
    return [_model_section(repo, spec, name, version, commit), data,
            _environment_section(repo, commit, env_id), _evaluation_section(results),
            _bias_section(results, spec), _shap_section(results), _gates_section(results, verdict),
            _events_section(repo, name, version)]


def _model_section(repo: MLRepo, spec: ModelSpec, name: str, version: str, commit: str) -> Section:
    meta = repo.config.section("card").get(name, {})
    meta = meta if isinstance(meta, dict) else {}
    info = repo.git.run_git("log", "-1", "--format=%an <%ae>%x00%at%x00%s", commit).split("\0")
    owner = str(meta.get("owner") or (info[0] if info else "?"))
    use = (meta.get("intended_use") or spec.raw.get("description")
           or f"not stated (set [card.{name}] intended_use)")
    s = Section("Model")
    s.lines += [f"Model: {name} {version}", f"Commit: {commit} ({info[2].strip() if len(info) > 2 else ''})",
                f"Owner: {owner}", f"Intended use: {use}",
                f"Task: {spec.task}, target {spec.target!r}"
                + (f", positive class {spec.positive!r}" if spec.positive is not None else "")]
    if meta.get("limitations"):
        s.lines.append(f"Limitations: {meta['limitations']}")
    return s


def _data_section(repo: MLRepo, spec: ModelSpec, commit: str) -> tuple[Section, str | None]:
    """Model and data ids, the training inputs from the run that made the model, and the
    id of that run's environment."""
    from gitml.models.load import locate

    d = Section("Data and lineage", header=["role", "path", "id", "via"])
    try:
        m = locate(repo, spec.path, rev=commit)
        d.rows.append(["model", spec.path, m.oid, m.kind])
        e = locate(repo, spec.data, rev=commit)
        d.rows.append(["evaluation data", spec.data, e.oid, e.kind])
    except GitMLError as err:
        d.lines.append(f"cannot locate: {err}")
    env_id = None
    for rec in _runs_at(repo, commit):
        outs = [o for o in rec.get("outputs", []) if isinstance(o, dict)]
        if not any(o.get("path") == spec.path for o in outs):
            continue
        env_id = rec.get("env")
        for i in rec.get("inputs", []):
            if isinstance(i, dict):
                d.rows.append([f"training input ({rec.get('stage')})", str(i.get("path")),
                               str(i.get("oid")), str(i.get("source"))])
        if rec.get("params"):
            d.lines.append("Training parameters: " + ", ".join(
                f"{k}={v}" for k, v in sorted(rec["params"].items())))
        d.lines.append(f"Produced by stage {rec.get('stage')}: `{' '.join(map(str, rec.get('cmd', [])))}`")
    return d, env_id


def _environment_section(repo: MLRepo, commit: str, env_id: str | None) -> Section:
    env = Section("Environment")
    raw_env = repo.git.read_blob(commit, f".gitml/env/{env_id}.json") if env_id else None
    if not raw_env:
        env.lines.append("no training environment recorded (train with `git ml run`)")
        return env
    ed = json.loads(raw_env)
    py = ed.get("python", {})
    plat = ed.get("platform", {})
    env.lines.append(f"Environment id: {env_id}")
    env.lines.append(f"Python {py.get('version', '?')} ({py.get('implementation', '')}), "
                     f"platform {plat.get('system', '') if isinstance(plat, dict) else plat}")
    pk = ed.get("packages", {})
    key = [p for p in ("scikit-learn", "numpy", "pandas", "scipy", "skops") if p in pk]
    if key:
        env.lines.append("Packages: " + ", ".join(f"{p}=={pk[p]}" for p in key))
    return env


def _evaluation_section(results: list[dict[str, Any]]) -> Section:
    ev = Section("Evaluation", header=["metric", "value", "change vs baseline [CI]"])
    for r in results:
        if r.get("gate") == "eval.threshold":
            for k, v in (r.get("metrics", {}).get("metrics") or {}).items():
                ev.rows.append([k, _num(v), ""])
    for r in results:
        if r.get("gate") != "eval.regression":
            continue
        for k, v in r.get("metrics", {}).items():
            if isinstance(v, dict) and "difference" in v:
                row = next((x for x in ev.rows if x[0] == k), None)
                txt = f"{v['difference']:+.4f} [{_num(v.get('ci_low'))}, {_num(v.get('ci_high'))}]"
                if row:
                    row[2] = txt
                else:
                    ev.rows.append([k, "", txt])
    if not ev.rows:
        ev.lines.append("no evaluation recorded")
    return ev


def _bias_section(results: list[dict[str, Any]], spec: ModelSpec) -> Section:
    bias = Section("Bias", header=["attribute", "selection ratio [CI]", "DP diff [CI]", "EO diff [CI]", "verdict"])
    for r in results:
        g = str(r.get("gate", ""))
        if g.startswith("bias."):
            mt = r.get("metrics", {})
            bias.rows.append([g[5:], _interval(mt.get("dp_ratio")), _interval(mt.get("dp_diff")),
                              _interval(mt.get("eo_diff")), "pass" if r.get("passed") else "FAIL"])
    if not bias.rows:
        bias.lines.append("no sensitive attribute declared" if not spec.sensitive else "no bias results recorded")
    return bias


def _shap_section(results: list[dict[str, Any]]) -> Section:
    shap = Section("Top features (mean |SHAP|)", header=["feature", "importance"])
    for r in results:
        if r.get("gate") == "explain":
            imp = r.get("metrics", {}).get("importance") or {}
            ranked = sorted(imp.items(), key=lambda kv: -abs(kv[1]) if isinstance(kv[1], int | float) else 0)
            for k, v in ranked[:5]:
                shap.rows.append([str(k), _num(v)])
    if not shap.rows:
        shap.lines.append("no explanation recorded")
    return shap


def _gates_section(results: list[dict[str, Any]], verdict: Verdict) -> Section:
    gs = Section("Gate verdicts", header=["gate", "verdict", "message"])
    for r in results:
        verdict_txt = "skipped" if r.get("skipped") else ("pass" if r.get("passed") else
                                                          ("FAIL" if r.get("blocking", True) else "warn"))
        gs.rows.append([str(r.get("gate")), verdict_txt, str(r.get("message", ""))])
    gs.lines.append(f"Overall: {verdict.summary()}")
    return gs


def _events_section(repo: MLRepo, name: str, version: str) -> Section:
    from gitml.git.registry import load
    from gitml.registry.records import read_records

    evs = Section("Registry and deploy events", header=["when", "event", "version", "stage/target", "by", "signed"])
    try:
        art = load(repo.git, name).artifacts.get(name)
    except GitMLError:
        art = None
    for event in art.events() if art is not None else []:
        if event.version == version:
            evs.rows.append([_when(event.time), event.event, str(event.version), event.stage or "",
                             f"{event.author} <{event.email}>", "yes" if event.signed else "no"])
    for rec in read_records(repo.git, name=name):
        if rec.get("version") == version:
            evs.rows.append([_when(rec.get("time")), str(rec.get("action")), version,
                             str(rec.get("target")), str(rec.get("by")),
                             "yes" if rec.get("signed") else "no"])
    if not evs.rows:
        evs.lines.append("not registered yet (this card is being attached to its registration)")
    return evs


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def card_markdown(repo: MLRepo, name: str, version: str, commit: str, *,
                  verdict: Verdict | None = None) -> str:
    lines = [f"# Model card: {name} {version}", ""]
    for s in sections(repo, name, version, commit, verdict=verdict):
        lines += [f"## {s.title}", ""]
        lines += [f"- {ln}" for ln in s.lines]
        if s.lines:
            lines.append("")
        if s.rows:
            lines.append("| " + " | ".join(s.header) + " |")
            lines.append("|" + "---|" * len(s.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in s.rows]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def card_html(repo: MLRepo, name: str, version: str | None = None) -> str:
    """The card of ``name`` (a version, or the latest registered one) as an HTML section for
    the report. Empty when the model has no registered version."""
    from gitml.git.registry import load

    art = load(repo.git, name).artifacts.get(name)
    if art is None:
        return ""
    ver = art.find(version) if version else art.latest()
    if ver is None:
        return ""
    out = [f'<section class="model-card"><h3>Model card: {escape(name)} {escape(ver.version)}</h3>']
    for s in sections(repo, name, ver.version, ver.commit):
        out.append(f"<h4>{escape(s.title)}</h4>")
        if s.lines:
            out.append("<ul>" + "".join(f"<li>{escape(ln)}</li>" for ln in s.lines) + "</ul>")
        if s.rows:
            out.append("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in s.header)
                       + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in s.rows]
            out.append("</tbody></table>")
    out.append("</section>")
    return "\n".join(out)
