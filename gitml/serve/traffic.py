"""The traffic log: every predicted row (sampled), written by the server, read by the monitor.

Layout (``<git common dir>/ml/traffic/<model>/`` by default)::

    traffic-<first ts µs>-<last ts µs>-<pid>-<seq>.parquet    one batch of rows
    feedback/feedback-<first>-<last>-<pid>-<seq>.parquet       delayed labels

The request path only appends to an in-memory list. A thread per worker process writes a
batch as one whole Parquet file (temp + rename, so a reader never sees part of one) when it
holds ``max_rows`` rows or is ``max_age`` seconds old (rotation by size and time). A kill -9
loses at most the batch not yet written; nothing half-written is ever named ``*.parquet``.
Rows the buffer cannot take (``max_buffer``) are counted as dropped, never silently lost.

Failed requests are logged too (one row per request, or one per row when the inputs were
read before the failure): ``status`` is the HTTP status, ``pred`` / ``pred_value`` / ``score``
are null, ``error_class`` and ``error_message`` (at most ``MAX_ERROR_CHARS``) say why.

Schema versions (Parquet key-value metadata ``gitml.traffic.schema``): 1 had no error
columns and logged answered requests only; 2 adds ``error_class`` and ``error_message`` at the
end and logs failed requests. Every column of version 1 keeps its name, type and place, so a
version-1 reader reads version-2 files (it sees more rows, with ``status`` >= 400), and
:func:`read_traffic` reads both (the error columns are null for version-1 files).
"""

from __future__ import annotations

import io
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from gitml.models.bundle import InputSpec

TRAFFIC_PREFIX = "traffic-"
FEEDBACK_DIR = "feedback"
FEEDBACK_PREFIX = "feedback-"
_ARROW_TYPES = {"float64": "float64", "int64": "int64", "bool": "bool_", "string": "string"}
SCHEMA_VERSION = 2
SCHEMA_KEY = b"gitml.traffic.schema"
MAX_ERROR_CHARS = 240


@dataclass
class Record:
    """One request's predicted rows, as the request path hands them over."""

    request_id: str
    ts_us: int
    model: str
    version: str
    latency_ms: float
    status: int
    inputs: list[InputSpec]
    cols: dict[str, np.ndarray]
    n: int
    pred: np.ndarray | None  # None: the request failed
    pred_value: np.ndarray | None
    score: np.ndarray | None
    error_class: str | None = None
    error_message: str | None = None


def error_record(request_id: str, ts_us: int, model: str, version: str, latency_ms: float,
                 status: int, error_class: str, message: str, inputs: list[InputSpec] | None = None,
                 cols: dict[str, np.ndarray] | None = None, n: int = 0) -> Record:
    """A failed request: its inputs when they were read (``n`` rows), else one row of nulls."""
    if not cols or n <= 0:
        cols, n = {}, 1
    return Record(request_id=request_id, ts_us=ts_us, model=model, version=version,
                  latency_ms=latency_ms, status=status, inputs=inputs or [], cols=cols, n=n,
                  pred=None, pred_value=None, score=None, error_class=error_class[:80],
                  error_message=message[:MAX_ERROR_CHARS])


def _arrow_type(dtype: str) -> pa.DataType:
    import pyarrow as pa

    return getattr(pa, _ARROW_TYPES[dtype])()


def _column(values: np.ndarray, dtype: str) -> pa.Array:
    import pyarrow as pa

    if dtype == "string":
        return pa.array(values.tolist() if values.dtype == object else values, type=pa.string())
    mask = np.isnan(values) if values.dtype.kind == "f" else None
    if dtype == "int64":
        filled = np.where(mask, 0, values) if mask is not None else values
        return pa.array(filled.astype(np.int64), type=pa.int64(), mask=mask)
    if dtype == "bool":
        filled = np.where(mask, 0, values) if mask is not None else values
        return pa.array(filled.astype(bool), type=pa.bool_(), mask=mask)
    return pa.array(values.astype(np.float64), type=pa.float64(), mask=mask)


