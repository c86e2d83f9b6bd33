"""The model server, for real: bundles built from a committed model, a server started on
127.0.0.1 with two worker processes and a bearer token, real clients for every protocol
(urllib, tritonclient, prometheus_client's parser, schemathesis, wrk)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.checks import FEATURES, good_model
from tests.support.serve import (
    AUTH,
    MODEL,
    TOKEN,
    Load,
    env,
    make_repo,
    read_serve_url,
    request,
    rows,
    split_body,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from gitml.models.bundle import build_bundle
    from gitml.repo import MLRepo
    from gitml.serve import control

    root = tmp_path_factory.mktemp("serve")
    repo_path = make_repo(root / "repo")
    old = os.getcwd()
    os.chdir(repo_path)
    try:
        repo = MLRepo.discover()
        b1 = build_bundle(repo, MODEL, f"{MODEL}@v1.0.0", root / "b1")
        b2 = build_bundle(repo, MODEL, f"{MODEL}@v1.1.0", root / "b2")
    finally:
        os.chdir(old)
    state = root / "deploy" / "state.json"
    control.write_state(state, {"model": MODEL, "active": "1.0.0", "versions": {"1.0.0": str(b1.path)}})
    traffic = root / "traffic"
    srv = control.start(state, port=0, workers=2, token=TOKEN, traffic_dir=traffic, flush_seconds=0.3)
    try:
        control.wait_ready(srv.url, "1.0.0", timeout=90, token=TOKEN)
        yield {"root": root, "repo": repo_path, "b1": b1, "b2": b2, "state": state, "srv": srv,
               "url": srv.url, "traffic": traffic}
    finally:
        control.stop(srv.pid)


def post(world: dict[str, Any], path: str, body: bytes, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    code, data, h = request(world["url"] + path, body, content_type=content_type,
                            headers={**AUTH, **(headers or {})})
    try:
        return code, json.loads(data), h
    except ValueError:
        return code, data, h


def expected(n: int, start: int = 0) -> list[str]:
    return [str(x) for x in good_model("logreg").predict(rows(n, start))]


# bundle --------------------------------------------------------------------------------

def test_bundle_manifest_and_verification(world: dict[str, Any], tmp_path: Path) -> None:
    from gitml.errors import CorruptObjectError
    from gitml.models.bundle import Bundle

    b = Bundle.open(world["b1"].path)
    meta = json.loads((b.path / "gitml-bundle.json").read_text())
    assert meta["format"] == 1 and meta["name"] == MODEL and meta["version"] == "1.0.0"
    assert meta["flavor"] == "skops" and meta["classes"] == ["No", "Yes"]
    assert sorted(i["name"] for i in meta["inputs"]) == sorted(FEATURES)
    assert {i["name"]: i["dtype"] for i in meta["inputs"]}["age"] == "int64"
    assert {i["name"]: i["categories"] for i in meta["inputs"]}["sex"] == ["Female", "Male"]
    assert "scikit-learn==" in (b.path / "requirements.txt").read_text()
    smoke, preds, values = b.smoke()
    assert preds == [str(x) for x in good_model("logreg").predict(smoke)]
    assert all(v is not None and 0 <= v <= 1 for v in values)
    assert b.load_model().predict(smoke).tolist() == good_model("logreg").predict(smoke).tolist()
    # one flipped byte: refused before anything parses it
    bad = tmp_path / "bad"
    shutil.copytree(b.path, bad)
    model = bad / b.model_file
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(CorruptObjectError, match="hash"):
        Bundle.open(bad)


def test_server_refuses_a_tampered_version_and_keeps_serving(world: dict[str, Any]) -> None:
    from gitml.errors import GitMLError
    from gitml.serve import control

    bad = world["root"] / "tampered"
    shutil.copytree(world["b1"].path, bad)
    model = bad / world["b1"].model_file
    data = bytearray(model.read_bytes())
    data[-100] ^= 0x01
    model.write_bytes(bytes(data))
    state = world["state"]
    control.write_state(state, {"model": MODEL, "active": "1.0.0",
                                "versions": {"1.0.0": str(world["b1"].path), "6.6.6": str(bad)}})
    try:
        with pytest.raises(GitMLError, match="hash"):
            control.wait_ready(world["url"], "6.6.6", timeout=30, token=TOKEN)
        for _ in range(4):  # both workers (whichever answers) refuse it once they read the state
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                code, body, _ = request(world["url"] + f"/v2/models/{MODEL}/versions/6.6.6", headers=AUTH)
                if "failed to load" in json.loads(body)["error"]:
                    break
                time.sleep(0.1)
            assert code == 404 and "hash" in json.loads(body)["error"]
        assert post(world, "/invocations", split_body(2))[1]["predictions"] == expected(2)
    finally:
        control.write_state(state, {"model": MODEL, "active": "1.0.0",
                                    "versions": {"1.0.0": str(world["b1"].path)}})


# MLflow protocol -----------------------------------------------------------------------

def test_mlflow_formats_give_the_models_predictions(world: dict[str, Any]) -> None:
    df = rows(5)
    want = expected(5)
    recs = json.loads(df.to_json(orient="records"))
    bodies = {
        "split": json.dumps({"dataframe_split": json.loads(df.to_json(orient="split", index=False))}),
        "records": json.dumps({"dataframe_records": recs}),
        "instances": json.dumps({"instances": recs}),
        "inputs": json.dumps({"inputs": {c: df[c].tolist() for c in df.columns}}),
    }
    for name, body in bodies.items():
        code, out, headers = post(world, "/invocations", body.encode())
        assert code == 200, (name, out)
        assert out["predictions"] == want, name
        assert headers.get("x-request-id")
    code, out, _ = post(world, "/invocations", df.to_csv(index=False).encode(), "text/csv")
    assert code == 200 and out["predictions"] == want
    for path in ("/ping", "/health"):
        assert request(world["url"] + path)[0] == 200


@pytest.mark.parametrize(("body", "ctype", "status", "words"), [
    (b'{"dataframe_split": {"columns": ["colour"], "data": [["White"]]}}', "application/json", 400, "missing column"),
    (json.dumps({"dataframe_records": [{**{c: 1 for c in FEATURES}, "colour": "White", "sex": "Male",
                                        "employed": "Yes", "citizen": "Yes", "bogus": 1}]}).encode(),
     "application/json", 400, "unknown column(s): bogus"),
    (json.dumps({"dataframe_records": [{"colour": "White", "year": "2002", "age": 21, "sex": "Male",
                                        "employed": "Yes", "citizen": "Yes", "checks": 3}]}).encode(),
     "application/json", 400, "'year'"),
    (json.dumps({"dataframe_records": [{"colour": "White", "year": 2002, "age": None, "sex": "Male",
                                        "employed": "Yes", "citizen": "Yes", "checks": 3}]}).encode(),
     "application/json", 400, "missing values"),
    (b"colour,year,age,sex,employed,citizen,checks\nWhite,2002,NaN,Male,Yes,Yes,3\n", "text/csv", 400, "'age'"),
    (json.dumps({"dataframe_records": [{"colour": 5, "year": 2002, "age": 21, "sex": "Male",
                                        "employed": "Yes", "citizen": "Yes", "checks": 3}]}).encode(),
     "application/json", 400, "expected a string"),
    (b'{"dataframe_split": ', "application/json", 400, "malformed JSON"),
    (b'{"dataframe_split": {}}', "application/xml", 415, "content type"),
    (b'{"nothing": 1}', "application/json", 400, "exactly one of"),
])
def test_bad_requests_get_a_4xx_naming_the_problem(world: dict[str, Any], body: bytes, ctype: str,
                                                   status: int, words: str) -> None:
    code, out, _ = post(world, "/invocations", body, ctype)
    assert code == status, out
    assert words in out["message"], out


def test_a_huge_body_is_refused_before_it_is_read(world: dict[str, Any]) -> None:
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(world["url"])
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                  b"Content-Length: 1000000000\r\n\r\n" + b"x" * 1000)
        answer = b""
        while b"over the limit" not in answer:  # headers and body may come in separate reads
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"over the limit" in answer


def test_a_bearer_token_is_required_when_set(world: dict[str, Any]) -> None:
    url = world["url"]
    assert request(url + "/invocations", split_body(1))[0] == 401
    assert request(url + "/invocations", split_body(1), headers={"Authorization": "Bearer wrong"})[0] == 401
    assert request(url + "/metrics")[0] == 401
    assert request(url + f"/v2/models/{MODEL}")[0] == 401
    assert request(url + "/ping")[0] == 200  # probes stay open
    assert request(url + "/invocations", split_body(1), headers=AUTH)[0] == 200


# KServe V2 -----------------------------------------------------------------------------

def test_v2_with_the_real_tritonclient(world: dict[str, Any]) -> None:
    import tritonclient.http as th

    # (tritonclient writes its own headers into the dict it is given: pass a fresh one)

    host = world["url"].removeprefix("http://")
    client = th.InferenceServerClient(url=host)
    try:
        assert client.is_server_live(headers=dict(AUTH))
        assert client.is_server_ready(headers=dict(AUTH))
        assert client.is_model_ready(MODEL, headers=dict(AUTH))
        assert client.is_model_ready(MODEL, "1.0.0", headers=dict(AUTH))
        meta = client.get_model_metadata(MODEL, headers=dict(AUTH))
        assert sorted(i["name"] for i in meta["inputs"]) == sorted(FEATURES)
        dtypes = {i["name"]: i["datatype"] for i in meta["inputs"]}
        assert dtypes["colour"] == "BYTES" and dtypes["age"] == "INT64"
        df = rows(7)
        want = good_model("logreg").predict_proba(df)
        for binary in (True, False):
            inputs = []
            for c in FEATURES:
                if dtypes[c] == "BYTES":
                    arr = df[c].to_numpy(dtype=object)
                    t = th.InferInput(c, [len(df)], "BYTES")
                elif c == "year":  # any numeric datatype is accepted for a numeric column
                    arr = df[c].to_numpy(dtype=np.float32)
                    t = th.InferInput(c, [len(df)], "FP32")
                else:
                    arr = df[c].to_numpy(dtype=np.int64)
                    t = th.InferInput(c, [len(df)], "INT64")
                t.set_data_from_numpy(arr, binary_data=binary)
                inputs.append(t)
            outputs = [th.InferRequestedOutput("predict", binary_data=binary),
                       th.InferRequestedOutput("predict_proba", binary_data=binary)]
            res = client.infer(MODEL, inputs, outputs=outputs, headers=dict(AUTH), request_id=f"r-{binary}")
            labels = [x.decode() if isinstance(x, bytes) else x for x in res.as_numpy("predict").tolist()]
            assert labels == expected(7)
            assert np.allclose(res.as_numpy("predict_proba"), want)
            assert res.get_response()["id"] == f"r-{binary}"
        res = client.infer(MODEL, inputs, model_version="1.0.0", headers=dict(AUTH))  # all outputs, binary
        assert res.as_numpy("predict_proba").shape == (7, 2)
        with pytest.raises(th.InferenceServerException, match="BYTES"):
            bad = th.InferInput("colour", [1], "INT64")
            bad.set_data_from_numpy(np.array([1], dtype=np.int64))
            client.infer(MODEL, [bad, *inputs[1:]], headers=dict(AUTH))
    finally:
        client.close()


def test_v2_errors_are_4xx(world: dict[str, Any]) -> None:
    base = f"/v2/models/{MODEL}"
    good = {"inputs": [{"name": c, "datatype": "BYTES" if c in ("colour", "sex", "employed", "citizen") else "INT64",
                        "shape": [1], "data": rows(1)[c].tolist()} for c in FEATURES]}
    assert post(world, base + "/infer", json.dumps(good).encode())[0] == 200
    short = {"inputs": good["inputs"][:-1]}
    code, out, _ = post(world, base + "/infer", json.dumps(short).encode())
    assert code == 400 and "checks" in out["error"]
    wrong_shape = json.loads(json.dumps(good))
    wrong_shape["inputs"][0]["shape"] = [2]
    assert post(world, base + "/infer", json.dumps(wrong_shape).encode())[0] == 400
    assert post(world, "/v2/models/nosuch/infer", json.dumps(good).encode())[0] == 404
    assert post(world, base + "/versions/9.9.9/infer", json.dumps(good).encode())[0] == 404
    assert request(world["url"] + "/v2/health/live")[0] == 200


# metrics, OpenAPI ----------------------------------------------------------------------

def test_metrics_parse_with_prometheus_client(world: dict[str, Any]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        code, body, _ = request(world["url"] + "/metrics", headers=AUTH)
        assert code == 200
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for fam in text_string_to_metric_families(body.decode()):
            for s in fam.samples:
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
        return out

    key = (("model", MODEL), ("protocol", "mlflow"), ("version", "1.0.0"))
    before = scrape()
    n_req = before.get("gitml_requests_total", {}).get(key, 0.0)
    n_rows = before.get("gitml_rows_total", {}).get((("model", MODEL), ("version", "1.0.0")), 0.0)
    for _ in range(6):  # two workers: whichever answers, the scrape sums both
        assert post(world, "/invocations", split_body(3))[0] == 200
    assert post(world, "/invocations", b"{", "application/json")[0] == 400
    after = scrape()
    assert after["gitml_requests_total"][key] == n_req + 7
    assert after["gitml_rows_total"][(("model", MODEL), ("version", "1.0.0"))] == n_rows + 18
    errors = after["gitml_request_errors_total"]
    assert errors[(("code", "400"), *key)] >= 1
    assert after["gitml_request_latency_seconds_count"][key] == n_req + 7


def test_schemathesis_finds_no_server_error(world: dict[str, Any], tmp_path: Path) -> None:
    exe = shutil.which("schemathesis") or shutil.which("st")
    assert exe, "schemathesis is a test dependency"
    proc = subprocess.run(
        [exe, "run", world["url"] + "/openapi.json", "--checks", "not_a_server_error",
         "--max-examples", "30", "-H", f"Authorization: Bearer {TOKEN}", "--workers", "2",
         "--phases", "examples,fuzzing", "--generation-deterministic", "--no-color"],
        capture_output=True, text=True, timeout=170, env=env(), cwd=tmp_path)  # (its cache goes there)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    m = re.search(r"(\d+) generated, (\d+) passed", proc.stdout)
    assert m and int(m.group(1)) >= 100 and m.group(1) == m.group(2), proc.stdout[-2000:]


# deploy switch, crashes, traffic log ------------------------------------------------------

def _v2_body(n: int = 1) -> bytes:
    df = rows(n)
    return json.dumps({"inputs": [
        {"name": c, "datatype": "BYTES" if df[c].dtype == object else "INT64", "shape": [n],
         "data": df[c].tolist()} for c in FEATURES]}).encode()


def test_version_switch_under_load_fails_no_request(world: dict[str, Any]) -> None:
    from gitml.serve import control

    state, b1, b2 = world["state"], world["b1"].path, world["b2"].path
    both = {"1.0.0": str(b1), "1.1.0": str(b2)}
    with Load(world["url"], f"/v2/models/{MODEL}/infer", _v2_body(3), threads=6, headers=AUTH) as load:
        load.wait_for(50)
        control.write_state(state, {"model": MODEL, "active": "1.0.0", "versions": both})
        control.wait_ready(world["url"], "1.1.0", timeout=60, token=TOKEN)
        control.write_state(state, {"model": MODEL, "active": "1.1.0", "versions": both})
        control.wait_ready(world["url"], "1.1.0", timeout=30, active=True, token=TOKEN)
        seen = load.total()
        load.wait_for(seen + 100)
        control.write_state(state, {"model": MODEL, "active": "1.0.0", "versions": both})
        control.wait_ready(world["url"], "1.0.0", timeout=30, active=True, token=TOKEN)
        load.wait_for(load.total() + 50)
    assert set(load.counts) == {"200"}, load.counts
    assert load.versions.get("1.0.0", 0) > 0 and load.versions.get("1.1.0", 0) > 0, load.versions
    control.write_state(state, {"model": MODEL, "active": "1.0.0", "versions": {"1.0.0": str(b1)}})


def test_kill_9_of_a_worker_fails_only_its_requests(world: dict[str, Any]) -> None:
    run = world["state"].parent / "state.run"
    pids = json.loads((run / "workers.json").read_text())["pids"]
    threads = 6
    with Load(world["url"], "/invocations", split_body(2), threads=threads, headers=AUTH) as load:
        load.wait_for(100)
        os.kill(pids[0], signal.SIGKILL)
        load.wait_for(load.total() + 300)
    failed = load.total() - load.counts.get("200", 0)
    # each client held at most one request (or one idle connection) on the killed worker
    assert failed <= threads, load.counts
    assert set(load.counts) <= {"200", "error"}, load.counts
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = json.loads((run / "workers.json").read_text())["pids"]
        if pids[0] not in now and len(now) == 2 and all((run / "workers" / f"{p}.json").exists() for p in now):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the killed worker was not replaced: {now}")
    assert pids[1] in now
    assert post(world, "/invocations", split_body(1))[0] == 200
    # the killed worker's unflushed batch is gone, but every traffic file is whole
    from gitml.serve.traffic import read_traffic

    deadline = time.time() + 10  # the surviving workers flush their batches each second
    while len(read_traffic(world["traffic"])) == 0 and time.time() < deadline:
        time.sleep(0.2)
    assert len(read_traffic(world["traffic"])) > 0


def test_traffic_log_under_load_loses_no_record(world: dict[str, Any]) -> None:
    from gitml.serve.traffic import read_feedback, read_traffic

    folder = world["traffic"]
    t0 = time.time()
    with Load(world["url"], "/invocations", split_body(4, start=10), threads=8, headers=AUTH) as load:
        load.wait_for(400)
    assert set(load.counts) == {"200"}, load.counts
    sent = load.counts["200"]
    # a request id from a response, for feedback
    code, out, headers = post(world, "/invocations", split_body(2, start=20))
    rid = headers["x-request-id"]
    code, out, _ = post(world, "/feedback", json.dumps({"labels": [
        {"request_id": rid, "row": 0, "label": "Yes"}, {"request_id": rid, "row": 1, "label": "No"}]}).encode())
    assert code == 200 and out == {"accepted": 2}
    assert post(world, "/feedback", b'{"row": 0}')[0] == 400
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        df = read_traffic(folder, since=t0)
        got = df[df["request_id"] != rid]
        if len(got) >= sent * 4 and (df["request_id"] == rid).sum() == 2 \
                and (read_feedback(folder)["request_id"] == rid).sum() == 2:
            break
        time.sleep(0.2)
    assert len(got) == sent * 4  # every row of every answered request, none twice
    assert got.groupby("request_id").size().eq(4).all()
    assert set(got["version"]) == {"1.0.0"} and set(got["model"]) == {MODEL}
    mine = df[df["request_id"] == rid].sort_values("row")
    assert mine["pred"].tolist() == expected(2, start=20)
    assert mine["in.colour"].tolist() == rows(2, 20)["colour"].tolist()
    assert mine["in.age"].tolist() == rows(2, 20)["age"].tolist()
    assert str(df["status"].dtype) == "int16" and (df["status"] == 200).all()
    assert df["pred_value"].between(0, 1).all() and df["score"].between(0.5, 1).all()
    fb = read_feedback(folder)
    fb = fb[fb["request_id"] == rid]  # (the schemathesis run posted labels of its own)
    assert fb.sort_values("row")["label"].tolist() == ["Yes", "No"]
    # nothing half-written is ever visible: only whole parquet files besides temp names
    assert not [p for p in folder.iterdir() if p.suffix == ".parquet" and p.name.startswith(".")]


def _v2_inputs(n: int = 1, start: int = 0) -> list[dict[str, Any]]:
    cat = ("colour", "sex", "employed", "citizen")
    return [{"name": c, "datatype": "BYTES" if c in cat else "INT64", "shape": [n],
             "data": rows(n, start)[c].tolist()} for c in FEATURES]


def _logged(folder: Path, since: float, rids: set[str]) -> Any:
    from gitml.serve.traffic import read_traffic

    deadline = time.monotonic() + 20
    while True:
        df = read_traffic(folder, since=since)
        df = df[df["request_id"].isin(rids)]
        if set(df["request_id"]) == rids or time.monotonic() > deadline:
            return df
        time.sleep(0.2)


def test_failed_requests_are_logged_with_their_reason(world: dict[str, Any]) -> None:
    t0 = time.time()
    unknown = json.dumps({"dataframe_records": [{**rows(1).iloc[0].to_dict(), "bogus": 1}]},
                         default=int).encode()
    v2 = f"/v2/models/{MODEL}"
    cases = [  # path, body, content type, status, words, logged version
        ("/invocations", b'{"dataframe_split": ', "application/json", 400, "malformed JSON", "1.0.0"),
        ("/invocations", b"{}", "application/xml", 415, "content type", "1.0.0"),
        ("/invocations", unknown, "application/json", 400, "unknown column(s): bogus", "1.0.0"),
        (v2 + "/infer", json.dumps({"inputs": _v2_inputs()[:-1]}).encode(), "application/json",
         400, "checks", "1.0.0"),
        (v2 + "/versions/9.9.9/infer", json.dumps({"inputs": _v2_inputs()}).encode(),
         "application/json", 404, "unknown version", ""),
    ]
    sent: dict[str, tuple[int, str, str]] = {}
    for path, body, ctype, status, words, version in cases:
        code, out, h = post(world, path, body, ctype)
        assert code == status, out
        sent[h["x-request-id"]] = (status, words, version)
    # a V2 request's own id names it in the log, also when it fails
    mine = {"id": "client-chosen-7", "inputs": _v2_inputs()}
    mine["inputs"][1]["datatype"] = "FP64"  # sex holds strings
    code, out, h = post(world, v2 + "/infer", json.dumps(mine).encode())
    assert code == 400 and h["x-request-id"] == "client-chosen-7"
    sent["client-chosen-7"] = (400, "BYTES", "1.0.0")
    # an id that cannot go into a header (schemathesis sends control characters) is replaced
    code, out, h = post(world, v2 + "/infer", json.dumps({"id": "bad\u001fid", "inputs": []}).encode())
    assert code == 400 and h["x-request-id"] != "bad\x1fid" and h["x-request-id"].isprintable()
    sent[h["x-request-id"]] = (400, "non-empty 'inputs'", "1.0.0")
    # another model's route is not this model's traffic, and no token means no route at all
    code, _, h = post(world, "/v2/models/nosuch/infer", json.dumps({"inputs": _v2_inputs()}).encode())
    assert code == 404 and "x-request-id" not in h
    assert request(world["url"] + "/invocations", split_body(1))[0] == 401
    df = _logged(world["traffic"], t0, set(sent))
    assert set(df["request_id"]) == set(sent) and len(df) == len(sent)  # one row each: no inputs read
    for _, r in df.iterrows():
        status, words, version = sent[r["request_id"]]
        assert int(r["status"]) == status and words in r["error_message"], r.to_dict()
        assert r["error_class"] == "RequestError" and r["version"] == version and r["model"] == MODEL
        assert r["latency_ms"] > 0 and r[["pred", "score", "in.colour", "in.age"]].isna().all()


def test_a_model_that_raises_gets_a_logged_500_that_tells_the_client_no_secrets(
        world: dict[str, Any], tmp_path: Path) -> None:
    """A real server on 127.0.0.1 (uvicorn in this process) whose model raises for one input."""
    import socket
    import threading

    import uvicorn

    from gitml.serve import control
    from gitml.serve.app import App

    state = tmp_path / "state.json"
    control.write_state(state, {"model": MODEL, "active": "1.0.0",
                                "versions": {"1.0.0": str(world["b1"].path)}})
    app = App(state, traffic_dir=tmp_path / "traffic", flush_seconds=0.2)
    app.start()
    version = app.watcher.served.get(None)
    assert version is not None
    real = version.predictor.predict

    def flaky(cols: dict[str, Any], n: int) -> Any:
        if (np.asarray(cols["age"], dtype=float) == 99).any():
            raise RuntimeError("secret path /srv/model is on fire")
        return real(cols, n)

    version.predictor.predict = flaky  # type: ignore[method-assign]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        old = rows(2, 30)
        old.loc[1, "age"] = 99
        body = json.dumps({"dataframe_split": {"columns": list(old.columns),
                                               "data": old.astype(object).values.tolist()}}).encode()
        code, out, h = request(url + "/invocations", body)
        answer = json.loads(out)
        assert code == 500 and answer["error_code"] == "INTERNAL_ERROR", answer
        assert "on fire" not in answer["message"] and h["x-request-id"] in answer["message"]
        rid_500 = h["x-request-id"]
        inputs = _v2_inputs(1, 31)
        inputs[FEATURES.index("age")]["data"] = [99]
        code, out, h = request(url + f"/v2/models/{MODEL}/infer", json.dumps({"inputs": inputs}).encode())
        assert code == 500 and "on fire" not in out.decode()
        rid_v2 = h["x-request-id"]
        code, _, h = request(url + "/invocations", split_body(1, 32))
        assert code == 200
        rid_ok = h["x-request-id"]
        df = _logged(tmp_path / "traffic", 0, {rid_500, rid_v2, rid_ok})
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        app.close()
    failed = df[df["request_id"] == rid_500].sort_values("row")
    assert failed["status"].tolist() == [500, 500] and failed["in.age"].tolist()[1] == 99
    assert (failed["error_class"] == "RuntimeError").all() and failed["pred"].isna().all()
    assert "on fire" in failed["error_message"].iloc[0]  # the operator's log has the reason
    assert df[df["request_id"] == rid_v2]["status"].tolist() == [500]
    ok = df[df["request_id"] == rid_ok]
    assert ok["status"].tolist() == [200] and ok["error_class"].isna().all() and ok["pred"].notna().all()


def test_wrk_smoke(world: dict[str, Any], tmp_path: Path) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk (Debian package) is not installed; scripts/test.sh installs it")
    script = tmp_path / "post.lua"
    body = split_body(1).decode()
    script.write_text(f"wrk.method = 'POST'\nwrk.body = {json.dumps(body)}\n"
                      "wrk.headers['Content-Type'] = 'application/json'\n"
                      f"wrk.headers['Authorization'] = 'Bearer {TOKEN}'\n")
    proc = subprocess.run([wrk, "-t1", "-c4", "-d1s", "-s", str(script), world["url"] + "/invocations"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "Requests/sec" in proc.stdout
    assert "Non-2xx" not in proc.stdout and "Socket errors" not in proc.stdout, proc.stdout
    n = int(proc.stdout.split(" requests in ")[0].split()[-1])
    assert n > 0


def test_pickle_loads_only_with_the_explicit_opt_in(world: dict[str, Any], tmp_path: Path) -> None:
    import pickle

    from gitml.errors import ConfigError
    from gitml.models.bundle import Bundle
    from gitml.store.ids import hash_bytes

    folder = tmp_path / "pkl"
    shutil.copytree(world["b1"].path, folder)
    data = pickle.dumps(good_model("logreg"))
    (folder / "model.pkl").write_bytes(data)
    meta = json.loads((folder / "gitml-bundle.json").read_text())
    meta.update({"model_file": "model.pkl", "model_id": hash_bytes(data), "flavor": "pickle"})
    (folder / "gitml-bundle.json").write_text(json.dumps(meta))
    b = Bundle.open(folder)
    with pytest.raises(ConfigError, match="pickle"):
        b.load_model()
    assert b.load_model(allow_pickle=True).predict(rows(3)).tolist() == expected(3)


def test_git_ml_serve_cli(world: dict[str, Any]) -> None:
    repo = world["repo"]
    bad = subprocess.run(["git", "ml", "serve", "nosuch"], cwd=repo, capture_output=True, text=True, env=env())
    assert bad.returncode == 1 and "unknown model" in bad.stderr and "Traceback" not in bad.stderr
    unassigned = subprocess.run(["git", "ml", "serve", f"{MODEL}#prod"], cwd=repo, capture_output=True,
                                text=True, env=env())
    assert unassigned.returncode == 1 and "stage" in unassigned.stderr
    proc = subprocess.Popen(["git", "ml", "serve", f"{MODEL}@v1.1.0", "--port", "0", "--workers", "1",
                             "--token", TOKEN], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env(), start_new_session=True)
    try:
        url, lines = read_serve_url(proc)
        assert "serving arrests 1.1.0" in lines[0]
        from gitml.serve import control

        control.wait_ready(url, "1.1.0", timeout=120, token=TOKEN)
        code, body, _ = request(url + "/invocations", split_body(3), headers=AUTH)
        from tests.support.checks import worse_model

        assert code == 200 and json.loads(body)["predictions"] == [str(x) for x in worse_model().predict(rows(3))]
        assert (repo / ".git" / "ml" / "traffic" / MODEL).is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # what Ctrl-C / a service manager does
        proc.wait(timeout=30)
    pid_file = repo / ".git" / "ml" / "serve" / MODEL / "state.pid"
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_file.exists()  # the supervisor stopped its workers and cleaned up
    with pytest.raises(OSError):
        request(url + "/ping", timeout=2)
