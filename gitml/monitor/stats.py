"""What one window of traffic says: drift of inputs and predictions against the deployed
version's reference data, errors, latency, and (when labels have arrived) the live metric
overall and per group.

Drift reuses the drift gate (:func:`gitml.checks.drift.compute_drift`: KS / Anderson–Darling
for numbers, χ² for categories, Holm across all columns). The window's one drift figure is
the smallest adjusted p-value, turned into a z-score ``Φ⁻¹(1 − p)``: under no drift the
adjusted p-value is (at least) uniform, so the z-score is at most standard normal and the
sequential scheme in :mod:`gitml.monitor.sequential` can be calibrated once for every model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from gitml.monitor.config import MonitorConfig

IN = "in."
PRED_COLUMNS = ("pred", "pred_value")
Z_CAP = 8.0
_N = NormalDist()


def z_from_p(p: float) -> float:
    """One-sided z of a p-value, capped so one window cannot dominate the CUSUM."""
    p = min(1.0, max(p, 1e-15))
    if p >= 1.0:
        return -Z_CAP
    return max(-Z_CAP, min(Z_CAP, _N.inv_cdf(1.0 - p)))


def p_from_z(z: float) -> float:
    return 1.0 - _N.cdf(z)


@dataclass
class Reference:
    """The deployed version's reference rows: model inputs, what the model predicted on
    them (``pred`` label text, ``pred_value`` score), the true labels, and the metric."""

    frame: pd.DataFrame  # input columns + pred + pred_value
    task: str = "classification"
    labels: list[str] | None = None  # true labels as text, aligned with frame
    sensitive: list[str] = field(default_factory=list)
    version: str | None = None
    commit: str | None = None

    def accuracy(self, groups: bool = False) -> dict[str, tuple[int, int]]:
        """(correct, n) overall ('' key) and per ``column=value`` group of the reference."""
        if self.labels is None or self.task != "classification":
            return {}
        import numpy as np

        correct = (np.asarray(self.labels, dtype=object)
                   == self.frame["pred"].astype(str).to_numpy(dtype=object))
        out = {"": (int(correct.sum()), len(correct))}
        if groups:
            for col in self.sensitive:
                if col not in self.frame.columns:
                    continue
                vals = self.frame[col].astype(str).to_numpy(dtype=object)
                for v in sorted(set(vals.tolist())):
                    m = vals == v
                    out[f"{col}={v}"] = (int(correct[m].sum()), int(m.sum()))
        return out


@dataclass
class WindowStats:
    start: float  # epoch seconds
    end: float
    n_rows: int
    n_requests: int
    n_errors: int  # requests answered with status >= error_status (server errors)
    version: str
    n_client_errors: int = 0  # requests refused with a 4xx (below error_status)
    latency_log_mean: float | None = None  # mean of ln(ms) over requests
    latency_p50: float | None = None
    latency_p99: float | None = None
    drift_p: float | None = None  # smallest adjusted p-value of the window
    drift_z: float | None = None
    drifted: list[str] = field(default_factory=list)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> p_adj, effect
    # labels (recomputed at every check: feedback arrives late)
    n_labelled: int = 0
    metric: str | None = None
    metric_value: float | None = None
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (correct, n)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["groups"] = {k: list(v) for k, v in self.groups.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowStats:
        d = dict(d)
        d["groups"] = {k: (int(v[0]), int(v[1])) for k, v in (d.get("groups") or {}).items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def input_columns(traffic: pd.DataFrame) -> list[str]:
    return [c[len(IN):] for c in traffic.columns if c.startswith(IN)]


def as_inputs(traffic: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The traffic rows as a frame shaped like the reference (``in.x`` -> ``x``)."""
    cols = {f"{IN}{c}": c for c in columns if f"{IN}{c}" in traffic.columns}
    cols.update({c: c for c in PRED_COLUMNS if c in traffic.columns})
    return traffic[list(cols)].rename(columns=cols)


def drift_of(reference: Reference, rows: pd.DataFrame, cfg: MonitorConfig) -> tuple[float | None, list[str], dict[str, dict[str, Any]]]:
    """(smallest adjusted p, drifted columns, per column p_adj / effect / test)."""
    from gitml.checks.drift import DriftConfig, compute_drift

    columns = [c for c in reference.frame.columns if c in rows.columns]
    if not columns or rows.empty:
        return None, [], {}
    dcfg = DriftConfig(alpha=cfg.alpha, correction=cfg.correction,  # type: ignore[arg-type]
                       columns=columns, max_rows=cfg.max_drift_rows, seed=cfg.seed, block=False)
    report = compute_drift(reference.frame[columns], rows[columns], dcfg)
    tested = [f for f in report.features if f.p_adjusted is not None]
    if not tested:
        return None, [], {}
    per = {f.column: {"p": f.p_adjusted, "effect": f.effect, "test": f.test, "drifted": f.drifted}
           for f in tested}
    p_min = min(float(f.p_adjusted) for f in tested if f.p_adjusted is not None)
    return p_min, [f.column for f in tested if f.drifted], per