def records_table(records: list[Record]) -> pa.Table:
    """One Arrow table (the traffic schema) from a list of request records."""
    import pyarrow as pa

    n_total = sum(r.n for r in records)
    rid = np.empty(n_total, dtype=object)
    rows = np.empty(n_total, dtype=np.int32)
    ts = np.empty(n_total, dtype=np.int64)
    lat = np.empty(n_total, dtype=np.float64)
    status = np.empty(n_total, dtype=np.int16)
    model = np.empty(n_total, dtype=object)
    version = np.empty(n_total, dtype=object)
    pred = np.full(n_total, None, dtype=object)
    err_class = np.full(n_total, None, dtype=object)
    err_message = np.full(n_total, None, dtype=object)
    value = np.full(n_total, np.nan)
    score = np.full(n_total, np.nan)
    specs: dict[str, str] = {}
    for r in records:
        for i in r.inputs:
            specs.setdefault(i.name, i.dtype)
    ins: dict[str, list[np.ndarray]] = {c: [] for c in specs}
    at = 0
    for r in records:
        s = slice(at, at + r.n)
        rid[s] = r.request_id
        rows[s] = np.arange(r.n, dtype=np.int32)
        ts[s] = r.ts_us
        lat[s] = r.latency_ms
        status[s] = r.status
        model[s] = r.model
        version[s] = r.version
        if r.pred is not None:
            pred[s] = [str(x) for x in r.pred.tolist()]
        if r.error_class is not None:
            err_class[s] = r.error_class
            err_message[s] = r.error_message
        if r.pred_value is not None:
            value[s] = r.pred_value
        if r.score is not None:
            score[s] = r.score
        for c, dt in specs.items():
            col = r.cols.get(c)
            if col is None:
                col = np.full(r.n, None if dt == "string" else np.nan,
                              dtype=object if dt == "string" else np.float64)
            ins[c].append(col)
        at += r.n
    arrays: dict[str, pa.Array] = {
        "request_id": pa.array(rid.tolist(), type=pa.string()),
        "row": pa.array(rows, type=pa.int32()),
        "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        "model": pa.array(model.tolist(), type=pa.string()),
        "version": pa.array(version.tolist(), type=pa.string()),
        "latency_ms": pa.array(lat, type=pa.float64()),
        "status": pa.array(status, type=pa.int16()),
    }
    for c, dt in specs.items():
        parts = ins[c]
        joined = np.concatenate(parts) if parts else np.empty(0)
        arrays[f"in.{c}"] = _column(joined, dt)
    arrays["pred"] = pa.array(pred.tolist(), type=pa.string())
    arrays["pred_value"] = pa.array(value, type=pa.float64(), mask=np.isnan(value))
    arrays["score"] = pa.array(score, type=pa.float64(), mask=np.isnan(score))
    arrays["error_class"] = pa.array(err_class.tolist(), type=pa.string())
    arrays["error_message"] = pa.array(err_message.tolist(), type=pa.string())
    table = pa.table(arrays)
    return table.replace_schema_metadata({SCHEMA_KEY: str(SCHEMA_VERSION).encode()})


def feedback_table(items: list[tuple[str, int, str, int]]) -> pa.Table:
    import pyarrow as pa

    return pa.table({
        "request_id": pa.array([i[0] for i in items], type=pa.string()),
        "row": pa.array([i[1] for i in items], type=pa.int32()),
        "label": pa.array([i[2] for i in items], type=pa.string()),
        "ts": pa.array([i[3] for i in items], type=pa.timestamp("us", tz="UTC")),
    })


def _write_table(folder: Path, prefix: str, first_us: int, last_us: int, seq: int, table: pa.Table) -> Path:
    import pyarrow.parquet as pq

    from gitml.store.fsutil import atomic_write_bytes

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    dest = folder / f"{prefix}{first_us:016d}-{last_us:016d}-{os.getpid()}-{seq:06d}.parquet"
    atomic_write_bytes(dest, buf.getvalue())
    return dest


