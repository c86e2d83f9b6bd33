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
    small = TrafficLog(tmp_path / "c", max_buffer=10, max_age=30,
                       on_dropped=lambda counts: dropped.extend(counts.values()))
    for i in range(4):
        small.log(_record(i, 4))
    small.close()
    assert small.traffic.written_rows == 8 and small.traffic.dropped_rows == 8 and dropped == [4, 4]
    for log in (none, half):
        log.close()
    assert len(read_traffic(tmp_path / "c")) == 8


def test_failed_requests_are_logged_and_both_schema_versions_read(tmp_path: Path) -> None:
    import pyarrow as pa

    from gitml.serve.traffic import SCHEMA_KEY, error_record, records_table

    now = int(time.time() * 1e6)
    refused = error_record("e1", now, "m", "1.0.0", 0.4, 422, "BadInput", "x" * 1000, INPUTS,
                           {"colour": np.array(["Green", "White"], dtype=object),
                            "age": np.array([30.0, 40.0])}, 2)
    malformed = error_record("e2", now + 1, "m", "", 0.1, 400, "RequestError", "malformed JSON")
    log = TrafficLog(tmp_path, max_age=30)
    for r in (_record(0, 2), refused, malformed):
        log.log(r)
    log.close()
    (v2_file,) = tmp_path.glob("traffic-*.parquet")
    v2 = pq.read_table(v2_file)
    assert v2.schema.metadata[SCHEMA_KEY] == b"2"
    # schema 1's columns keep their names, types and places; the error columns come last
    v1_schema = records_table([_record(0, 1)]).drop_columns(["error_class", "error_message"]).schema
    assert v2.schema.names[:len(v1_schema)] == v1_schema.names
    assert v2.schema.names[len(v1_schema):] == ["error_class", "error_message"]
    assert all(v2.schema.field(f.name).type == f.type for f in v1_schema)
    # a schema-1 reader (one that knows only those columns) reads a schema-2 file
    old_view = pq.read_table(v2_file, columns=v1_schema.names)
    assert old_view.num_rows == 5 and old_view.schema.names == v1_schema.names
    # a schema-1 file beside it: the new reader reads both, error columns null for the old one
    old = records_table([_record(7, 3)]).drop_columns(["error_class", "error_message"])
    pq.write_table(old.replace_schema_metadata(None), tmp_path / f"traffic-{now - 5}-{now - 5}-1-000001.parquet")
    df = read_traffic(tmp_path)
    assert len(df) == 8 and list(df.columns[-2:]) == ["error_class", "error_message"]
    by = {rid: g for rid, g in df.groupby("request_id")}
    assert by["r7"]["error_class"].isna().all() and (by["r7"]["status"] == 200).all()
    e1, e2 = by["e1"].sort_values("row"), by["e2"]
    assert e1["status"].tolist() == [422, 422] and e1["in.colour"].tolist() == ["Green", "White"]
    assert e1["pred"].isna().all() and e1["score"].isna().all()
    assert (e1["error_class"] == "BadInput").all() and e1["error_message"].str.len().max() == 240
    assert len(e2) == 1 and e2["in.age"].isna().all() and e2["error_message"].iloc[0] == "malformed JSON"
    assert e2["version"].iloc[0] == "" and int(e2["status"].iloc[0]) == 400
    assert pa.types.is_string(v2.schema.field("error_class").type)
