"""Traffic that follows the traffic-log schema (docs/internal-api.md, "Traffic log"),
simulated from the arrests data and a real model: clean, or with an injected shift.
Shared by the monitor tests and benchmarks/bench_monitor.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tests.checks_support import CAT, FEATURES, NUM, arrests_split, good_model

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
                  model: str = "arrests") -> tuple[Any, Any]:
    """(traffic rows, feedback rows) for ``n`` one-row requests spread over the span.

    ``shift``: none | age+0.5sd | Black x2 | flip Black (labels of colour=Black flipped).
    """
    import numpy as np
    import pandas as pd

    pop = population("age+0.5sd" if shift == "age+0.5sd" else "none")
    idx = sample_rows(rng, n, shift)
    ts = np.sort(start_us + rng.integers(0, span_us, size=n))
    status = np.where(rng.random(n) < error_rate, 500, 200).astype(np.int16)
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
    data["pred"] = np.where(status >= 500, None, pop.pred[idx])
    data["pred_value"] = np.where(status >= 500, np.nan, pop.score[idx])
    data["score"] = data["pred_value"]
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
        if col in ("request_id", "model", "version", "pred", "label"):
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
