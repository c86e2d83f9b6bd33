"""One monitoring check of a served model: read the traffic log, cut new windows, judge
them against the deployed version's reference data, run the sequential alarms, and say
whether action is needed.

Window statistics are cached in ``<gitml dir>/monitor/<model>/windows.jsonl`` (one line a
window); the cut of the log into windows depends only on the log (see
:mod:`gitml.monitor.windows`), so the cache only saves work. Labels arrive late: the
live metric of every recent window is recomputed at each check.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError, UsageError
from gitml.monitor.config import MonitorConfig, monitor_config
from gitml.monitor.sequential import FIGURES, Series, detect
from gitml.monitor.stats import (
    Reference,
    WindowStats,
    answered_rows,
    error_summary,
    label_stats,
    window_stats,
    window_version,
)
from gitml.monitor.windows import split, ts_micros

if TYPE_CHECKING:
    import pandas as pd

    from gitml.models.spec import ModelSpec
    from gitml.repo import MLRepo

MAX_CACHED = 20_000  # windows kept (two weeks at one a minute)
ACTIONS = {"drift": "retrain", "metric": "retrain", "errors": "rollback", "latency": "rollback",
           "client_errors": "inspect-errors"}


@dataclass
class Alarm:
    figure: str
    window: str  # label of the window
    end: float  # epoch seconds
    version: str
    value: float | None
    level: float | None
    limit: float | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MonitorResult:
    model: str
    now: float
    since: float
    version: str | None
    commit: str | None
    n_rows: int  # rows in the --since span
    n_windows: int
    windows: list[WindowStats]
    series: dict[str, Series]
    snapshot: dict[str, Any]  # drift of the whole --since span vs the reference
    alarms: list[Alarm]  # within the --since span
    rows_processed: int = 0  # rows newly cut into windows by this check
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    healing: dict[str, Any] | None = None  # what --heal did (gitml.monitor.heal)

    @property
    def open_alarms(self) -> list[Alarm]:
        """Alarms of the version serving now (those of a version rolled back since are
        history, not a call to act)."""
        return [a for a in self.alarms if a.version == self.version]

    @property
    def action_needed(self) -> bool:
        return bool(self.open_alarms)

    @property
    def actions(self) -> list[str]:
        return sorted({ACTIONS[a.figure] for a in self.open_alarms})

    def to_dict(self, with_windows: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model, "now": self.now, "since": self.since, "version": self.version,
            "commit": self.commit, "rows": self.n_rows, "windows": self.n_windows,
            "rows_processed": self.rows_processed, "seconds": round(self.seconds, 4),
            "action_needed": self.action_needed, "actions": self.actions,
            "alarms": [a.to_dict() for a in self.alarms], "snapshot": self.snapshot,
            "latest": {f: (s.points[-1].to_dict() if s.points else None)
                       for f, s in self.series.items()},
            "config": self.config,
        }
        if with_windows:
            d["window_stats"] = [w.to_dict() for w in self.windows]
            d["series"] = {f: s.to_dict() for f, s in self.series.items()}
        return d


# ---------------------------------------------------------------------------- paths
def traffic_dir(repo: MLRepo, model: str) -> Path:
    """Where the server logs a model's traffic (docs/internal-api.md, "Traffic log")."""
    return repo.ml_dir / "traffic" / model


def state_dir(repo: MLRepo, model: str) -> Path:
    return repo.ml_dir / "monitor" / model


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``2d`` or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise UsageError(f"cannot read {text!r} as a duration", "use e.g. 90s, 15m, 1h or 2d") from None
    if not (0 < value < float("inf")):
        raise UsageError(f"duration {text!r} must be a positive number", "use e.g. 1h")
    return value


# ---------------------------------------------------------------------------- reference
def version_commit(repo: MLRepo, spec: ModelSpec, version: str) -> str:
    """The commit a served version was built from: the registered version (GTO's rules),
    or the version itself when the server served a bare revision."""
    from gitml.git.registry import version_commit as registered_commit

    try:
        commit = registered_commit(repo.git, spec.name, version)
    except GitMLError:
        commit = None  # not a version number: a short commit served by `git ml serve --rev`
    if commit is not None:
        return commit
    try:
        return repo.git.resolve(version)
    except GitMLError:
        raise GitMLError(f"{spec.name}: the traffic log names version {version!r}, which no "
                         f"registered version or revision resolves to",
                         "fetch the registry's tags (git fetch --tags)") from None


def load_reference(repo: MLRepo, spec: ModelSpec, version: str) -> Reference:
    """The deployed version's evaluation data, with what that version predicts on it
    (cached per commit: the model runs once)."""
    import pandas as pd

    commit = version_commit(repo, spec, version)
    cache = state_dir(repo, spec.name) / f"reference-{commit}.parquet"
    if cache.is_file():
        frame = pd.read_parquet(cache)
    else:
        frame = _reference_frame(repo, spec, commit)
        import io

        from gitml.store.fsutil import atomic_write_bytes
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        atomic_write_bytes(cache, buf.getvalue())
    labels = frame.pop("__label__").astype(str).tolist() if "__label__" in frame.columns else None
    return Reference(frame, spec.task, labels, list(spec.sensitive), version, commit)


