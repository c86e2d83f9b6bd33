"""The monitoring view of the HTML report (``git ml report --monitor``): drift per feature
over time, the live figures with their learned limits, alarms, rollbacks and retrains.

:func:`collect` runs a check (the cached windows make it cheap) and reads the monitor's
events; :func:`render_section` is pure (dict in, one ``<section>`` of HTML out, styled by
the report's CSS, inline SVG from :mod:`gitml.checks.plots`); :func:`section` is both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from gitml.checks import plots

if TYPE_CHECKING:
    from gitml.monitor.check import MonitorResult
    from gitml.repo import MLRepo

MAX_POINTS = 240  # windows drawn (the last four hours at one a minute)
SHORT = {"drift": "drift z", "errors": "error rate", "client_errors": "4xx rate",
         "latency": "latency ms", "metric": "live metric"}
TITLES = {"drift": "drift score (z of the smallest Holm-adjusted p-value)",
          "errors": "error rate (server errors, 5xx)",
          "client_errors": "client error rate (requests refused with a 4xx)",
          "latency": "latency (geometric mean, ms)",
          "metric": "live metric (labels joined from feedback)"}


def collect(repo: MLRepo, model: str, *, since: float = 86400.0,
            result: MonitorResult | None = None) -> dict[str, Any]:
    from gitml.monitor import events
    from gitml.monitor.check import run_check

    res = result or run_check(repo, model, since=since)
    data = res.to_dict(with_windows=True)
    data["events"] = events.read(repo, model)
    return data


def section(repo: MLRepo, model: str, *, since: float = 86400.0,
            result: MonitorResult | None = None) -> str:
    """The HTML ``<section>`` for the report (the lead's ``report --monitor`` hook)."""
    return render_section(collect(repo, model, since=since, result=result))


def _t(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError):
        return str(ts)


def _n(v: Any) -> str:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return "-" if v is None else escape(str(v))
    return f"{v:.4g}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _feature_points(windows: Sequence[Mapping[str, Any]], column: str, alpha: float) -> list[dict[str, Any]]:
    pts = []
    limit = -math.log10(alpha)
    for w in windows:
        f = (w.get("features") or {}).get(column)
        p = f.get("p") if isinstance(f, dict) else None
        pts.append({"commit": _t(w.get("start"))[11:16],
                    "value": -math.log10(max(float(p), 1e-12)) if isinstance(p, int | float) else None,
                    "upper": limit, "alarm": bool(f and f.get("drifted"))})
    return pts


def render_section(data: Mapping[str, Any]) -> str:
    model = str(data.get("model", ""))
    windows = list(data.get("window_stats") or [])[-MAX_POINTS:]
    series = data.get("series") or {}
    alpha = float((data.get("config") or {}).get("alpha", 0.05))
    parts = [f'<section id="monitor-{escape(model)}"><h2>Monitoring: {escape(model)}</h2>']
    state = ('<span class="badge fail">action needed: ' + escape(", ".join(data.get("actions") or []))
             + "</span>") if data.get("action_needed") else '<span class="badge pass">within learned limits</span>'
    parts.append(f"<p>{state} version <code>{escape(str(data.get('version') or '?'))}</code> "
                 f"({escape(str(data.get('commit') or '')[:10])}), {int(data.get('windows') or 0)} "
                 f"windows judged, {int(data.get('rows') or 0)} rows in the checked span, checked "
                 f"{escape(_t(data.get('now')))} UTC.</p>")
    parts.append("<p class=note>Each figure is standardised per window against a level learned "
                 "from earlier windows; a one-sided CUSUM (k = "
                 f"{_n((data.get('config') or {}).get('k'))}, h = {_n((data.get('config') or {}).get('h'))}) "
                 "raises the alarm, which keeps false alarms over many windows rare. The orange line is "
                 "the value that would alarm in that window.</p>")
    n = len(windows)
    for figure in ("drift", "errors", "client_errors", "latency", "metric"):
        pts = [dict(p) for p in (series.get(figure) or {}).get("points", [])][-n:] if n else []
        if not any(isinstance(p.get("value"), int | float) for p in pts):
            continue
        for p in pts:
            p["commit"] = str(p.get("commit", ""))[11:16]  # HH:MM (the chart keeps 7 characters)
        parts.append(f"<h3>{escape(TITLES[figure])}</h3>"
                     f"<figure>{plots.history_chart(pts, SHORT[figure])}</figure>")
    # drift per feature over time: the features that drifted, or the least stable ones
    columns: dict[str, float] = {}
    for w in windows:
        for col, f in (w.get("features") or {}).items():
            pv = f.get("p") if isinstance(f, dict) else None
            if isinstance(pv, int | float):
                columns[col] = max(columns.get(col, 0.0), -math.log10(max(float(pv), 1e-12)))
    if columns:
        parts.append("<h3>Drift per feature over time</h3><p class=note>−log10 of each column's "
                     f"Holm-adjusted p-value per window against the deployed version's reference; "
                     f"above the orange line (alpha {alpha:g}) the column drifted in that window.</p>")
        for col in sorted(columns, key=lambda c: -columns[c])[:6]:
            parts.append(f"<figure>{plots.history_chart(_feature_points(windows, col, alpha), f'{col[:14]}: −log10 p')}"
                         f"<figcaption>{escape(col)}</figcaption></figure>")
    snap = data.get("snapshot") or {}
    feats = snap.get("features") or {}
    if feats:
        items = sorted(((k, float(v.get("effect") or 0.0)) for k, v in feats.items()
                        if isinstance(v.get("effect"), int | float) and math.isfinite(v.get("effect"))),
                       key=lambda kv: -kv[1])
        parts.append("<h3>Drift over the checked span (effect size per column)</h3>"
                     f"<figure>{plots.bar_chart(items, 'drift effect', highlight=[k for k, v in feats.items() if v.get('drifted')])}"
                     f"<figcaption>{int(snap.get('rows') or 0)} rows; red: drifted (Holm-adjusted p &lt; {alpha:g})</figcaption></figure>")
    errs = snap.get("errors") or {}
    if errs.get("top"):
        parts.append(f"<h3>Failed requests over the checked span</h3><p class=note>{int(errs['failed'])} "
                     f"of {int(errs['requests'])} requests failed; the most frequent reasons:</p>")
        parts.append(_table(["status", "class", "message", "requests"],
                            [[_n(e["status"]), escape(e["error_class"]), escape(e["error_message"][:160]),
                              _n(e["count"])] for e in errs["top"]]))
    alarms = data.get("alarms") or []
    parts.append("<h3>Alarms</h3>")
    parts.append(_table(["figure", "window", "version", "value", "level", "limit", "detail"],
                        [[escape(a["figure"]), escape(a["window"]), escape(str(a["version"])),
                          _n(a.get("value")), _n(a.get("level")), _n(a.get("limit")),
                          escape(str(a.get("detail", "")))] for a in alarms[-30:]])
                 if alarms else "<p class=note>no alarm in the checked span</p>")
    evs = [e for e in data.get("events") or [] if e.get("kind") in ("rollback", "mark", "retrain", "promote")]
    parts.append("<h3>Rollbacks and retrains</h3>")
    parts.append(_table(["when", "what", "version", "detail"],
                        [[escape(_t(e.get("ts"))), escape(str(e.get("kind"))),
                          escape(str(e.get("version") or e.get("from") or "")),
                          escape(str(e.get("message") or e.get("reason") or ""))] for e in evs[-30:]])
                 if evs else "<p class=note>none recorded</p>")
    parts.append("</section>")
    return "".join(parts)


def write_page(path: Any, sections: Sequence[str], title: str = "git ml monitoring") -> None:
    """A standalone page of monitoring sections (the report's CSS), for `monitor --html`."""
    from gitml.checks.report import CSS
    from gitml.store.fsutil import atomic_write_text

    atomic_write_text(path, f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}"
                            f"</title><style>{CSS}</style></head><body><header><h1>{escape(title)}"
                            f"</h1></header><main>{''.join(sections)}</main></body></html>")
