"""Unit tests of the manifest building blocks: strict parsing, params files, the tracking
API, environment ids, package diffs, trailers, tabular summaries, lineage rendering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gitml.runs import environment, params, tabular, tracking
from gitml.runs.diff import diff_environments, diff_packages, diff_values
from gitml.runs.errors import ManifestError, ParamsError
from gitml.runs.manifest import manifest_id, parse_trailers
from gitml.runs.records import FileRef, RunRecord, parse_run_record
from gitml.runs.tracer import read_tracking


def rec(stage: str, ins: list[str], outs: list[str]) -> RunRecord:
    return RunRecord(stage=stage, cmd=["python", f"{stage}.py"],
                     inputs=[FileRef(p, "a" * 32) for p in ins],
                     outputs=[FileRef(p, "b" * 32, source="artifact") for p in outs])


def test_run_record_round_trip() -> None:
    r = rec("train", ["data/x.parquet", "train.py"], ["models/m.pkl"])
    r.params = {"depth": 6, "lr": 0.1}
    r.metrics = {"accuracy": 0.91}
    r.env = "0" * 32
    back = parse_run_record(r.dumps(), "train.json")
    assert back == r


@pytest.mark.parametrize("text, expected", [
    ("{not json", "malformed JSON at line 1 column 2"),
    ("[]", "top level must be an object, got a list"),
    ('{"format": 1, "stage": "t", "exit_code": 0, "inputs": [], "outputs": []}', "missing field 'cmd'"),
    ('{"format": 1, "stage": "t", "cmd": "python t.py", "exit_code": 0, "inputs": [], "outputs": []}',
     "field 'cmd' must be a list, got a string"),
    ('{"format": 1, "stage": "t", "cmd": ["x"], "exit_code": 0, "inputs": [], "outputs": [],'
     ' "metrics": {"acc": "high"}}', "metric 'acc' must be a number, got a string"),
    ('{"format": 1, "stage": "t", "cmd": ["x"], "exit_code": 0, "inputs": [{"path": "../etc/passwd",'
     ' "oid": null}], "outputs": []}', "inputs[0].path' must be a relative path"),
    ('{"format": 1, "stage": "t", "cmd": ["x"], "exit_code": true, "inputs": [], "outputs": []}',
     "field 'exit_code' must be an integer, got bool"),
    ('{"format": 9, "stage": "t", "cmd": ["x"], "exit_code": 0, "inputs": [], "outputs": []}',
     "unsupported run record format 9"),
    ('{"format": 1, "stage": "t", "cmd": ["x"], "exit_code": 0, "inputs": [], "outputs": [], "env": "xyz"}',
     "field 'env' must be a 32-hex-digit environment id"),
])
def test_malformed_run_records_give_one_line_errors(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as e:
        parse_run_record(text, ".gitml/runs/t.json")
    msg = str(e.value)
    assert msg.startswith(".gitml/runs/t.json: ") and expected in msg and "\n" not in msg


@pytest.mark.parametrize("name, text, expected", [
    ("p.yaml", "train:\n  depth: [1, 2\n", "p.yaml: malformed YAML at line"),
    ("p.json", '{"depth": 6,}', "p.json: malformed JSON at line 1"),
    ("p.toml", "depth = = 6\n", "p.toml: malformed TOML"),
    ("p.yaml", "- 1\n- 2\n", "top level must be a mapping"),
    ("p.ini", "x=1", "unsupported format .ini"),
])
def test_malformed_params_files(tmp_path: Path, name: str, text: str, expected: str) -> None:
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ParamsError) as e:
        params.read_params(f, None, name)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_params_keys_flattening_and_missing_key(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  depth: 6\n  opt: {lr: 0.1, name: adam}\nseed: 1\n")
    assert params.read_params(f, None) == {"train.depth": 6, "train.opt.lr": 0.1,
                                           "train.opt.name": "adam", "seed": 1}
    assert params.read_params(f, ["train.opt", "seed"]) == {"train.opt.lr": 0.1, "train.opt.name": "adam",
                                                           "seed": 1}
    with pytest.raises(ParamsError, match=r"no key 'train\.width'"):
        params.read_params(f, ["train.width"], "params.yaml")
    assert params.parse_spec("params.yaml:a,b") == ("params.yaml", ["a", "b"])
    with pytest.raises(ParamsError):
        params.parse_spec("params.yaml:")
    m = tmp_path / "metrics.json"
    m.write_text(json.dumps({"acc": 0.9, "name": "x", "nested": {"f1": 1}, "ok": True}))
    assert params.read_metrics(m) == {"acc": 0.9, "nested.f1": 1, "ok": 1.0}


def test_tracking_outside_and_inside_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tracking.ENV_VAR, raising=False)
    monkeypatch.setattr(tracking, "_warned", False)
    with pytest.warns(RuntimeWarning, match="outside `git ml run`"):
        tracking.log_metric("acc", 0.5)
    f = tmp_path / "t.jsonl"
    monkeypatch.setenv(tracking.ENV_VAR, str(f))
    import numpy as np

    tracking.log_param("depth", np.int64(6))
    tracking.log_metric("acc", np.float32(0.25))
    tracking.log_metric("loss", 1.0, step=1)
    tracking.log_metric("loss", 0.5, step=2)
    tracking.log_params({"features": ["a", "b"]})
    p, m, hist = read_tracking(f)
    assert p == {"depth": 6, "features": ["a", "b"]}
    assert m == {"acc": 0.25, "loss": 0.5} and hist["loss"] == [[1, 1.0], [2, 0.5]]
    with pytest.raises(tracking.TrackingValueError, match="must be a number"):
        tracking.log_metric("acc", "high")  # type: ignore[arg-type]
    with pytest.raises(tracking.TrackingValueError, match="invalid name"):
        tracking.log_param("a=b", 1)


def test_tracking_is_import_light() -> None:
    code = ("import sys, time; t = time.perf_counter(); import gitml; from gitml import log_metric; "
            "dt = time.perf_counter() - t; "
            "heavy = [m for m in ('pygit2', 'rich', 'pandas', 'pyarrow', 'numpy', 'json') "
            "if m in sys.modules]; print(heavy, dt)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, dt = out.rsplit(" ", 1)
    assert heavy == "[]"
    assert float(dt) < 1.0  # generous: the real check is that nothing heavy was imported


def test_environment_capture_and_stable_id() -> None:
    a = environment.capture()
    b = environment.capture()
    assert a["id"] == b["id"] == environment.environment_id(a)
    assert a["packages"]["pyarrow"] and a["python"]["version"] and a["cpu"]["count"] >= 1
    changed = dict(a, packages={**a["packages"], "pyarrow": "0.0.1"})
    assert environment.environment_id(changed) != a["id"]
    moved = dict(a, executable="/elsewhere/python", captured_at="never")
    assert environment.environment_id(moved) == a["id"]


def test_package_and_value_diffs() -> None:
    d = diff_packages({"numpy": "1.9.0", "pandas": "2.0", "old": "1"},
                      {"numpy": "1.10.0", "pandas": "1.5", "new": "3"})
    assert d == {"added": {"new": "3"}, "removed": {"old": "1"},
                 "upgraded": {"numpy": ["1.9.0", "1.10.0"]}, "downgraded": {"pandas": ["2.0", "1.5"]}}
    e = diff_environments({"id": "a", "packages": {"x": "1"}, "python": {"version": "3.11.7"}},
                          {"id": "b", "packages": {"x": "2"}, "python": {"version": "3.12.1"}})
    assert e["python"][1]["version"] == "3.12.1" and e["packages"]["upgraded"] == {"x": ["1", "2"]}
    v = diff_values({"acc": 0.8, "name": "a", "gone": 1}, {"acc": 0.9, "name": "b", "new": 2})
    assert v["acc"]["delta"] == pytest.approx(0.1) and v["name"]["delta"] is None
    assert v["gone"]["new"] is None and v["new"]["old"] is None


def test_trailers_and_manifest_id() -> None:
    msg = "train\n\nbody text\n\nSigned-off-by: A <a@x>\nGitml-Metric: acc=0.9\n"
    assert parse_trailers(msg) == [("Signed-off-by", "A <a@x>"), ("Gitml-Metric", "acc=0.9")]
    assert parse_trailers("just a subject\n") == []
    a = manifest_id([("a.gitml", "1" * 40), (".gitml/runs/t.json", "2" * 40)])
    assert a == manifest_id([(".gitml/runs/t.json", "2" * 40), ("a.gitml", "1" * 40)])
    assert a != manifest_id([("a.gitml", "1" * 40), (".gitml/runs/t.json", "3" * 40)])


def test_tabular_summaries_and_diff(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    a = tmp_path / "a.parquet"
    b = tmp_path / "b.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3], "y": ["a", None, "c"]}), a, row_group_size=2)
    pq.write_table(pa.table({"x": [1, 2, 3, 10], "y": ["a", "b", "c", "d"], "z": [1.0] * 4}), b)
    sa, sb = tabular.summarize(a, "a.parquet"), tabular.summarize(b, "b.parquet")
    assert sa is not None and sb is not None
    assert sa["rows"] == 3 and sa["columns"]["y"]["nulls"] == 1 and sa["columns"]["x"]["max"] == 3
    d = tabular.diff_summaries(sa, sb)
    assert d["rows_delta"] == 1 and d["columns_added"] == ["z"]
    assert d["columns_changed"]["x"] == {"max": [3, 10]} and d["columns_changed"]["y"]["nulls"] == [1, 0]
    c = tmp_path / "c.csv"
    c.write_text("x,y\n1,a\n5,\n")
    sc = tabular.summarize(c, "c.csv")
    assert sc is not None and sc["rows"] == 2 and sc["columns"]["x"]["max"] == 5
    assert tabular.kind_of("model.pkl", None) is None
    weird = tmp_path / "noext"
    weird.write_bytes(a.read_bytes())
    assert tabular.kind_of("noext", weird) == "parquet"
    assert any("rows: 3 -> 4 (+1)" in ln for ln in tabular.format_diff(d))
