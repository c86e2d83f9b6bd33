"""Traffic that follows the traffic-log schema (docs/internal-api.md, "Traffic log"),
simulated from the arrests data and a real model: clean, or with an injected shift.
Shared by the monitor tests and benchmarks/bench_monitor.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tests.support.checks import CAT, FEATURES, NUM, arrests_split, good_model

T0_US = 1_779_998_400 * 1_000_000  # a fixed, hour-aligned start (2026-05-28T20:00Z)


@dataclass
class Population:
    frame: Any  # features + released
    pred: Any  # predicted label text
    score: Any  # P(Yes)


def _predict(model: Any, df: Any) -> tuple[Any, Any]:
    import numpy as np

    pred = np.asarray(model.predict(df[FEATURES])).astype(str)
    score = model.predict_proba(df[FEATURES])[:, list(model.classes_).index("Yes")]
    return pred, score


@lru_cache(maxsize=4)
def population(shift: str = "none") -> Population:
    """The training split (traffic comes from the same population as the evaluation
    split, the reference) with an optional shift applied to every row:
    ``age+0.5sd`` (mean of age moved by half its σ)."""
    train, _ = arrests_split()
    df = train.copy()
    if shift == "age+0.5sd":
        # whole years, as the model's int64 input logs them: round(0.5 σ) = 4 years (0.48 σ)
        df["age"] = df["age"] + round(0.5 * float(df["age"].std()))
    model = good_model("logreg")
    pred, score = _predict(model, df)
    return Population(df.reset_index(drop=True), pred, score)


def reference() -> Any:
    """The monitor's Reference for the logreg model on the evaluation split."""
    from gitml.monitor.stats import Reference

    _, ev = arrests_split()
    model = good_model("logreg")
    pred, score = _predict(model, ev)
    frame = ev[FEATURES].copy()
    frame["pred"] = pred
    frame["pred_value"] = score
    return Reference(frame, "classification", ev["released"].astype(str).tolist(),
                     ["colour", "sex"], "1.0.0", None)


def sample_rows(rng: Any, n: int, shift: str = "none") -> Any:
    """Indices into the population for ``n`` rows; ``Black x2`` doubles colour=Black's share."""
    import numpy as np

    pop = population("age+0.5sd" if shift == "age+0.5sd" else "none")
    if shift == "Black x2":
        black = (pop.frame["colour"] == "Black").to_numpy()
        share = black.mean()
        w = np.where(black, 2 * share / black.sum(), (1 - 2 * share) / (~black).sum())
        return rng.choice(len(pop.frame), size=n, p=w / w.sum())
    return rng.integers(0, len(pop.frame), size=n)


def traffic_frame(rng: Any, n: int, start_us: int, span_us: int, *, shift: str = "none",
                  version: str = "1.0.0", latency_ms: float = 2.0, error_rate: float = 0.0,
                  client_error_rate: float = 0.0, model: str = "arrests") -> tuple[Any, Any]:
    """(traffic rows, feedback rows) for ``n`` one-row requests spread over the span.

    ``shift``: none | age+0.5sd | Black x2 | flip Black (labels of colour=Black flipped).
    """
    import numpy as np
    import pandas as pd

    pop = population("age+0.5sd" if shift == "age+0.5sd" else "none")
    idx = sample_rows(rng, n, shift)
    ts = np.sort(start_us + rng.integers(0, span_us, size=n))
    u = rng.random(n)
    status = np.where(u < error_rate, 500,
                      np.where(u < error_rate + client_error_rate, 400, 200)).astype(np.int16)
    rows = pop.frame.iloc[idx].reset_index(drop=True)
    rid = [uuid.UUID(int=int(x)).hex for x in rng.integers(0, 2**62, size=n)]
    data: dict[str, Any] = {
        "request_id": rid,
        "row": np.zeros(n, dtype=np.int32),
        "ts": pd.to_datetime(ts, unit="us", utc=True),
        "model": model,
        "version": version,
        "latency_ms": rng.lognormal(np.log(latency_ms), 0.3, size=n),
        "status": status,
    }
    for c in CAT:
        data[f"in.{c}"] = rows[c].astype(str).to_numpy()
    for c in NUM:
        data[f"in.{c}"] = rows[c].to_numpy(dtype=np.int64)
    data["pred"] = np.where(status >= 400, None, pop.pred[idx])
    data["pred_value"] = np.where(status >= 400, np.nan, pop.score[idx])
    data["score"] = data["pred_value"]
    data["error_class"] = np.where(status >= 500, "RuntimeError",
                                   np.where(status >= 400, "RequestError", None))
    data["error_message"] = np.where(status >= 400, "simulated failure", None)
    traffic = pd.DataFrame(data)
    labels = rows["released"].astype(str).to_numpy().copy()
    if shift == "flip Black":
        black = (rows["colour"] == "Black").to_numpy()
        labels[black] = np.where(labels[black] == "Yes", "No", "Yes")
    feedback = pd.DataFrame({"request_id": rid, "row": np.zeros(n, dtype=np.int32),
                             "label": labels, "ts": traffic["ts"]})
    return traffic, feedback