class _Batcher:
    """A buffer flushed by a thread when it is big or old enough."""

    def __init__(self, folder: Path, prefix: str, build: Callable[[list[Any]], pa.Table],
                 size_of: Callable[[Any], int], ts_of: Callable[[Any], int], *,
                 max_rows: int, max_age: float, max_buffer: int,
                 on_written: Callable[[list[Any]], None] | None = None,
                 on_dropped: Callable[[Any], None] | None = None) -> None:
        self.folder = folder
        self.prefix = prefix
        self.build = build
        self.size_of = size_of
        self.ts_of = ts_of
        self.max_rows = max_rows
        self.max_age = max_age
        self.max_buffer = max_buffer
        self.on_written = on_written
        self.on_dropped = on_dropped
        self.items: list[Any] = []
        self.rows = 0
        self.first_at = 0.0
        self.seq = 0
        self.written_rows = 0
        self.dropped_rows = 0
        self.errors = 0
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name=f"gitml-{prefix}writer", daemon=True)
        self.thread.start()

    def add(self, item: Any) -> None:
        n = self.size_of(item)
        with self.lock:
            if self.rows + n > self.max_buffer:
                self.dropped_rows += n
                dropped = True
            else:
                if not self.items:
                    self.first_at = time.monotonic()
                self.items.append(item)
                self.rows += n
                dropped = False
                full = self.rows >= self.max_rows
        if dropped:
            if self.on_dropped is not None:
                self.on_dropped(item)
        elif full:
            self.wake.set()

    def _take(self) -> list[Any]:
        """The oldest items up to ``max_rows`` rows (at least one): one file's worth."""
        with self.lock:
            rows = 0
            k = 0
            while k < len(self.items) and (k == 0 or rows + self.size_of(self.items[k]) <= self.max_rows):
                rows += self.size_of(self.items[k])
                k += 1
            items, self.items = self.items[:k], self.items[k:]
            self.rows -= rows
            if self.items:
                self.first_at = time.monotonic()
            return items

    def _loop(self) -> None:
        while not self.closed:
            self.wake.wait(timeout=min(0.25, self.max_age))
            self.wake.clear()
            with self.lock:
                due = bool(self.items) and (self.rows >= self.max_rows or
                                            time.monotonic() - self.first_at >= self.max_age)
            while due:
                self.flush()
                with self.lock:
                    due = self.rows >= self.max_rows

    def flush(self) -> None:
        items = self._take()
        if not items:
            return
        self.seq += 1
        try:
            table = self.build(items)
            first = min(self.ts_of(i) for i in items)
            last = max(self.ts_of(i) for i in items)
            _write_table(self.folder, self.prefix, first, last, self.seq, table)
        except Exception as e:  # disk full, ...: count the rows as dropped, keep serving
            self.errors += 1
            n = sum(self.size_of(i) for i in items)
            self.dropped_rows += n
            print(f"gitml serve: traffic log write failed ({type(e).__name__}: {e}); "
                  f"{n} rows dropped", flush=True)
            if self.on_dropped is not None:
                for i in items:
                    self.on_dropped(i)
            return
        self.written_rows += table.num_rows
        if self.on_written is not None:
            self.on_written(items)

    def close(self) -> None:
        self.closed = True
        self.wake.set()
        self.thread.join(timeout=5)
        while self.items:
            self.flush()


