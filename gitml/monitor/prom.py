"""The monitor's figures for Prometheus: a text exposition, a small loopback endpoint that
serves it (``git ml monitor NAME --watch --serve-metrics PORT``), and alerting rules that
``promtool check rules`` accepts.

The monitor has its own endpoint so the model server's request path stays untouched; the
server's own ``/metrics`` (requests, errors, latency) and this one (drift, learned limits,
CUSUM, alarms) are two scrape targets of one job.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitml.monitor.check import MonitorResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "gitml_monitor_"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(d: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in d.items()) + "}" if d else ""


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


class _Family:
    def __init__(self, name: str, help_text: str, kind: str = "gauge") -> None:
        self.name, self.help, self.kind = PREFIX + name, help_text, kind
        self.samples: list[tuple[dict[str, str], float]] = []

    def add(self, labels: dict[str, str], value: float | None) -> None:
        if value is not None:
            self.samples.append((labels, float(value)))

    def render(self) -> str:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        out += [f"{self.name}{_labels(lab)} {_num(v)}" for lab, v in self.samples]
        return "\n".join(out) + "\n"


def exposition(results: Iterable[MonitorResult]) -> str:
    """Prometheus text format (0.0.4) of the latest check of each model."""
    fam = {n: _Family(n, h, k) for n, h, k in (
        ("check_timestamp_seconds", "When the monitor last checked the model (Unix time).", "gauge"),
        ("check_duration_seconds", "How long the last check took.", "gauge"),
        ("rows", "Traffic rows in the checked span.", "gauge"),
        ("rows_processed_total", "Rows cut into windows and judged by this monitor process.", "counter"),
        ("windows", "Windows judged so far (cached and new).", "gauge"),
        ("action_needed", "1 when an alarm fired in the checked span.", "gauge"),
        ("alarm", "1 when the figure alarmed in the checked span.", "gauge"),
        ("alarms", "Alarms of the figure in the checked span.", "gauge"),
        ("value", "The figure in the latest window (drift: z of the smallest adjusted p-value; "
                  "errors, client_errors: share of requests; latency: geometric mean ms; "
                  "metric: accuracy or MAE).", "gauge"),
        ("level", "The learned in-control level of the figure.", "gauge"),
        ("limit", "The value of the figure that would raise an alarm in the next window.", "gauge"),
        ("cusum", "The CUSUM statistic of the figure.", "gauge"),
        ("cusum_threshold", "The CUSUM decision interval h.", "gauge"),
        ("feature_drift_pvalue", "Holm-adjusted p-value of each input's drift over the span.", "gauge"),
        ("feature_drift_effect", "Effect size of each input's drift over the span.", "gauge"),
        ("labelled_rows", "Rows with a label in the latest window.", "gauge"),
    )}
    for r in results:
        base = {"model": r.model, "version": r.version or ""}
        fam["check_timestamp_seconds"].add(base, r.now)
        fam["check_duration_seconds"].add(base, r.seconds)
        fam["rows"].add(base, r.n_rows)
        fam["rows_processed_total"].add(base, r.rows_processed)
        fam["windows"].add(base, r.n_windows)
        fam["action_needed"].add(base, 1.0 if r.action_needed else 0.0)
        for figure, series in r.series.items():
            lab = {**base, "figure": figure}
            n_alarms = sum(1 for a in r.open_alarms if a.figure == figure)
            fam["alarm"].add(lab, 1.0 if n_alarms else 0.0)
            fam["alarms"].add(lab, n_alarms)
            fam["cusum_threshold"].add(lab, float(r.config.get("h", 0.0)))
            if series.points:
                p = series.points[-1]
                fam["value"].add(lab, p.value)
                fam["level"].add(lab, p.level)
                fam["limit"].add(lab, p.upper if p.upper is not None else p.lower)
                fam["cusum"].add(lab, p.cusum)
        for col, f in (r.snapshot.get("features") or {}).items():
            fam["feature_drift_pvalue"].add({**base, "feature": col}, f.get("p"))
            eff = f.get("effect")
            if isinstance(eff, int | float) and math.isfinite(eff):
                fam["feature_drift_effect"].add({**base, "feature": col}, eff)
        if r.windows:
            fam["labelled_rows"].add(base, r.windows[-1].n_labelled)
    return "".join(f.render() for f in fam.values() if f.samples)


def alert_rules(interval: float = 60.0) -> str:
    """Prometheus alerting rules (YAML) over the exposition above."""
    import yaml

    stale = max(180, int(3 * interval))
    rules = [
        {"alert": "GitmlModelDrift",
         "expr": f'max by (model, version) ({PREFIX}alarm{{figure="drift"}}) == 1',
         "labels": {"severity": "warning", "action": "retrain"},
         "annotations": {"summary": "{{ $labels.model }} {{ $labels.version }}: inputs or predictions drifted",
                         "description": "The CUSUM of the drift z-score passed its threshold; "
                                        "run `git ml monitor {{ $labels.model }}` and consider `git ml retrain`."}},
        {"alert": "GitmlModelMetricDrop",
         "expr": f'max by (model, version) ({PREFIX}alarm{{figure="metric"}}) == 1',
         "labels": {"severity": "critical", "action": "retrain"},
         "annotations": {"summary": "{{ $labels.model }} {{ $labels.version }}: live metric below its learned limit"}},
        {"alert": "GitmlModelErrors",
         "expr": f'max by (model, version) ({PREFIX}alarm{{figure="errors"}}) == 1',
         "labels": {"severity": "critical", "action": "rollback"},
         "annotations": {"summary": "{{ $labels.model }} {{ $labels.version }}: error rate above its learned limit"}},
        {"alert": "GitmlModelClientErrors",
         "expr": f'max by (model, version) ({PREFIX}alarm{{figure="client_errors"}}) == 1',
         "labels": {"severity": "warning", "action": "inspect-errors"},
         "annotations": {"summary": "{{ $labels.model }} {{ $labels.version }}: share of requests "
                                    "refused with a 4xx above its learned limit",
                         "description": "`git ml monitor {{ $labels.model }}` lists the most frequent "
                                        "reasons; roll back if they began with this version."}},
        {"alert": "GitmlModelLatency",
         "expr": f'max by (model, version) ({PREFIX}alarm{{figure="latency"}}) == 1',
         "labels": {"severity": "warning", "action": "rollback"},
         "annotations": {"summary": "{{ $labels.model }} {{ $labels.version }}: latency above its learned limit"}},
        {"alert": "GitmlMonitorStale",
         "expr": f"time() - max by (model) ({PREFIX}check_timestamp_seconds) > {stale}",
         "for": "1m",
         "labels": {"severity": "warning"},
         "annotations": {"summary": "the monitor of {{ $labels.model }} has not checked for over "
                                    f"{stale} s"}},
    ]
    text: str = yaml.safe_dump({"groups": [{"name": "gitml-monitor", "rules": rules}]},
                               sort_keys=False, width=1000)
    return text


class MetricsServer:
    """``GET /metrics`` on a loopback port, serving the latest exposition text."""

    def __init__(self, host: str, port: int, text: Callable[[], str]) -> None:
        get_text = text

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                    self.send_error(404, "only /metrics here")
                    return
                body = get_text().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
