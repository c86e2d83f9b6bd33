"""`git ml serve --onnx` and `git ml deploy --onnx`: the ONNX model `git ml compile` made
from a version, served by onnxruntime, answering over HTTP as the scikit-learn model does
within the parity compile checks (same class on >= 99.9% of rows, probabilities within 1e-4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import git, gitml
from tests.support.checks import FEATURES, arrests_split, good_model
from tests.support.deploy import make_model_repo
from tests.support.serve import read_serve_url, request

TOLERANCE = 1e-4      # gitml.deploy.compile.TOLERANCE
MIN_AGREEMENT = 0.999  # gitml.deploy.compile.MIN_AGREEMENT


def _v2_body(X: Any) -> bytes:
    types = {"int64": "INT64", "float64": "FP64"}
    return json.dumps({"inputs": [{"name": c, "shape": [len(X)], "datatype": types.get(str(X[c].dtype), "BYTES"),
                                   "data": X[c].tolist()} for c in X.columns]}).encode()


def assert_answers_like_sklearn(url: str, model: Any, route: str, headers: dict[str, str] | None = None) -> None:
    """Every evaluation row over HTTP: the MLflow route's classes and the V2 route's
    probabilities against the scikit-learn model's, within compile's parity."""
    X = arrests_split()[1][FEATURES]
    body = json.dumps({"dataframe_split": {"columns": FEATURES,
                                           "data": X.astype(object).values.tolist()}}).encode()
    code, data, _ = request(url + "/invocations", body, headers=headers, timeout=60)
    assert code == 200, data
    got = json.loads(data)["predictions"]
    want = [str(p) for p in model.predict(X)]
    agreement = np.mean([a == b for a, b in zip(got, want, strict=True)])
    assert agreement >= MIN_AGREEMENT, agreement
    code, data, _ = request(url + route, _v2_body(X), headers=headers, timeout=60)
    assert code == 200, data
    outs = {o["name"]: o for o in json.loads(data)["outputs"]}
    proba = np.asarray(outs["predict_proba"]["data"], dtype=float).reshape(len(X), -1)
    diff = float(np.max(np.abs(proba - model.predict_proba(X))))
    assert diff <= TOLERANCE, diff


def test_serve_onnx_answers_like_the_sklearn_model(tmp_path: Path) -> None:
    repo = make_model_repo(tmp_path / "repo")
    missing = gitml(repo, "serve", "arrests@v1.0.0", "--onnx", "--port", "0", check=False)
    assert missing.returncode == 1 and "git ml compile" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    gitml(repo, "compile", "arrests@v1.0.0", "--onnx")
    git(repo, "commit", "-q", "--no-verify", "-m", "compiled")
    proc = subprocess.Popen(["git", "ml", "serve", "arrests@v1.0.0", "--onnx", "--port", "0",
                             "--workers", "1", "--no-log"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url, lines = read_serve_url(proc)
        assert "serving arrests 1.0.0" in lines[0] and "ONNX model id" in lines[0], lines
        from gitml.serve import control

        control.wait_ready(url, "1.0.0", timeout=120)
        assert_answers_like_sklearn(url, good_model(), "/v2/models/arrests/infer")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    [folder] = (repo / ".git" / "ml" / "serve" / "arrests" / "bundles").glob("1.0.0-*-onnx")
    meta = json.loads((folder / "gitml-bundle.json").read_text())
    compiled = json.loads((repo / ".gitml" / "runs" / "compile-arrests.json").read_text())
    assert meta["flavor"] == "onnx" and meta["model_file"] == "model.onnx"
    assert meta["model_id"] == compiled["outputs"][0]["oid"]


def test_deploy_onnx_serves_the_compiled_model(tmp_path_factory: pytest.TempPathFactory,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitml.serve import control
    from tests.support.registry import copy_repo, logreg, template_repo

    monkeypatch.delenv("GIT_COMMITTER_DATE", raising=False)  # registry order is tagger time
    monkeypatch.delenv("GIT_AUTHOR_DATE", raising=False)
    repo = copy_repo(template_repo(tmp_path_factory), tmp_path / "repo")  # gated commits
    (repo / ".git" / "ml" / "config.local.toml").write_text(
        "[deploy]\ngrace_seconds = 0\n[deploy.targets.local]\nport = 0\nworkers = 1\n")
    gitml(repo, "register", "credit", "HEAD", "--version", "1.0.0")
    gitml(repo, "compile", "credit@v1.0.0", "--onnx")
    git(repo, "commit", "-q", "--no-verify", "-m", "compiled")
    res = json.loads(gitml(repo, "deploy", "credit@v1.0.0", "--onnx", "--json").stdout)
    try:
        assert res["action"] == "deploy" and res["version"] == "1.0.0"
        state = json.loads((repo / ".git/ml/deploy/local/credit/state.json").read_text())
        folder = Path(state["versions"]["1.0.0"])
        assert folder.name.endswith("-onnx")
        assert json.loads((folder / "gitml-bundle.json").read_text())["flavor"] == "onnx"
        assert_answers_like_sklearn(res["url"], logreg(0.2), "/v2/models/credit/versions/1.0.0/infer")
    finally:
        gitml(repo, "deploy", "credit", "--stop")
        info = repo / ".git/ml/deploy/local/credit/state.server.json"
        if info.exists():
            control.stop(int(json.loads(info.read_text())["pid"]))
