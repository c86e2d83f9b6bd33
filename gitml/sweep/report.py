"""The experiment view of ``git ml report``: params against the objective, the
optimisation history, and step curves, as one HTML section of inline SVG (no JavaScript,
no network), drawn the way ``gitml.checks.plots`` draws. ``checks`` and ``sweep`` are
independent layers, so this module draws its own charts and the CLI joins the pages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

from gitml.repo import MLRepo
from gitml.sweep.trials import Trial, list_trials

WIDTH = 720
FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif" font-size="11"'
BLUE, GREY, ORANGE, RED = "#2563eb", "#6b7280", "#ea580c", "#dc2626"
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04")
MAX_CURVES = 40


def collect(repo: MLRepo, *, study: str | None = None, objective: str | None = None,
            direction: str = "maximize") -> dict[str, Any]:
    """The trials (of one study, or all) with their step histories, and the objective."""
    trials = [t for t in list_trials(repo) if study is None or t.meta.get("study") == study]
    trials = [t for t in trials if "confirms" not in t.meta]
    if objective is None:
        counts: dict[str, int] = {}
        for t in trials:
            for m in t.metrics:
                counts[m] = counts.get(m, 0) + 1
        objective = max(sorted(counts), key=lambda m: counts[m]) if counts else None
    histories: dict[str, list[list[float]]] = {}
    for t in trials[-MAX_CURVES:]:
        data = repo.git.read_blob(t.commit, f".gitml/runs/{t.stage}.json")
        if data is None or objective is None:
            continue
        hist = json.loads(data).get("history", {}).get(objective)
        if isinstance(hist, list) and hist:
            histories[t.name] = hist
    return {"study": study, "objective": objective, "direction": direction,
            "trials": trials, "histories": histories}


def section(data: dict[str, Any]) -> str:
    """``<h2>Experiments</h2>`` and its charts and table."""
    trials: list[Trial] = data["trials"]
    objective: str | None = data["objective"]
    title = "Experiments" + (f" — study {escape(data['study'])}" if data.get("study") else "")
    parts = [f'<h2 id="experiments">{title}</h2>']
    if not trials or objective is None:
        parts.append("<p>No experiments yet (run <code>git ml exp run</code> or "
                     "<code>git ml sweep</code>).</p>")
        return "".join(parts)
    maximize = data.get("direction", "maximize") == "maximize"
    scored = [t for t in trials if isinstance(t.metrics.get(objective), (int, float))]
    parts.append(f"<p class=note>{len(trials)} trial(s); objective <b>{escape(objective)}</b> "
                 f"({'higher' if maximize else 'lower'} is better); each trial is a commit on "
                 "<code>refs/gitml/exps/</code>.</p>")
    parts.append(_figure(history_chart(scored, objective, maximize),
                         f"{objective} by trial, and the best so far"))
    params = sorted({k for t in trials for k in t.overrides})
    for p in params:
        parts.append(_figure(scatter(scored, p, objective),
                             f"{p} against {objective} (pruned trials hollow)"))
    parts.append(_figure(step_curves(data["histories"], objective, {t.name: t.state for t in trials}),
                         f"{objective} by step, last {MAX_CURVES} trials (pruned dashed)"))
    best = sorted(scored, key=lambda t: float(t.metrics[objective]), reverse=maximize)[:10]
    rows = "".join(
        f"<tr><td>{escape(t.name)}</td><td>{escape(t.state)}</td>"
        f'<td class="num">{float(t.metrics[objective]):.4g}</td>'
        f"<td>{escape(', '.join(f'{k}={v}' for k, v in sorted(t.overrides.items())))}</td></tr>"
        for t in best)
    parts.append(f"<h3>Top trials</h3><table><thead><tr><th>trial</th><th>state</th>"
                 f"<th>{escape(objective)}</th><th>params</th></tr></thead><tbody>{rows}</tbody></table>")
    return "".join(parts)


# ------------------------------------------------------------------------------ charts
def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _svg(height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
            f'width="100%" role="img" aria-label="{escape(title)}" {FONT}>'
            f"<title>{escape(title)}</title>" + "".join(body) + "</svg>")


def _empty(title: str, message: str) -> str:
    return _svg(40, [f'<text x="8" y="24" fill="{GREY}">{escape(message)}</text>'], title)


def _range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def _fmt(v: float) -> str:
    a = abs(v)
    return f"{v:.2e}" if a and (a >= 1e4 or a < 1e-3) else f"{v:.4g}"


class _Frame:
    """Plot area with axes: maps data to pixels and draws ticks and labels."""

    def __init__(self, xs: tuple[float, float], ys: tuple[float, float], xlabel: str, ylabel: str,
                 *, height: int = 240, xlog: bool = False) -> None:
        self.left, self.right, self.top, self.bottom = 58, 16, 12, 40
        self.height = height
        self.w = WIDTH - self.left - self.right
        self.h = height - self.top - self.bottom
        self.xlog = xlog
        self.x0, self.x1 = (math.log10(xs[0]), math.log10(xs[1])) if xlog else xs
        self.y0, self.y1 = ys
        self.body: list[str] = []
        self._axes(xlabel, ylabel)

    def x(self, v: float) -> float:
        v = math.log10(v) if self.xlog else v
        return self.left + self.w * (v - self.x0) / ((self.x1 - self.x0) or 1.0)

    def y(self, v: float) -> float:
        return self.top + self.h * (1 - (v - self.y0) / ((self.y1 - self.y0) or 1.0))

    def _axes(self, xlabel: str, ylabel: str) -> None:
        b, t = self.top + self.h, self.top
        self.body.append(f'<line x1="{self.left}" x2="{self.left + self.w}" y1="{b}" y2="{b}" stroke="#999"/>'
                         f'<line x1="{self.left}" x2="{self.left}" y1="{t}" y2="{b}" stroke="#999"/>')
        for i in range(5):
            yv = self.y0 + (self.y1 - self.y0) * i / 4
            yy = self.y(yv)
            self.body.append(f'<line x1="{self.left}" x2="{self.left + self.w}" y1="{yy:.1f}" y2="{yy:.1f}" '
                             f'stroke="#eee"/><text x="{self.left - 4}" y="{yy + 4:.1f}" text-anchor="end" '
                             f'fill="{GREY}">{_fmt(yv)}</text>')
            xv = self.x0 + (self.x1 - self.x0) * i / 4
            xx = self.left + self.w * i / 4
            label = _fmt(10 ** xv if self.xlog else xv)
            self.body.append(f'<text x="{xx:.1f}" y="{b + 14}" text-anchor="middle" fill="{GREY}">{label}</text>')
        self.body.append(f'<text x="{self.left + self.w / 2:.1f}" y="{self.height - 6}" '
                         f'text-anchor="middle">{escape(xlabel)}</text>'
                         f'<text x="12" y="{self.top + self.h / 2:.1f}" text-anchor="middle" '
                         f'transform="rotate(-90 12 {self.top + self.h / 2:.1f})">{escape(ylabel)}</text>')


def history_chart(trials: list[Trial], objective: str, maximize: bool) -> str:
    title = f"optimisation history of {objective}"
    if not trials:
        return _empty(title, "no trial recorded the objective")
    vals = [float(t.metrics[objective]) for t in trials]
    f = _Frame((0.0, max(1.0, len(vals) - 1.0)), _range(vals), "trial (in order)", objective)
    best: list[tuple[float, float]] = []
    cur = -math.inf if maximize else math.inf
    for i, (t, v) in enumerate(zip(trials, vals, strict=True)):
        if t.state == "complete":
            cur = max(cur, v) if maximize else min(cur, v)
        fill = BLUE if t.state == "complete" else "none"
        f.body.append(f'<circle cx="{f.x(i):.1f}" cy="{f.y(v):.1f}" r="3.5" fill="{fill}" stroke="{BLUE}">'
                      f"<title>{escape(t.name)} ({t.state}): {v:.4g}</title></circle>")
        if math.isfinite(cur):
            best.append((f.x(i), f.y(cur)))
    if best:
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in best)
        f.body.append(f'<polyline points="{pts}" fill="none" stroke="{ORANGE}" stroke-width="2"/>')
    return _svg(f.height, f.body, title)


def scatter(trials: list[Trial], param: str, objective: str) -> str:
    title = f"{param} against {objective}"
    pts = [(t.overrides[param], float(t.metrics[objective]), t) for t in trials if param in t.overrides]
    if not pts:
        return _empty(title, f"no trial set {param}")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _, _ in pts)
    ys = _range([y for _, y, _ in pts])
    if numeric:
        xs_raw = [float(v) for v, _, _ in pts]
        xlog = min(xs_raw) > 0 and max(xs_raw) / min(xs_raw) > 50
        lo, hi = min(xs_raw), max(xs_raw)
        xr = (lo * 0.9, hi * 1.1) if xlog else _range(xs_raw)
        f = _Frame(xr, ys, param, objective, xlog=xlog)

        def xpos(v: Any) -> float:
            return f.x(float(v))
    else:
        cats = sorted({str(v) for v, _, _ in pts})
        f = _Frame((-0.5, len(cats) - 0.5), ys, param, objective)
        f.body = [b for b in f.body if 'text-anchor="middle" fill' not in b]  # category labels instead
        for i, c in enumerate(cats):
            f.body.append(f'<text x="{f.x(i):.1f}" y="{f.top + f.h + 14}" text-anchor="middle" '
                          f'fill="{GREY}">{escape(c)}</text>')

        def xpos(v: Any) -> float:
            return f.x(cats.index(str(v)))
    for v, y, t in pts:
        fill = BLUE if t.state == "complete" else "none"
        f.body.append(f'<circle cx="{xpos(v):.1f}" cy="{f.y(y):.1f}" r="3.5" fill="{fill}" '
                      f'stroke="{BLUE}" fill-opacity="0.7"><title>{escape(t.name)}: {escape(param)}={escape(str(v))}, '
                      f"{y:.4g}</title></circle>")
    return _svg(f.height, f.body, title)


def step_curves(histories: dict[str, list[list[float]]], objective: str, states: dict[str, str]) -> str:
    title = f"{objective} by step"
    if not histories:
        return _empty(title, "no step histories (log_metric(name, value, step=...))")
    xs = [float(s) for h in histories.values() for s, _ in h]
    ys = [float(v) for h in histories.values() for _, v in h]
    f = _Frame(_range(xs) if len(set(xs)) > 1 else (xs[0] - 1, xs[0] + 1), _range(ys), "step", objective)
    for i, (name, h) in enumerate(histories.items()):
        color = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="4 3"' if states.get(name) == "pruned" else ""
        pts = " ".join(f"{f.x(float(s)):.1f},{f.y(float(v)):.1f}" for s, v in h)
        f.body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"{dash}>'
                      f"<title>{escape(name)} ({escape(states.get(name, ''))})</title></polyline>")
    return _svg(f.height, f.body, title)
