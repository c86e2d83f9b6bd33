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


def _strings(values: list[Any]) -> pa.Array:
    """Text of each label as ``str(label)`` gives it (None stays null)."""
    import pyarrow as pa

    try:
        return pa.array(values, type=pa.string())  # str (or None) already: no Python loop
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        a = np.asarray(values, dtype=object if None in values else None)
        if a.dtype.kind in "biuf":
            return pa.array(a.astype(str), type=pa.string())
        return pa.array([None if x is None else str(x) for x in values], type=pa.string())


def _floats(values: list[float | None]) -> pa.Array:
    import pyarrow as pa

    a = np.array(values, dtype=np.float64)  # None -> NaN
    return pa.array(a, type=pa.float64(), mask=np.isnan(a))


class TrafficRows:
    """Rows of the traffic log held as Python lists, one per column.

    ``add`` (the request path) appends a request's values; ``table`` (the writer thread)
    turns each list into an Arrow array in one call. The per-row work stays on the request
    path, where it costs ~2 µs a request, instead of in a writer that would hold the GIL
    (and so the event loop) for milliseconds per batch."""

    def __init__(self) -> None:
        self.rows = 0
        self.rid: list[str] = []
        self.row: list[int] = []
        self.ts: list[int] = []
        self.model: list[str] = []
        self.version: list[str] = []
        self.latency: list[float] = []
        self.status: list[int] = []
        self.inputs: dict[str, tuple[str, list[Any]]] = {}  # name -> (dtype, values)
        self.pred: list[Any] = []
        self.value: list[float | None] = []
        self.score: list[float | None] = []
        self.error_class: list[str | None] = []
        self.error_message: list[str | None] = []
        self.counts: dict[tuple[str, str], int] = {}  # (model, version) -> rows

    def add(self, r: Record) -> int:
        n = r.n
        if n == 1:
            self.rid.append(r.request_id)
            self.row.append(0)
            self.ts.append(r.ts_us)
            self.model.append(r.model)
            self.version.append(r.version)
            self.latency.append(r.latency_ms)
            self.status.append(r.status)
            self.error_class.append(r.error_class)
            self.error_message.append(r.error_message)
        else:
            self.rid.extend([r.request_id] * n)
            self.row.extend(range(n))
            self.ts.extend([r.ts_us] * n)
            self.model.extend([r.model] * n)
            self.version.extend([r.version] * n)
            self.latency.extend([r.latency_ms] * n)
            self.status.extend([r.status] * n)
            self.error_class.extend([r.error_class] * n)
            self.error_message.extend([r.error_message] * n)
        none = [None] * n
        self.pred.extend(none if r.pred is None else r.pred.tolist())
        self.value.extend(none if r.pred_value is None else r.pred_value.tolist())
        self.score.extend(none if r.score is None else r.score.tolist())
        cols = r.cols
        for spec in r.inputs:
            col = self.inputs.get(spec.name)
            if col is None:
                col = self.inputs[spec.name] = (spec.dtype, [None] * self.rows)
            vals = cols.get(spec.name)
            col[1].extend(none if vals is None else vals.tolist())
        self.rows += n
        if len(r.inputs) != len(self.inputs):  # columns this request did not send: nulls
            for _, column in self.inputs.values():
                if len(column) < self.rows:
                    column.extend([None] * (self.rows - len(column)))
        key = (r.model, r.version)
        self.counts[key] = self.counts.get(key, 0) + n
        return n

    def span(self) -> tuple[int, int]:
        return min(self.ts), max(self.ts)

    def table(self) -> pa.Table:
        """The rows as one Arrow table (the traffic schema)."""
        import pyarrow as pa

        arrays: dict[str, pa.Array] = {
            "request_id": pa.array(self.rid, type=pa.string()),
            "row": pa.array(self.row, type=pa.int32()),
            "ts": pa.array(np.array(self.ts, dtype=np.int64), type=pa.timestamp("us", tz="UTC")),
            "model": pa.array(self.model, type=pa.string()),
            "version": pa.array(self.version, type=pa.string()),
            "latency_ms": pa.array(self.latency, type=pa.float64()),
            "status": pa.array(self.status, type=pa.int16()),
        }
        for name, (dt, vals) in self.inputs.items():
            if dt == "string":
                arrays[f"in.{name}"] = _strings(vals)
            else:
                arrays[f"in.{name}"] = _column(np.array(vals, dtype=np.float64), dt)
        arrays["pred"] = _strings(self.pred)
        arrays["pred_value"] = _floats(self.value)
        arrays["score"] = _floats(self.score)
        arrays["error_class"] = pa.array(self.error_class, type=pa.string())
        arrays["error_message"] = pa.array(self.error_message, type=pa.string())
        table = pa.table(arrays)
        return table.replace_schema_metadata({SCHEMA_KEY: str(SCHEMA_VERSION).encode()})


def records_table(records: list[Record]) -> pa.Table:
    """One Arrow table (the traffic schema) from a list of request records."""
    rows = TrafficRows()
    for r in records:
        rows.add(r)
    return rows.table()