def write_parquet(df: Any, folder: Path, name: str | None = None, seq: int = 0) -> Path:
    """A traffic or feedback file exactly per the schema (types pinned with pyarrow), named
    as the server names them (``traffic-<first µs>-<last µs>-<pid>-<seq>.parquet``;
    feedback files in ``feedback/``)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    fields = []
    for col in df.columns:
        if col in ("request_id", "model", "version", "pred", "label", "error_class",
                   "error_message"):
            t = pa.string()
        elif col == "row":
            t = pa.int32()
        elif col == "ts":
            t = pa.timestamp("us", tz="UTC")
        elif col == "status":
            t = pa.int16()
        elif col in ("latency_ms", "pred_value", "score"):
            t = pa.float64()
        elif col.startswith("in."):
            numeric = pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col])
            t = pa.from_numpy_dtype(df[col].dtype) if numeric else pa.string()
        else:
            raise AssertionError(col)
        fields.append(pa.field(col, t, nullable=True))
    table = pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)
    if name is None:
        import numpy as np

        us = df["ts"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
        kind = "feedback" if "label" in df.columns else "traffic"
        if kind == "feedback":
            folder = folder / "feedback"
            folder.mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{int(np.min(us))}-{int(np.max(us))}-0-{seq}.parquet"
    path = folder / name
    pq.write_table(table, path)
    return path


# ---------------------------------------------------------------------------- a served repo
@lru_cache(maxsize=1)
def broken_model() -> Any:
    """A version that fails in production: trained on inverted labels (accuracy ≈ 0.2)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from tests.support.checks import pipeline

    train, _ = arrests_split()
    y = np.where(train["released"].to_numpy() == "Yes", "No", "Yes")
    return pipeline(LogisticRegression(max_iter=1000)).fit(train[FEATURES], y)


def make_served_repo(path: Path, monitor: str = "") -> Path:
    """arrests@v1.0.0 (good logistic regression) and arrests@v1.1.0 (broken), committed
    without hooks, registered with plain annotated tags, plus a ``[monitor]`` section."""
    from tests.support.checks import save_model, write_config, write_eval
    from tests.support.serve import git_, gitml_

    path.mkdir(parents=True)
    git_(path, "init", "-q")
    git_(path, "commit", "-q", "--allow-empty", "-m", "initial")
    gitml_(path, "init")
    write_config(path, extra="\n" + monitor)
    save_model(good_model("logreg"), path / "models" / "model.skops")
    write_eval(path / "data" / "eval.parquet")
    gitml_(path, "add", "models/model.skops", "data/eval.parquet")
    git_(path, "add", "-A")
    git_(path, "commit", "-q", "--no-verify", "-m", "good model")
    git_(path, "tag", "-a", "arrests@v1.0.0", "-m", "register 1.0.0")
    save_model(broken_model(), path / "models" / "model.skops")
    gitml_(path, "add", "models/model.skops")
    git_(path, "add", "-A")
    git_(path, "commit", "-q", "--no-verify", "-m", "broken model")
    git_(path, "tag", "-a", "arrests@v1.1.0", "-m", "register 1.1.0")
    return path