def window_stats(reference: Reference | None, traffic: pd.DataFrame, start_us: int, end_us: int,
                 cfg: MonitorConfig) -> WindowStats:
    """Everything but labels for one window's rows (``traffic`` holds only those rows).

    Failed requests (``status`` >= 400) count in the error figures only: latency, drift and
    the version the window belongs to come from the answered ones. ``reference`` None: no
    version answered in the window (nothing to judge drift against)."""
    import numpy as np

    per_request = traffic.drop_duplicates("request_id") if "request_id" in traffic.columns else traffic
    req_status = per_request["status"].to_numpy() if "status" in per_request.columns else np.zeros(len(per_request))
    n_err = int((req_status >= cfg.error_status).sum())
    n_client = int(((req_status >= 400) & (req_status < cfg.error_status)).sum())
    ws = WindowStats(start_us / 1e6, end_us / 1e6, len(traffic), len(per_request), n_err,
                     window_version(traffic), n_client)
    answered = per_request[req_status < 400]
    if "latency_ms" in answered.columns:
        lat = answered["latency_ms"].to_numpy(dtype=float)
        lat = lat[np.isfinite(lat) & (lat > 0)]
        if lat.size:
            ws.latency_log_mean = float(np.log(lat).mean())
            ws.latency_p50 = float(np.percentile(lat, 50))
            ws.latency_p99 = float(np.percentile(lat, 99))
    if reference is None:
        return ws
    ok = answered_rows(traffic)
    p, drifted, per = drift_of(reference, as_inputs(ok, list(reference.frame.columns)), cfg)
    if p is not None:
        ws.drift_p, ws.drift_z, ws.drifted, ws.features = p, z_from_p(p), drifted, per
    return ws


def answered_rows(traffic: pd.DataFrame) -> pd.DataFrame:
    """The rows of answered requests (a prediction logged, status < 400)."""
    ok = traffic[traffic["status"] < 400] if "status" in traffic.columns else traffic
    if "pred" in ok.columns:
        ok = ok[ok["pred"].notna()]
    return ok


def error_summary(traffic: pd.DataFrame, cfg: MonitorConfig, top: int = 5) -> dict[str, Any]:
    """Requests, failed requests by status, and the most frequent failures (status, class,
    message) of a span of the log."""
    if traffic.empty or "status" not in traffic.columns:
        return {"requests": 0, "failed": 0, "server_errors": 0, "client_errors": 0,
                "by_status": {}, "top": []}
    req = traffic.drop_duplicates("request_id") if "request_id" in traffic.columns else traffic
    failed = req[req["status"] >= 400]
    out: dict[str, Any] = {
        "requests": len(req), "failed": len(failed),
        "server_errors": int((failed["status"] >= cfg.error_status).sum()),
        "client_errors": int((failed["status"] < cfg.error_status).sum()),
        "by_status": {str(k): int(v) for k, v in failed["status"].value_counts().sort_index().items()},
        "top": [],
    }
    if len(failed) and "error_message" in failed.columns:
        keys = ["status", "error_class", "error_message"]
        counts = failed[keys].fillna("").astype(str).value_counts().head(top)
        out["top"] = [{"status": int(key[0]), "error_class": key[1], "error_message": key[2],
                       "count": int(n)} for key, n in zip(counts.index.tolist(), counts.tolist(), strict=True)]
    return out


def window_version(traffic: pd.DataFrame) -> str:
    """The version that answered most of the rows; when none answered, the one most failed
    requests name ("" when they name none: an unknown version, or none loaded yet)."""
    if "version" not in traffic.columns:
        return ""
    ok = answered_rows(traffic)
    if len(ok):
        return _mode(ok["version"])
    named = traffic["version"].astype(str)
    return _mode(named[named != ""])


def _mode(s: pd.Series) -> str:
    vc = s.astype(str).value_counts()
    return str(vc.index[0]) if len(vc) else ""


def label_stats(ws: WindowStats, rows: pd.DataFrame, sensitive: list[str], task: str) -> None:
    """Fill the live metric of a window from its rows joined with feedback (``label``)."""
    import numpy as np

    if "label" not in rows.columns:
        return
    rows = answered_rows(rows)  # a label sent for a failed request has no prediction to judge
    lab = rows[rows["label"].notna()]
    ws.n_labelled = len(lab)
    if lab.empty:
        return
    if task == "classification":
        correct = (lab["label"].astype(str).to_numpy(dtype=object)
                   == lab["pred"].astype(str).to_numpy(dtype=object))
        ws.metric = "accuracy"
        ws.metric_value = float(correct.mean())
        groups = {"": (int(correct.sum()), len(correct))}
        for col in sensitive:
            key = f"{IN}{col}"
            if key not in lab.columns:
                continue
            vals = lab[key].astype(str).to_numpy(dtype=object)
            for v in sorted(set(vals.tolist())):
                m = vals == v
                groups[f"{col}={v}"] = (int(correct[m].sum()), int(m.sum()))
        ws.groups = groups
    else:
        y = np.asarray([_float(v) for v in lab["label"].tolist()])
        err = np.abs(y - lab["pred_value"].to_numpy(dtype=float))
        err = err[np.isfinite(err)]
        ws.metric = "mae"
        ws.metric_value = float(err.mean()) if err.size else None
        # (sum of errors, n) in milli-units; judged with a learned spread, see sequential
        ws.groups = {"": (round(float(err.sum()) * 1000), int(err.size))}


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