def _reference_frame(repo: MLRepo, spec: ModelSpec, commit: str) -> pd.DataFrame:
    import numpy as np

    from gitml.checks.evaluate import feature_columns, predict
    from gitml.models.load import load_data, load_model

    model, _ = load_model(repo, spec, rev=commit)
    df, _ = load_data(repo, spec, rev=commit)
    cols = feature_columns(model, spec, df)
    frame = df[cols].copy()
    frame["pred"] = np.asarray(model.predict(df[cols])).astype(str)
    p = predict(model, spec, df)
    frame["pred_value"] = (np.asarray(p.score, dtype=float) if p.score is not None
                           else np.asarray(p.pred, dtype=float))
    if spec.target in df.columns:
        frame["__label__"] = df[spec.target].astype(str).to_numpy()
    return frame


# ---------------------------------------------------------------------------- reading
def read_log(folder: Path, since_ts: float | None = None) -> pd.DataFrame:
    """The traffic rows from ``since_ts`` on, sorted by time (the server's reader)."""
    import pandas as pd

    from gitml.serve.traffic import read_traffic

    since = pd.Timestamp(since_ts, unit="s", tz="UTC") if since_ts is not None else None
    df = read_traffic(folder, since=since)
    if df is None or len(df) == 0:
        return pd.DataFrame()
    out: pd.DataFrame = df.sort_values("ts", kind="stable").reset_index(drop=True)
    return out


def read_labels(folder: Path, labels_file: Path | None) -> pd.DataFrame | None:
    """Feedback from the server's log and/or a file (request_id, row, label)."""
    import pandas as pd

    frames = []
    try:
        from gitml.serve.traffic import read_feedback

        fb = read_feedback(folder)
        if fb is not None and len(fb):
            frames.append(fb)
    except FileNotFoundError:
        pass
    if labels_file is not None:
        from gitml.models.tables import read_frame

        df = read_frame(labels_file)
        missing = {"request_id", "label"} - set(df.columns)
        if missing:
            raise GitMLError(f"{labels_file}: no column {sorted(missing)[0]!r}",
                             "a labels file has request_id, row (optional) and label columns")
        if "row" not in df.columns:
            df["row"] = 0
        frames.append(df[["request_id", "row", "label"]])
    if not frames:
        return None
    out = pd.concat([f[["request_id", "row", "label"]] for f in frames], ignore_index=True)
    out["request_id"] = out["request_id"].astype(str)
    out["row"] = out["row"].astype("int64")
    out["label"] = out["label"].astype(str)
    deduped: pd.DataFrame = out.drop_duplicates(["request_id", "row"], keep="last")
    return deduped


def join_labels(traffic: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    if labels is None or traffic.empty:
        return traffic
    t = traffic.copy()
    t["row"] = t["row"].astype("int64")
    t["request_id"] = t["request_id"].astype(str)
    return t.merge(labels, on=["request_id", "row"], how="left")


# ---------------------------------------------------------------------------- the check
class Monitor:
    """Judges windows of one model's traffic; keeps references per version in memory."""

    def __init__(self, repo: MLRepo | None, spec: ModelSpec | None, cfg: MonitorConfig,
                 references: dict[str, Reference] | None = None) -> None:
        self.repo, self.spec, self.cfg = repo, spec, cfg
        self.references: dict[str, Reference] = dict(references or {})

    def reference(self, version: str) -> Reference:
        if version not in self.references:
            if self.repo is None or self.spec is None:
                raise GitMLError(f"no reference data for version {version!r}")
            self.references[version] = load_reference(self.repo, self.spec, version)
        return self.references[version]

    def judge(self, traffic: pd.DataFrame, *, now_us: int | None = None,
              after_us: int | None = None) -> list[WindowStats]:
        """Statistics of the closed windows of a time-sorted traffic frame."""
        if traffic.empty:
            return []
        ts = ts_micros(traffic["ts"])
        out = []
        for w in split(ts, self.cfg.interval, self.cfg.min_rows, now_us, after_us):
            rows = traffic.iloc[w.lo:w.hi]
            version = window_version(rows)
            # a window of failed requests only has nothing to judge drift on
            ref = self.reference(version) if version and len(answered_rows(rows)) else None
            ws = window_stats(ref, rows, w.start_us, w.end_us, self.cfg)
            out.append(ws)
        return out

    def label(self, windows: list[WindowStats], traffic: pd.DataFrame) -> None:
        """(Re)compute the live metric of the windows the joined traffic covers."""
        if traffic.empty or "label" not in traffic.columns or not windows:
            return
        import numpy as np

        ts = ts_micros(traffic["ts"])
        for w in windows:
            lo = int(np.searchsorted(ts, round(w.start * 1e6), side="left"))
            hi = int(np.searchsorted(ts, round(w.end * 1e6), side="left"))
            if hi > lo and w.version:
                ref = self.reference(w.version)
                label_stats(w, traffic.iloc[lo:hi], ref.sensitive, ref.task)

    def series(self, windows: list[WindowStats]) -> dict[str, Series]:
        version = serving_version(windows)
        groups: dict[str, tuple[int, int]] = {}
        task = "classification"
        if version:
            ref = self.reference(version)
            groups, task = ref.accuracy(groups=True), ref.task
        return detect(windows, self.cfg, groups, task)


def serving_version(windows: list[WindowStats]) -> str:
    """The version of the newest window that names one ("" when none does)."""
    return next((w.version for w in reversed(windows) if w.version), "")


def alarms_since(windows: list[WindowStats], series: dict[str, Series], since_ts: float) -> list[Alarm]:
    out: list[Alarm] = []
    for f in FIGURES:
        for i in series[f].alarms:
            w, p = windows[i], series[f].points[i]
            if w.end <= since_ts:
                continue
            limit = p.upper if p.upper is not None else p.lower
            detail = ", ".join(w.drifted[:5]) if f == "drift" else ""
            out.append(Alarm(f, p.commit, w.end, w.version, p.value, p.level, limit, detail))
    return out


def _load_cache(path: Path) -> list[WindowStats]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(WindowStats.from_dict(json.loads(line)))
            except (ValueError, TypeError):
                return []  # a damaged cache is rebuilt from the log
    return out


def _save_cache(path: Path, windows: list[WindowStats]) -> None:
    from gitml.store.fsutil import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(w.to_dict()) + "\n" for w in windows[-MAX_CACHED:]))


