"""Inline SVG charts for the HTML report: no matplotlib, no JavaScript, no network.

Each function returns one ``<svg>`` element as a string, sized by its ``viewBox`` so it
scales with the page. Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

WIDTH = 720
FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif" font-size="11"'
BLUE, RED, GREEN, GREY, ORANGE = "#2563eb", "#dc2626", "#16a34a", "#6b7280", "#ea580c"
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04")


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    a = abs(v)
    if a >= 1000 or a < 0.001:
        return f"{v:.2e}"
    return f"{v:.3g}" if a < 1 else f"{v:.4g}"


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    out: list[float] = []
    v = start
    while v <= hi + 1e-12 and len(out) < 20:
        out.append(round(v, 12))
        v += step
    return out


def _svg(height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
            f'width="100%" role="img" aria-label="{escape(title)}" {FONT}>'
            f'<title>{escape(title)}</title>' + "".join(body) + "</svg>")


def empty(title: str, message: str) -> str:
    return _svg(40, [f'<text x="8" y="24" fill="{GREY}">{escape(message)}</text>'], title)


def history_chart(points: Sequence[Mapping[str, Any]], title: str, *, height: int = 260) -> str:
    """A metric's history: values, the learned level, the alarm limits, alarms in red.

    ``points`` are the anomaly detector's points (``commit``, ``value``, ``level``,
    ``lower``, ``upper``, ``alarm``).
    """
    vals = [(i, float(p["value"])) for i, p in enumerate(points)
            if isinstance(p.get("value"), int | float) and math.isfinite(float(p["value"]))]
    if not vals:
        return empty(title, "no history yet")
    ys = [v for _, v in vals]
    for key in ("level", "lower", "upper"):
        ys += [float(p[key]) for p in points if isinstance(p.get(key), int | float)]
    lo, hi = _nice_range(min(ys), max(ys))
    # keep limits that are far away from squashing the data
    data_lo, data_hi = _nice_range(min(v for _, v in vals), max(v for _, v in vals))
    span = data_hi - data_lo
    lo, hi = max(lo, data_lo - 1.5 * span), min(hi, data_hi + 1.5 * span)
    left, right, top, bottom = 56, 12, 14, 46
    w, h = WIDTH - left - right, height - top - bottom
    n = len(points)

    def x(i: float) -> float:
        return left + (w * (i / (n - 1)) if n > 1 else w / 2)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return top + h * (1 - (v - lo) / (hi - lo))

    body = [f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" stroke="#e5e7eb"/>']
    for t in _ticks(lo, hi):
        body.append(f'<line x1="{left}" x2="{left + w}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>'
                    f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="{GREY}">{_fmt(t)}</text>')
    for key, color, dash, label in (("level", GREY, "4 3", "learned level"),
                                    ("lower", ORANGE, "", "alarm limit"),
                                    ("upper", ORANGE, "", "alarm limit")):
        for s in _segments(points, key, x, y):
            body.append(f'<polyline points="{s}" fill="none" stroke="{color}" stroke-width="1.5"'
                        + (f' stroke-dasharray="{dash}"' if dash else "") + f'><title>{label}</title></polyline>')
    body.append(f'<polyline points="{" ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in vals)}" '
                f'fill="none" stroke="{BLUE}" stroke-width="2"/>')
    for i, v in vals:
        p = points[i]
        alarm = bool(p.get("alarm"))
        tip = f"{str(p.get('commit', ''))[:10]}: {_fmt(v)}" + (" — ALARM" if alarm else "")
        body.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="{5 if alarm else 3}" '
                    f'fill="{RED if alarm else BLUE}"><title>{escape(tip)}</title></circle>')
    step = max(1, math.ceil(n / 12))
    for i in range(0, n, step):
        label = str(points[i].get("commit", i))[:7]
        body.append(f'<text x="{x(i):.1f}" y="{top + h + 14}" text-anchor="middle" '
                    f'fill="{GREY}" font-size="9">{escape(label)}</text>')
    ly = height - 12
    body.append(f'<circle cx="{left + 6}" cy="{ly - 4}" r="3" fill="{BLUE}"/>'
                f'<text x="{left + 14}" y="{ly}">{escape(title)}</text>'
                f'<line x1="{left + 200}" x2="{left + 224}" y1="{ly - 4}" y2="{ly - 4}" stroke="{GREY}" stroke-dasharray="4 3"/>'
                f'<text x="{left + 230}" y="{ly}">learned level</text>'
                f'<line x1="{left + 330}" x2="{left + 354}" y1="{ly - 4}" y2="{ly - 4}" stroke="{ORANGE}"/>'
                f'<text x="{left + 360}" y="{ly}">alarm limit</text>'
                f'<circle cx="{left + 450}" cy="{ly - 4}" r="5" fill="{RED}"/>'
                f'<text x="{left + 460}" y="{ly}">alarm</text>')
    return _svg(height, body, title)


def _segments(points: Sequence[Mapping[str, Any]], key: str, x: Callable[[float], float],
              y: Callable[[float], float]) -> list[str]:
    """Polyline point lists of ``key``'s values, broken where a point has none."""
    segs: list[str] = []
    cur: list[str] = []
    for i, p in enumerate(points):
        v = p.get(key)
        if isinstance(v, int | float) and math.isfinite(float(v)):
            cur.append(f"{x(i):.1f},{y(float(v)):.1f}")
        elif cur:
            segs.append(" ".join(cur))
            cur = []
    if cur:
        segs.append(" ".join(cur))
    return segs


