"""`git ml report`: one self-contained HTML page of every model's gate results at a
revision — metric history with learned limits, per-group fairness bars, SHAP importance,
drift per feature, data-quality findings. Inline CSS and SVG only: no script, no network.

:func:`collect` reads ``.gitml/checks/*.json`` at the revision and each model's metric
history from Git; :func:`render` is pure (dicts in, HTML out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.checks import plots
from gitml.errors import GitMLError

if TYPE_CHECKING:
    from gitml.repo import MLRepo

CHECKS_DIR = ".gitml/checks"
RUNS_DIR = ".gitml/runs"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#111;background:#fff}
header{background:#111827;color:#f9fafb;padding:16px 28px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#9ca3af;font-size:13px}
main{max-width:960px;margin:0 auto;padding:12px 28px 48px}
h2{border-bottom:2px solid #e5e7eb;padding-bottom:4px;margin-top:36px}
h3{margin:22px 0 6px;font-size:15px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0 12px}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:600}
.skip{color:#6b7280}.warn{color:#b45309;font-weight:600}.info{color:#6b7280}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600}
.badge.pass{background:#dcfce7}.badge.fail{background:#fee2e2}
p.note{color:#6b7280;font-size:12px;margin:2px 0 8px}
figure{margin:6px 0 14px}figcaption{font-size:12px;color:#6b7280}
code{background:#f3f4f6;padding:0 3px;border-radius:3px}
"""


# ---------------------------------------------------------------------------- collecting
def collect(repo: MLRepo, rev: str = "HEAD", models: Sequence[str] | None = None,
            max_metrics: int = 6) -> dict[str, Any]:
    """Everything the report shows, as plain data."""
    if repo.git.head() is None:
        raise GitMLError("the repository has no commits yet", "commit once, then `git ml report`")
    commit = repo.git.resolve(rev)
    docs = _results_docs(repo, commit, models)
    if models:
        missing = sorted(set(models) - {d["model"] for d in docs})
        if missing:
            raise GitMLError(f"no committed results for {', '.join(missing)} at {rev}",
                             "run `git ml check` and commit .gitml/checks/")
    from gitml.registry.card import card_html

    for doc in docs:
        history = _history(repo, commit, doc)
        if history is not None:
            doc["_history"] = history
        doc["_card"] = card_html(repo, str(doc["model"]))  # "" until a version is registered
    stages: list[dict[str, Any]] = []
    if not models:
        stages = _stage_histories(repo, commit, max_metrics)
    return {"rev": rev, "commit": commit, "models": docs, "stages": stages,
            "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def _results_docs(repo: MLRepo, commit: str, models: Sequence[str] | None) -> list[dict[str, Any]]:
    """The committed ``.gitml/checks/<model>.json`` documents at ``commit``."""
    from gitml.git.walk import dir_blobs

    docs: list[dict[str, Any]] = []
    for path, data in sorted(dir_blobs(repo.git, commit, CHECKS_DIR, ".json").items()):
        try:
            doc = json.loads(data)
        except ValueError:
            continue
        if not isinstance(doc, dict) or "results" not in doc:
            continue
        doc.setdefault("model", Path(path).stem)
        if not models or doc["model"] in models:
            docs.append(doc)
    return docs


def _history(repo: MLRepo, commit: str, doc: dict[str, Any]) -> dict[str, Any] | None:
    """A model's metric history: the anomaly gate's points when it ran, else the
    detector run over the committed results."""
    from gitml.checks.anomaly import AnomalyConfig, detect, history_from_git, pick_metric
    from gitml.git.walk import file_history

    anomaly = next((r for r in doc["results"] if r.get("gate") == "anomaly"
                    and (r.get("metrics") or {}).get("points")), None)
    if anomaly is not None:
        points = [dict(p) for p in anomaly["metrics"]["points"]]
        if points and str(points[-1].get("commit", "")).startswith("("):
            # checked before it was committed: name the commit that recorded it
            versions = file_history(repo.git, commit, f"{CHECKS_DIR}/{doc['model']}.json", 1)
            if versions:
                points[-1]["commit"] = versions[-1].commit
        return {"metric": anomaly["metrics"].get("metric"), "points": points, "source": "anomaly gate"}
    metric = pick_metric(_eval_metrics(doc))
    if metric is None:
        return None
    cfg = AnomalyConfig(metric=metric)
    hist = history_from_git(repo, str(doc["model"]), metric, commit, cfg)
    return {"metric": metric, "points": [p.to_dict() for p in detect(hist, cfg, metric)],
            "source": "history"}


def _stage_histories(repo: MLRepo, commit: str, max_metrics: int) -> list[dict[str, Any]]:
    """Metric histories of the pipeline stages (``.gitml/runs/<stage>.json``) with the
    detector's learned limits."""
    from gitml.checks.anomaly import AnomalyConfig, detect, history_from_git, metrics_from_run
    from gitml.git.walk import dir_blobs

    out: list[dict[str, Any]] = []
    for path, data in sorted(dir_blobs(repo.git, commit, RUNS_DIR, ".json").items()):
        stage = Path(path).stem
        values = metrics_from_run(data)
        charts = []
        for metric in sorted(values)[:max_metrics]:
            cfg = AnomalyConfig(metric=metric, source=f"runs:{stage}")
            hist = history_from_git(repo, stage, metric, commit, cfg)
            charts.append({"metric": metric,
                           "points": [p.to_dict() for p in detect(hist, cfg, metric)]})
        if charts:
            out.append({"stage": stage, "metrics": charts})
    return out


def _eval_metrics(doc: Mapping[str, Any]) -> dict[str, Any]:
    for r in doc.get("results", []):
        m = r.get("metrics") or {}
        if str(r.get("gate", "")).startswith("eval") and isinstance(m.get("metrics"), dict):
            return dict(m["metrics"])
    return {}


def write_report(repo: MLRepo, rev: str, out: Path, models: Sequence[str] | None = None,
                 extra_sections: Sequence[str] = ()) -> dict[str, Any]:
    """Write the page; ``extra_sections`` (the experiment and monitoring views, as HTML
    ``<section>`` strings) go at the end of its ``<main>``."""
    data = collect(repo, rev, models)
    html = render(data)
    if extra_sections:
        end = html.rfind("</main>")
        html = html[:end] + "".join(extra_sections) + html[end:]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    except OSError as e:
        raise GitMLError(f"cannot write {out}: {e.strerror}", "choose another -o path") from e
    return data


# ---------------------------------------------------------------------------- rendering
def _num(v: Any, digits: int = 4) -> str:
    if isinstance(v, bool) or v is None:
        return "—" if v is None else str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.{digits}g}"
    return escape(str(v))


