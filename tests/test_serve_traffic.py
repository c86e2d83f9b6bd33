"""The traffic log on its own: rotation by size and by time, sampling, schema, readers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from gitml.models.bundle import InputSpec
from gitml.serve.traffic import Record, TrafficLog, read_feedback, read_traffic

INPUTS = [InputSpec("colour", "string", ["Black", "White"], False), InputSpec("age", "int64", None, True)]


def _record(i: int, n: int) -> Record:
    return Record(request_id=f"r{i}", ts_us=int(time.time() * 1e6), model="m", version="1.0.0",
                  latency_ms=1.5, status=200, inputs=INPUTS,
                  cols={"colour": np.array(["White"] * n, dtype=object),
                        "age": np.array([20.0 + i] * (n - 1) + [np.nan])},
                  n=n, pred=np.array(["Yes"] * n, dtype=object), pred_value=np.full(n, 0.75),
                  score=np.full(n, 0.75))


def test_rotation_by_size_and_time_and_the_schema(tmp_path: Path) -> None:
    log = TrafficLog(tmp_path, max_rows=20, max_age=0.3)
    for i in range(10):
        log.log(_record(i, 5))
    deadline = time.monotonic() + 10
    while sum(1 for _ in tmp_path.glob("traffic-*.parquet")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    log.log(_record(10, 3))
    time.sleep(0.8)  # older than max_age: flushed without reaching max_rows
    files = sorted(tmp_path.glob("traffic-*.parquet"))
    assert len(files) >= 3
    schema = pq.read_schema(files[0])
    assert str(schema.field("ts").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("row").type) == "int32" and str(schema.field("status").type) == "int16"
    assert str(schema.field("in.age").type) == "int64" and str(schema.field("in.colour").type) == "string"
    df = read_traffic(tmp_path)
    assert len(df) == 53 and df.groupby("request_id").size().sum() == 53
    assert df["in.age"].isna().sum() == 11  # the null of each request stays null
    assert read_traffic(tmp_path, since=time.time() + 60).empty
    log.feedback("r1", 0, "Yes")
    log.close()
    assert read_feedback(tmp_path)[["request_id", "row", "label"]].values.tolist() == [["r1", 0, "Yes"]]
    assert log.traffic.written_rows == 53 and log.traffic.dropped_rows == 0


def test_sampling_and_a_full_buffer_are_counted(tmp_path: Path) -> None:
    none = TrafficLog(tmp_path / "a", sample=0.0)
    assert not any(none.sampled() for _ in range(1000))
    half = TrafficLog(tmp_path / "b", sample=0.5)
    hits = sum(half.sampled() for _ in range(4000))
    assert 1700 < hits < 2300
    dropped: list[int] = []
    small = TrafficLog(tmp_path / "c", max_buffer=10, max_age=30, on_dropped=lambda r: dropped.append(r.n))
    for i in range(4):
        small.log(_record(i, 4))
    small.close()
    assert small.traffic.written_rows == 8 and small.traffic.dropped_rows == 8 and dropped == [4, 4]
    for log in (none, half):
        log.close()
    assert len(read_traffic(tmp_path / "c")) == 8