class TrafficLog:
    """The server side: ``log(record)`` from the request path, ``feedback(...)`` for labels."""

    def __init__(self, folder: Path | str, *, sample: float = 1.0, max_rows: int = 50_000,
                 max_age: float = 1.0, max_buffer: int = 2_000_000,
                 on_written: Callable[[list[Record]], None] | None = None,
                 on_dropped: Callable[[Record], None] | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / FEEDBACK_DIR).mkdir(exist_ok=True)
        self.sample = sample
        self._rand = random.random
        self.traffic = _Batcher(self.folder, TRAFFIC_PREFIX, records_table, lambda r: r.n,
                                lambda r: r.ts_us, max_rows=max_rows, max_age=max_age,
                                max_buffer=max_buffer, on_written=on_written, on_dropped=on_dropped)
        self.labels = _Batcher(self.folder / FEEDBACK_DIR, FEEDBACK_PREFIX, feedback_table,
                               lambda i: 1, lambda i: i[3], max_rows=max_rows, max_age=max_age,
                               max_buffer=max_buffer)

    def sampled(self) -> bool:
        return self.sample >= 1.0 or self._rand() < self.sample

    def log(self, record: Record) -> None:
        self.traffic.add(record)

    def feedback(self, request_id: str, row: int, label: str) -> None:
        self.labels.add((request_id, row, label, int(time.time() * 1e6)))

    def close(self) -> None:
        self.traffic.close()
        self.labels.close()


# readers (the monitor's side) ---------------------------------------------------------

def _files(folder: Path, prefix: str, since_us: int | None, until_us: int | None) -> list[Path]:
    out: list[Path] = []
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        name = p.name
        if not (name.startswith(prefix) and name.endswith(".parquet")):
            continue
        parts = name[len(prefix):-len(".parquet")].split("-")
        try:
            first, last = int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            continue
        if since_us is not None and last < since_us:
            continue
        if until_us is not None and first > until_us:
            continue
        out.append(p)
    return out


def _to_us(t: Any) -> int | None:
    if t is None:
        return None
    import pandas as pd

    ts = pd.Timestamp(t, unit="s") if isinstance(t, int | float) else pd.Timestamp(t)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1000)


def _read(files: list[Path]) -> list[pa.Table]:
    import pyarrow.parquet as pq

    from gitml.errors import CorruptObjectError

    tables = []
    for p in files:
        try:
            tables.append(pq.read_table(p))
        except FileNotFoundError:
            continue  # removed by a retention job between listing and reading
        except Exception as e:
            raise CorruptObjectError(f"{p}: unreadable traffic file: {type(e).__name__}: {e}",
                                     "move it aside; the other files are still read") from e
    return tables


def read_traffic(folder: Path | str, since: Any = None, until: Any = None) -> pd.DataFrame:
    """Every logged row with ``since <= ts <= until`` (datetimes or strings; None: open),
    failed requests included (``status`` >= 400, null ``pred``), from files of any schema
    version."""
    import pyarrow as pa

    since_us, until_us = _to_us(since), _to_us(until)
    tables = _read(_files(Path(folder), TRAFFIC_PREFIX, since_us, until_us))
    if not tables:
        return records_table([]).to_pandas()  # type: ignore[no-any-return]
    table = pa.concat_tables(tables, promote_options="default")
    for name in ("error_class", "error_message"):  # absent from schema-1 files
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, type=pa.string()))
    df = table.to_pandas()
    if since_us is not None or until_us is not None:
        import pandas as pd

        keep = np.ones(len(df), dtype=bool)
        if since_us is not None:
            keep &= (df["ts"] >= pd.Timestamp(since_us, unit="us", tz="UTC")).to_numpy()
        if until_us is not None:
            keep &= (df["ts"] <= pd.Timestamp(until_us, unit="us", tz="UTC")).to_numpy()
        df = df[keep].reset_index(drop=True)
    return df.sort_values(["ts", "request_id", "row"], kind="stable").reset_index(drop=True)  # type: ignore[no-any-return]


def read_feedback(folder: Path | str) -> pd.DataFrame:
    """Every label sent with POST /feedback (the newest label wins for a request and row)."""
    import pyarrow as pa

    tables = _read(_files(Path(folder) / FEEDBACK_DIR, FEEDBACK_PREFIX, None, None))
    if not tables:
        return feedback_table([]).to_pandas()  # type: ignore[no-any-return]
    df = pa.concat_tables(tables).to_pandas().sort_values("ts", kind="stable")
    return df.drop_duplicates(["request_id", "row"], keep="last").reset_index(drop=True)  # type: ignore[no-any-return]