def _status(r: Mapping[str, Any]) -> str:
    if r.get("skipped"):
        return '<span class="skip">skipped</span>'
    if r.get("passed"):
        return '<span class="pass">pass</span>'
    return '<span class="fail">FAIL</span>' if r.get("blocking", True) else \
        '<span class="warn">fail (not blocking)</span>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _section_history(doc: Mapping[str, Any]) -> str:
    hist = doc.get("_history")
    if not hist:
        return "<h3>Metric history</h3><p class=note>no metric history yet</p>"
    points = hist.get("points") or []
    metric = str(hist.get("metric") or "metric")
    alarms = sum(bool(p.get("alarm")) for p in points)
    cap = (f"{metric} over {len(points)} committed version(s); limits learned from the history "
           f"(robust CUSUM); {alarms} alarm(s)")
    return "<h3>Metric history</h3>" + _figure(plots.history_chart(points, metric), cap)


def _section_eval(results: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for r in results:
        if r.get("gate") != "eval.threshold":
            continue
        m = r.get("metrics") or {}
        values = m.get("metrics") or {}
        checked = m.get("checked") or {}
        rows = [[escape(k), _num(v), _num((checked.get(k) or {}).get("min")),
                 _num((checked.get(k) or {}).get("max"))] for k, v in values.items()]
        out.append("<h3>Evaluation</h3>" + _table(["metric", "value", "min", "max"], rows, (1, 2, 3)))
    for r in results:
        if r.get("gate") == "eval.regression" and not r.get("skipped"):
            out.append(f"<p>Regression vs baseline: {_status(r)} — {escape(str(r.get('message', '')))}</p>")
    return "".join(out)


def _section_bias(results: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for r in results:
        if not str(r.get("gate", "")).startswith("bias."):
            continue
        m = r.get("metrics") or {}
        attr = str(m.get("attribute") or r["gate"].split(".", 1)[1])
        groups = m.get("groups") or {}
        out.append(f"<h3>Fairness: {escape(attr)} {_status(r)}</h3>")
        if groups:
            metrics = ["selection_rate", "tpr", "fpr", "accuracy"]
            if not any("selection_rate" in g for g in groups.values()):
                metrics = sorted({k for g in groups.values() for k, v in g.items()
                                  if isinstance(v, int | float) and k != "n"})
            out.append(_figure(plots.grouped_bars(groups, metrics, f"per-group metrics by {attr}"),
                               f"per-group metrics by {attr} (n per group: "
                               + ", ".join(f"{g}={_num(v.get('n'))}" for g, v in groups.items()) + ")"))
        rows = []
        for key, label in (("dp_diff", "demographic parity difference"),
                           ("dp_ratio", "selection-rate ratio (four-fifths)"),
                           ("eo_diff", "equalized odds difference"),
                           ("eo_ratio", "equalized odds ratio")):
            v = m.get(key)
            if isinstance(v, Mapping):
                limit = v.get("limit")
                if key == "dp_ratio" and limit is None:
                    limit = (m.get("four_fifths") or {}).get("limit")
                rows.append([escape(label), _num(v.get("value")),
                             f"[{_num(v.get('ci_low'))}, {_num(v.get('ci_high'))}]", _num(limit)])
        if rows:
            out.append(_table(["measure", "value", "interval", "limit"], rows, (1,)))
        cf = m.get("counterfactual") or {}
        if cf.get("applicable"):
            rate = cf.get("flip_rate")
            shown = f"{rate:.1%}" if isinstance(rate, int | float) else _num(rate)
            out.append(f"<p>Counterfactual: flipping {escape(attr)} changes {shown} of "
                       f"predictions (limit {_num(cf.get('limit'))}).</p>")
        out.append(f"<p class=note>{escape(str(r.get('message', '')))}</p>")
    return "".join(out)


def _section_explain(results: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for r in results:
        if r.get("gate") != "explain":
            continue
        m = r.get("metrics") or {}
        imp = m.get("importance") or {}
        items = sorted(((str(k), float(v)) for k, v in imp.items()
                        if isinstance(v, int | float)), key=lambda kv: -kv[1])
        out.append(f"<h3>SHAP importance {_status(r)}</h3>")
        out.append(_figure(plots.bar_chart(items, "mean |SHAP|"),
                           f"global mean |SHAP| ({escape(str(m.get('explainer', '')))} explainer, "
                           f"{_num(m.get('rows'))} rows)"))
        shift = m.get("shift") or {}
        if shift:
            out.append(f"<p>Ranking vs {escape(str(shift.get('baseline')))}: Kendall τ "
                       f"{_num(shift.get('kendall_tau'))}, largest rank shift "
                       f"{_num(shift.get('max_rank_shift'))}.</p>")
    return "".join(out)


def _section_drift(results: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for r in results:
        if r.get("gate") != "drift" or r.get("skipped"):
            continue
        m = r.get("metrics") or {}
        feats = [f for f in m.get("features", []) if isinstance(f, Mapping)]
        out.append(f"<h3>Data drift {_status(r)}</h3><p>{escape(str(r.get('message', '')))}</p>")
        items = []
        for f in feats:
            p = f.get("p_adjusted")
            if isinstance(p, int | float):
                items.append((str(f.get("column")), max(0.0, -math.log10(max(float(p), 1e-300)))))
        items.sort(key=lambda kv: -kv[1])
        alpha = float(m.get("alpha") or 0.05)
        out.append(_figure(plots.bar_chart(
            items, "drift per feature", highlight=[str(f.get("column")) for f in feats if f.get("drifted")],
            reference=-math.log10(alpha), reference_label=f"α = {alpha:g}", value_format="{:.2f}"),
            f"−log10 adjusted p-value per feature ({m.get('correction', 'holm')}); red: drifted; "
            f"drift share {_num(m.get('drift_share'))}"))
        rows = [[escape(str(f.get("column"))), escape(str(f.get("test"))), _num(f.get("statistic")),
                 _num(f.get("p_value")), _num(f.get("p_adjusted")), _num(f.get("effect")),
                 '<span class="fail">yes</span>' if f.get("drifted") else "no",
                 escape(str(f.get("note") or ""))] for f in feats]
        out.append(_table(["feature", "test", "statistic", "p", "p adj.", "effect", "drift", "note"],
                          rows, (2, 3, 4, 5)))
    return "".join(out)


def _section_quality(results: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for r in results:
        if r.get("gate") != "quality":
            continue
        m = r.get("metrics") or {}
        findings = [f for f in m.get("findings", []) if isinstance(f, Mapping)]
        out.append(f"<h3>Data quality: {escape(str(m.get('data', '')))} {_status(r)}</h3>"
                   f"<p>{escape(str(r.get('message', '')))}</p>")
        if findings:
            cls = {"error": "fail", "warning": "warn", "info": "info"}
            rows = [[f'<span class="{cls.get(str(f.get("severity")), "info")}">'
                     f'{escape(str(f.get("severity")))}</span>', escape(str(f.get("check"))),
                     escape(str(f.get("column") or "")), escape(str(f.get("message"))),
                     escape(str(f.get("fix")))] for f in findings]
            out.append(_table(["severity", "check", "column", "finding", "suggested fix"], rows))
    return "".join(out)




def render(data: Mapping[str, Any]) -> str:
    """The whole page."""
    models: list[Mapping[str, Any]] = list(data.get("models") or [])
    commit = str(data.get("commit") or "")
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width,initial-scale=1'>"
             f"<title>git ml report {escape(commit[:10])}</title><style>{CSS}</style></head><body>"
             f"<header><h1>git ml report</h1><p>revision {escape(str(data.get('rev', '')))} "
             f"(<code style='background:#374151'>{escape(commit[:12])}</code>) · generated "
             f"{escape(str(data.get('created', '')))}</p></header><main>"]
    if not models and not data.get("stages"):
        parts.append("<p>No committed gate results at this revision "
                     "(run <code>git ml check</code> and commit <code>.gitml/checks/</code>).</p>")
    overview = []
    for doc in models:
        ok = bool(doc.get("passed", all(r.get("passed") or not r.get("blocking", True)
                                        for r in doc.get("results", []))))
        overview.append([f'<a href="#m-{escape(str(doc["model"]))}">{escape(str(doc["model"]))}</a>',
                         f'<span class="badge {"pass" if ok else "fail"}">{"passed" if ok else "failed"}</span>',
                         escape(str(doc.get("model_oid", ""))[:12]), escape(str(doc.get("created", "")))])
    if overview:
        parts.append("<h2>Models</h2>" + _table(["model", "gates", "model id", "checked"], overview))
    for doc in models:
        results = [r for r in doc.get("results", []) if isinstance(r, Mapping)]
        name = escape(str(doc["model"]))
        parts.append(f'<h2 id="m-{name}">{name}</h2>')
        rows = [[escape(str(r.get("gate"))), _status(r), escape(str(r.get("message", "")))]
                for r in results]
        parts.append(_table(["gate", "result", "detail"], rows))
        parts.append(_section_history(doc))
        parts.append(_section_eval(results))
        parts.append(_section_bias(results))
        parts.append(_section_explain(results))
        parts.append(_section_drift(results))
        parts.append(_section_quality(results))
        parts.append(str(doc.get("_card") or ""))
    stages: list[Mapping[str, Any]] = list(data.get("stages") or [])
    if stages:
        parts.append("<h2>Pipeline metrics</h2><p class=note>from the run records "
                     "(<code>.gitml/runs/</code>) of each commit; limits learned from the history</p>")
    for st in stages:
        parts.append(f"<h3>stage {escape(str(st.get('stage')))}</h3>")
        for chart in st.get("metrics", []):
            points = chart.get("points") or []
            metric = str(chart.get("metric"))
            alarms = sum(bool(p.get("alarm")) for p in points)
            parts.append(_figure(plots.history_chart(points, metric),
                                 f"{metric} over {len(points)} run(s); {alarms} alarm(s)"))
    parts.append("</main></body></html>")
    return "".join(parts)
