"""`git ml package`: the folder serves with the Dockerfile's own command (outside a
container: no image registry here), in this interpreter and in a fresh venv built from
the package's requirements; an ONNX package serves through onnxruntime."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitml.deploy.package import dockerfile_cmd, server_command
from tests.conftest import git, gitml
from tests.support.checks import FEATURES, arrests_split, good_model
from tests.support.deploy import isolated_git, make_model_repo


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with isolated_git(tmp_path_factory.mktemp("home-package")):
        yield make_model_repo(tmp_path_factory.mktemp("package") / "repo")


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(template, dest, symlinks=True)
    return dest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _run_cmd(pkg: Path, python: str, timeout: float = 90) -> tuple[subprocess.Popen[bytes], str]:
    """The Dockerfile's CMD in the package folder, on 127.0.0.1 and a free port."""
    cmd = dockerfile_cmd((pkg / "Dockerfile").read_text())
    assert cmd == server_command(2)
    port = _free_port()
    cmd[0] = python
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    cmd[cmd.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.Popen(cmd, cwd=pkg, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        time.sleep(0.2)
    _stop(proc)
    raise AssertionError("the packaged server never became ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(5)


def _check_predictions(url: str, n: int = 20) -> None:
    X = arrests_split()[1][FEATURES].head(n)
    got = _post(f"{url}/invocations", {"dataframe_split": {
        "columns": FEATURES, "data": X.astype(object).values.tolist()}})["predictions"]
    assert got == [str(p) for p in good_model().predict(X)]


def test_package_folder_is_complete_and_honest(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    res = json.loads(gitml(repo, "package", "arrests@v1.0.0", "-o", str(out), "--json").stdout)
    for f in ("Dockerfile", "MLmodel", "README.md", "requirements.txt", "deploy-state.json",
              "python_env.yaml", "code/gitml_pyfunc.py", "bundle/gitml-bundle.json",
              "bundle/model.skops", "wheels/gitml-0.1.0-py3-none-any.whl"):
        assert f in res["files"], f
    docker = (out / "Dockerfile").read_text()
    lines = docker.splitlines()
    assert lines[1].startswith("FROM python:3.") and lines[1].endswith("-slim")
    user = next(ln for ln in lines if ln.startswith("USER "))
    assert user.split()[1] not in ("0", "root")
    assert any(ln.startswith("HEALTHCHECK ") and "/v2/health/ready" in ln for ln in lines)
    # every pin is exact, and the model's libraries are there
    reqs = [ln for ln in (out / "requirements.txt").read_text().splitlines() if not ln.startswith("#")]
    assert all("==" in ln for ln in reqs)
    assert {ln.split("==")[0] for ln in reqs} >= {"scikit-learn", "skops", "numpy", "uvicorn"}
    mlm = yaml.safe_load((out / "MLmodel").read_text())
    pyfunc = mlm["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "gitml_pyfunc" and pyfunc["data"] == "bundle"
    assert mlm["metadata"]["gitml_model_id"] == res["model_id"]
    names = [i["name"] for i in json.loads(mlm["signature"]["inputs"])]
    assert sorted(names) == sorted(FEATURES)
    readme = (out / "README.md").read_text()
    assert res["model_id"] in readme and res["commit"] in readme
    # refusing to overwrite a folder is a one-line usage error
    again = gitml(repo, "package", "arrests@v1.0.0", "-o", str(out), check=False)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_the_dockerfile_command_serves_the_package(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    gitml(repo, "package", "arrests#prod", "-o", str(out))
    proc, url = _run_cmd(out, sys.executable)
    try:
        _check_predictions(url)
        with urllib.request.urlopen(f"{url}/v2/health/live", timeout=5) as r:
            assert r.status == 200
    finally:
        _stop(proc)


def test_the_mlflow_loader_loads_the_bundle(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    gitml(repo, "package", "arrests@v1.0.0", "-o", str(out))
    sys.path.insert(0, str(out / "code"))
    try:
        import importlib

        mod = importlib.import_module("gitml_pyfunc")
        importlib.reload(mod)
        m = mod._load_pyfunc(str(out / "bundle"))
        X = arrests_split()[1][FEATURES].head(10)
        assert list(m.predict(X)) == list(good_model().predict(X))
    finally:
        sys.path.remove(str(out / "code"))


def test_onnx_package_serves_through_onnxruntime(repo: Path, tmp_path: Path) -> None:
    no_compiled = gitml(repo, "package", "arrests@v1.0.0", "-o", str(tmp_path / "x"), "--onnx",
                        check=False)
    assert no_compiled.returncode == 1 and "git ml compile" in no_compiled.stderr
    gitml(repo, "compile", "arrests@v1.0.0", "--onnx")
    git(repo, "commit", "-q", "--no-verify", "-m", "compiled")
    out = tmp_path / "dist"
    res = json.loads(gitml(repo, "package", "arrests@v1.0.0", "-o", str(out), "--onnx",
                           "--json").stdout)
    assert res["flavor"] == "onnx" and "bundle/model.onnx" in res["files"]
    assert "bundle/model.skops" not in res["files"]
    assert any(r.startswith("onnxruntime==") for r in res["requirements"])
    proc, url = _run_cmd(out, sys.executable)
    try:
        _check_predictions(url, 50)
        X = arrests_split()[1][FEATURES].head(3)
        v2 = {"inputs": [{"name": c, "shape": [3], "datatype": "BYTES" if X[c].dtype == object
                          else "INT64", "data": X[c].tolist()} for c in FEATURES]}
        body = _post(f"{url}/v2/models/arrests/infer", v2)
        assert body["model_name"] == "arrests"
        assert body["outputs"][0]["data"] == [str(p) for p in good_model().predict(X)]
    finally:
        _stop(proc)


@pytest.mark.slow
def test_fresh_venv_from_the_package_requirements_serves(repo: Path, tmp_path: Path) -> None:
    """pip installs requirements.txt (warm cache) into a new venv, then the Dockerfile's CMD
    runs with that venv's Python: the pins are enough to serve."""
    out = tmp_path / "dist"
    gitml(repo, "package", "arrests@v1.0.0", "-o", str(out))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    for args in (["-r", "requirements.txt"], ["--no-deps", *map(str, (out / "wheels").glob("*.whl"))]):
        p = subprocess.run([py, "-m", "pip", "install", "-q", *args], cwd=out, capture_output=True,
                           text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-2000:]
    proc, url = _run_cmd(out, py)
    try:
        _check_predictions(url)
    finally:
        _stop(proc)