class FeedbackRows:
    """Labels from ``POST /feedback``, buffered like traffic rows."""

    def __init__(self) -> None:
        self.rows = 0
        self.items: list[tuple[str, int, str, int]] = []
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, item: tuple[str, int, str, int]) -> int:
        self.items.append(item)
        self.rows += 1
        return 1

    def span(self) -> tuple[int, int]:
        return min(i[3] for i in self.items), max(i[3] for i in self.items)

    def table(self) -> pa.Table:
        return feedback_table(self.items)


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


Counts = dict[tuple[str, str], int]  # (model, version) -> rows


class _Batcher:
    """A buffer of rows (:class:`TrafficRows` or :class:`FeedbackRows`) that a thread writes
    as one file when it holds ``max_rows`` rows or its first row is ``max_age`` seconds old.
    The request path only appends under a lock (a full buffer is sealed and a new one
    started, in O(1)); the writer takes sealed or old buffers and builds each file outside
    the lock. ``max_buffer`` bounds the rows held in all of them."""

    def __init__(self, folder: Path, prefix: str, new: Callable[[], Any], *,
                 max_rows: int, max_age: float, max_buffer: int,
                 on_written: Callable[[Counts], None] | None = None,
                 on_dropped: Callable[[Counts], None] | None = None) -> None:
        self.folder = folder
        self.prefix = prefix
        self.new = new
        self.max_rows = max_rows
        self.max_age = max_age
        self.max_buffer = max_buffer
        self.on_written = on_written
        self.on_dropped = on_dropped
        self.buf = new()
        self.sealed: list[Any] = []  # full buffers waiting for the writer
        self.held = 0  # rows in buf and sealed
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

    def add(self, item: Any, n: int, key: tuple[str, str] = ("", "")) -> None:
        with self.lock:
            if self.held + n > self.max_buffer:
                self.dropped_rows += n
                dropped = True
            else:
                if not self.buf.rows:
                    self.first_at = time.monotonic()
                self.buf.add(item)
                self.held += n
                dropped = False
                full = self.buf.rows >= self.max_rows
                if full:
                    self.sealed.append(self.buf)
                    self.buf = self.new()
        if dropped:
            if self.on_dropped is not None:
                self.on_dropped({key: n})
        elif full:
            self.wake.set()

    def _take(self, force: bool) -> Any:
        """The oldest sealed buffer, else the open one when it is old enough (or ``force``)."""
        with self.lock:
            if self.sealed:
                buf = self.sealed.pop(0)
            elif self.buf.rows and (force or time.monotonic() - self.first_at >= self.max_age):
                buf, self.buf = self.buf, self.new()
            else:
                return None
            self.held -= buf.rows
            return buf

    def _loop(self) -> None:
        while not self.closed:
            self.wake.wait(timeout=min(0.25, self.max_age))
            self.wake.clear()
            while self._flush_one(force=False):
                pass

    def flush(self) -> None:
        """Write everything held now."""
        while self._flush_one(force=True):
            pass

    def _flush_one(self, force: bool) -> bool:
        buf = self._take(force)
        if buf is None:
            return False
        self.seq += 1
        try:
            table = buf.table()
            first, last = buf.span()
            _write_table(self.folder, self.prefix, first, last, self.seq, table)
        except Exception as e:  # disk full, ...: count the rows as dropped, keep serving
            self.errors += 1
            self.dropped_rows += buf.rows
            print(f"gitml serve: traffic log write failed ({type(e).__name__}: {e}); "
                  f"{buf.rows} rows dropped", flush=True)
            if self.on_dropped is not None:
                self.on_dropped(buf.counts)
            return True
        self.written_rows += table.num_rows
        if self.on_written is not None:
            self.on_written(buf.counts)
        return True

    def close(self) -> None:
        self.closed = True
        self.wake.set()
        self.thread.join(timeout=5)
        self.flush()


class TrafficLog:
    """The server side: ``log(record)`` from the request path, ``feedback(...)`` for labels.

    ``on_written`` / ``on_dropped`` get the rows written / dropped per (model, version)."""

    def __init__(self, folder: Path | str, *, sample: float = 1.0, max_rows: int = 50_000,
                 max_age: float = 1.0, max_buffer: int = 2_000_000,
                 on_written: Callable[[Counts], None] | None = None,
                 on_dropped: Callable[[Counts], None] | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / FEEDBACK_DIR).mkdir(exist_ok=True)
        self.sample = sample
        self._rand = random.random
        self.traffic = _Batcher(self.folder, TRAFFIC_PREFIX, TrafficRows, max_rows=max_rows,
                                max_age=max_age, max_buffer=max_buffer, on_written=on_written,
                                on_dropped=on_dropped)
        self.labels = _Batcher(self.folder / FEEDBACK_DIR, FEEDBACK_PREFIX, FeedbackRows,
                               max_rows=max_rows, max_age=max_age, max_buffer=max_buffer)

    def sampled(self) -> bool:
        return self.sample >= 1.0 or self._rand() < self.sample

    def log(self, record: Record) -> None:
        self.traffic.add(record, record.n, (record.model, record.version))

    def feedback(self, request_id: str, row: int, label: str) -> None:
        self.labels.add((request_id, row, label, int(time.time() * 1e6)), 1)

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
