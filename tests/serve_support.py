"""Shared builders for the serving tests: a repo with the arrests model committed, its
bundles, and a real server started and stopped around a test."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.checks_support import (
    FEATURES,
    arrests_split,
    good_model,
    save_model,
    worse_model,
    write_config,
    write_eval,
)

MODEL = "arrests"


def git_(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def gitml_(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "ml", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path) -> Path:
    """A repo with the arrests logistic-regression model at v1.0.0 and a worse one at v1.1.0."""
    path.mkdir(parents=True)
    git_(path, "init", "-q")
    (path / "README.md").write_text("serve test\n")
    git_(path, "add", "README.md")
    git_(path, "commit", "-q", "-m", "initial")
    gitml_(path, "init")
    write_config(path)
    save_model(good_model("logreg"), path / "models" / "model.skops")
    write_eval(path / "data" / "eval.parquet")
    gitml_(path, "add", "models/model.skops", "data/eval.parquet")
    git_(path, "add", "-A")
    git_(path, "commit", "-q", "--no-verify", "-m", "good model")
    git_(path, "tag", "-a", f"{MODEL}@v1.0.0", "-m", "register 1.0.0")
    save_model(worse_model(), path / "models" / "model.skops")
    gitml_(path, "add", "models/model.skops")
    git_(path, "add", "-A")
    git_(path, "commit", "-q", "--no-verify", "-m", "another model")
    git_(path, "tag", "-a", f"{MODEL}@v1.1.0", "-m", "register 1.1.0")
    return path


def rows(n: int, start: int = 0) -> Any:
    _, test = arrests_split()
    return test[FEATURES].iloc[start:start + n].reset_index(drop=True)


def split_body(n: int = 1, start: int = 0) -> bytes:
    df = rows(n, start)
    return json.dumps({"dataframe_split": {"columns": list(df.columns),
                                           "data": df.astype(object).values.tolist()}}).encode()


def request(url: str, body: bytes | None = None, *, method: str | None = None,
            content_type: str = "application/json", headers: dict[str, str] | None = None,
            timeout: float = 10.0) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    if body is not None:
        req.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers.items())
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers.items())