class Server:
    """A real model server over both versions' bundles, logging traffic where the monitor
    looks, with the deploy state where the registry keeps it (target "local")."""

    def __init__(self, repo: Path, active: str = "1.0.0") -> None:
        import socket

        from gitml.models.bundle import build_bundle
        from gitml.monitor.check import traffic_dir
        from gitml.registry import records
        from gitml.registry.deploy import state_file
        from gitml.repo import MLRepo
        from gitml.serve import control

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        with open(repo / ".gitml" / "config.toml", "a") as f:  # where the registry finds it
            f.write(f'\n[deploy]\ngrace_seconds = 0\n[deploy.targets.local]\nhost = "127.0.0.1"\n'
                    f'port = {port}\n')
        self.repo = MLRepo.discover(repo)
        versions = {}
        for v in ("1.0.0", "1.1.0"):
            out = repo.parent / f"bundle-{v}"
            build_bundle(self.repo, "arrests", f"arrests@v{v}", out, version=v)
            versions[v] = str(out)
        self.state = state_file(self.repo, "local", "arrests")
        self.state.parent.mkdir(parents=True, exist_ok=True)
        control.write_state(self.state, {"model": "arrests", "active": active, "versions": versions})
        self.proc = control.start(self.state, port=port, traffic_dir=traffic_dir(self.repo, "arrests"),
                                  flush_seconds=0.2)
        self.url = self.proc.url
        control.wait_ready(self.url, active, active=True, timeout=120)
        records.record(self.repo.git, "local", "deploy", "arrests", active, reason="test", **{"from": None})

    def switch(self, version: str) -> None:
        from gitml.registry import records
        from gitml.serve import control

        st = control.read_state(self.state)
        old = st["active"]
        control.write_state(self.state, {**st, "active": version})
        control.wait_ready(self.url, version, active=True, timeout=60)
        records.record(self.repo.git, "local", "deploy", "arrests", version, reason="test", **{"from": old})

    def active(self) -> str:
        from gitml.serve import control

        return str(control.read_state(self.state)["active"])

    def send(self, rows: Any, labels: Any) -> str:
        """One request of ``rows`` (dataframe_split), then its labels as feedback."""
        import json

        from tests.support.serve import request

        body = json.dumps({"dataframe_split": {"columns": list(rows.columns),
                                               "data": rows.astype(object).values.tolist()}}).encode()
        code, out, headers = request(self.url + "/invocations", body)
        assert code == 200, out
        rid = {k.lower(): v for k, v in headers.items()}["x-request-id"]
        fb = json.dumps({"labels": [{"request_id": rid, "row": i, "label": str(lab)}
                                    for i, lab in enumerate(labels)]}).encode()
        code, out, _ = request(self.url + "/feedback", fb)
        assert code in (200, 202, 204), out
        return rid

    def send_bad(self, i: int) -> int:
        """One broken request (the ``i % 4``-th kind: malformed JSON, an unknown column, a
        content type the server does not take, a V2 tensor of the wrong datatype); its status."""
        import json

        from tests.support.serve import request

        row = population().frame[FEATURES].iloc[i % 100].to_dict()
        kind = i % 4
        if kind == 0:
            code, _, _ = request(self.url + "/invocations", b'{"dataframe_split": ')
        elif kind == 1:
            body = json.dumps({"dataframe_records": [{**row, "bogus": 1}]}, default=int).encode()
            code, _, _ = request(self.url + "/invocations", body)
        elif kind == 2:
            code, _, _ = request(self.url + "/invocations", b"<rows/>", content_type="application/xml")
        else:
            inputs = [{"name": c, "datatype": "FP64", "shape": [1], "data": [row[c]]} for c in FEATURES]
            code, _, _ = request(self.url + "/v2/models/arrests/infer",
                                 json.dumps({"inputs": inputs}, default=int).encode())
        return code

    def stop(self) -> None:
        from gitml.serve import control

        control.stop(self.proc.pid)


def send_windows(server: Server, n_windows: int, rows_per_window: int, *, shift: str = "none",
                 seed: int = 0, per_request: int = 25, bad_per_window: int = 0) -> None:
    """Traffic in whole seconds: ``rows_per_window`` rows in each of the next ``n_windows``
    one-second buckets (the test's monitor uses 1 s windows), and ``bad_per_window`` broken
    requests among them (each answered with a 4xx)."""
    import time

    import numpy as np

    rng = np.random.default_rng(seed)
    pop = population("age+0.5sd" if shift == "age+0.5sd" else "none")
    time.sleep(1.0 - (time.time() % 1.0) + 0.02)  # start at a bucket boundary
    for _ in range(n_windows):
        t_start = time.time()
        idx = sample_rows(rng, rows_per_window, shift)
        for lo in range(0, rows_per_window, per_request):
            part = pop.frame.iloc[idx[lo:lo + per_request]].reset_index(drop=True)
            server.send(part[FEATURES], part["released"].astype(str).tolist())
        for i in range(bad_per_window):
            code = server.send_bad(i)
            assert 400 <= code < 500, code
        # a slow machine makes some buckets short; the monitor merges those into the next
        time.sleep(max(0.0, 1.0 - (time.time() - t_start)))


def policy_shift(df: Any) -> Any:
    """A new release policy: nobody under 25 is released (a concept change a retrained
    logistic regression learns: 0.87 accuracy where the old model gets 0.26, and the
    selection-rate ratios by colour and sex stay near 0.9)."""
    df = df.copy()
    df.loc[df["age"] < 25, "released"] = "No"
    return df


def make_trained_repo(path: Path) -> Path:
    """The demo's project in small: data versioned, a training stage recorded with
    `git ml run`, the model declared with gates, committed through the hooks, registered
    as arrests@v1.0.0 by the registry."""
    import sys

    from demo.demo import TRAIN_SCRIPT
    from tests.support.checks import write_config
    from tests.support.serve import git_, gitml_

    path.mkdir(parents=True)
    git_(path, "init", "-q")
    git_(path, "commit", "-q", "--allow-empty", "-m", "initial")
    gitml_(path, "init")
    gitml_(path, "install")
    train, ev = arrests_split()
    (path / "data").mkdir()
    (path / "models").mkdir()
    train.to_parquet(path / "data" / "train.parquet", index=False)
    ev.to_parquet(path / "data" / "eval.parquet", index=False)
    gitml_(path, "add", "data/train.parquet", "data/eval.parquet")
    git_(path, "commit", "-q", "-m", "data")
    (path / "train.py").write_text(TRAIN_SCRIPT)
    git_(path, "add", "train.py")
    gitml_(path, "run", "-n", "train", "--", sys.executable, "train.py", "1.0")
    write_config(path, baseline="prod")
    git_(path, "add", "-A")
    git_(path, "commit", "-q", "-m", "model: logistic regression")
    gitml_(path, "register", "arrests", "--version", "1.0.0")
    gitml_(path, "promote", "arrests", "1.0.0", "prod")
    return path