def bar_chart(items: Sequence[tuple[str, float]], title: str, *,
              highlight: Sequence[str] = (), reference: float | None = None,
              reference_label: str = "", value_format: str = "{:.3g}",
              max_items: int = 25) -> str:
    """Horizontal bars, largest first as given; ``highlight`` labels are red."""
    items = [(str(k), float(v)) for k, v in items if isinstance(v, int | float)
             and math.isfinite(float(v))][:max_items]
    if not items:
        return empty(title, "nothing to show")
    row = 20
    left = min(220, 12 + 7 * max(len(k) for k, _ in items))
    right = 70
    top = 8
    height = top + row * len(items) + 30
    w = WIDTH - left - right
    vmax = max([v for _, v in items] + [reference or 0.0, 0.0])
    vmin = min([v for _, v in items] + [0.0])
    span = (vmax - vmin) or 1.0

    def x(v: float) -> float:
        return left + w * (v - vmin) / span

    body: list[str] = []
    hl = set(highlight)
    for i, (k, v) in enumerate(items):
        yy = top + i * row
        color = RED if k in hl else BLUE
        x0, x1 = sorted((x(0.0), x(v)))
        body.append(f'<text x="{left - 6}" y="{yy + 14}" text-anchor="end">{escape(k[:40])}</text>'
                    f'<rect x="{x0:.1f}" y="{yy + 3}" width="{max(1.0, x1 - x0):.1f}" height="{row - 6}" '
                    f'fill="{color}"><title>{escape(k)}: {escape(value_format.format(v))}</title></rect>'
                    f'<text x="{x1 + 4:.1f}" y="{yy + 14}" fill="{GREY}">{escape(value_format.format(v))}</text>')
    if reference is not None and math.isfinite(reference):
        rx = x(reference)
        body.append(f'<line x1="{rx:.1f}" x2="{rx:.1f}" y1="{top}" y2="{top + row * len(items)}" '
                    f'stroke="{ORANGE}" stroke-dasharray="4 3"/>'
                    f'<text x="{rx:.1f}" y="{top + row * len(items) + 14}" text-anchor="middle" '
                    f'fill="{ORANGE}">{escape(reference_label)}</text>')
    return _svg(height, body, title)


def grouped_bars(groups: Mapping[str, Mapping[str, Any]], metrics: Sequence[str], title: str) -> str:
    """Vertical bars: one cluster per metric, one bar per group (values in [0, 1])."""
    names = list(groups)
    shown = [m for m in metrics if any(isinstance(groups[g].get(m), int | float) for g in names)]
    if not names or not shown:
        return empty(title, "no per-group metrics")
    height = 240
    left, right, top, bottom = 40, 12, 12, 58
    w, h = WIDTH - left - right, height - top - bottom
    cluster = w / len(shown)
    bw = min(36.0, cluster * 0.8 / len(names))
    body = [f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="#999"/>']
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        yy = top + h * (1 - t)
        body.append(f'<line x1="{left}" x2="{left + w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>'
                    f'<text x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end" fill="{GREY}">{t:g}</text>')
    for ci, m in enumerate(shown):
        cx = left + ci * cluster + (cluster - bw * len(names)) / 2
        for gi, g in enumerate(names):
            v = groups[g].get(m)
            if not isinstance(v, int | float) or not math.isfinite(float(v)):
                continue
            v = float(v)
            bh = h * max(0.0, min(1.0, v))
            body.append(f'<rect x="{cx + gi * bw:.1f}" y="{top + h - bh:.1f}" width="{bw - 2:.1f}" '
                        f'height="{bh:.1f}" fill="{PALETTE[gi % len(PALETTE)]}">'
                        f'<title>{escape(str(g))} {escape(m)}: {v:.3f}</title></rect>')
        body.append(f'<text x="{left + ci * cluster + cluster / 2:.1f}" y="{top + h + 14}" '
                    f'text-anchor="middle">{escape(m)}</text>')
    lx = left
    for gi, g in enumerate(names):
        body.append(f'<rect x="{lx}" y="{height - 18}" width="10" height="10" fill="{PALETTE[gi % len(PALETTE)]}"/>'
                    f'<text x="{lx + 14}" y="{height - 9}">{escape(str(g)[:24])}</text>')
        lx += 24 + 7 * min(24, len(str(g)))
    return _svg(height, body, title)