def run_check(repo: MLRepo, name: str, *, since: float = 3600.0, labels_file: Path | None = None,
              now: float | None = None, traffic_folder: Path | None = None,
              use_cache: bool = True) -> MonitorResult:
    """One check of model ``name`` (see the module docstring)."""
    from gitml.models.spec import one_spec

    t0 = time.perf_counter()
    spec = one_spec(repo, name)
    cfg = monitor_config(repo, spec.name)
    folder = traffic_folder or traffic_dir(repo, spec.name)
    if not folder.is_dir():
        raise GitMLError(f"{spec.name}: no traffic log at {folder}",
                         f"serve the model first (git ml serve {spec.name}) and send it requests")
    now = time.time() if now is None else now
    now_us = int(now * 1e6)
    cache = state_dir(repo, spec.name) / "windows.jsonl"
    windows = _load_cache(cache) if use_cache else []
    if windows and windows[-1].end > now:
        windows = []  # the clock went back (a replay): judge from scratch
    lookback = max(since, cfg.baseline_windows * cfg.interval)
    after = windows[-1].end if windows else None
    read_from = min(now - lookback, after) if after is not None else None
    traffic = read_log(folder, read_from)
    mon = Monitor(repo, spec, cfg)
    new = mon.judge(traffic, now_us=now_us, after_us=round(after * 1e6) if after else None)
    rows_processed = sum(w.n_rows for w in new)
    windows = windows + new
    if not windows:
        raise GitMLError(f"{spec.name}: no complete window of traffic yet "
                         f"({len(traffic)} rows; a window needs {cfg.min_rows} rows and "
                         f"{cfg.interval:g} s to pass)", "send more requests, or wait")
    feedback = read_labels(folder, labels_file)
    recent = [w for w in windows if w.end > now - lookback]
    mon.label(recent, join_labels(traffic, feedback))
    series = mon.series(windows)
    if use_cache:
        _save_cache(cache, windows)
    since_ts = now - since
    span = traffic[ts_micros(traffic["ts"]) >= int(since_ts * 1e6)] if not traffic.empty else traffic
    version = serving_version(windows)
    ref = mon.reference(version) if version else None
    snapshot = _snapshot(ref, span, cfg)
    result = MonitorResult(spec.name, now, since, version or None, ref.commit if ref else None, len(span),
                           len(windows), windows, series, snapshot,
                           alarms_since(windows, series, since_ts), rows_processed,
                           config=dict(cfg.__dict__))
    result.seconds = time.perf_counter() - t0
    return result


def _snapshot(ref: Reference | None, span: pd.DataFrame, cfg: MonitorConfig) -> dict[str, Any]:
    """Drift of every answered row in the --since span against the reference (the drift
    gate's test, one look: a picture of now, not the alarm decision), and what the failed
    requests of the span were."""
    from gitml.monitor.stats import as_inputs, drift_of

    if span.empty:
        return {"rows": 0, "features": {}, "errors": error_summary(span, cfg)}
    ok = answered_rows(span)
    if ref is None:
        return {"rows": len(ok), "features": {}, "errors": error_summary(span, cfg)}
    p, drifted, per = drift_of(ref, as_inputs(ok, list(ref.frame.columns)), cfg)
    return {"rows": len(ok), "p_min": p, "drifted": drifted, "features": per,
            "errors": error_summary(span, cfg)}
