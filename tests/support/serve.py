"""Shared builders for the serving tests: a repo with the arrests model committed, its
bundles, and a real server started and stopped around a test."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.checks import (
    FEATURES,
    arrests_split,
    good_model,
    save_model,
    worse_model,
    write_config,
    write_eval,
)

MODEL = "arrests"


TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def env() -> dict[str, str]:
    """Git identity and PATH for module-scoped fixtures (the autouse fixture is per test)."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "GIT_AUTHOR_NAME": "Test User", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test User", "GIT_COMMITTER_EMAIL": "test@example.com",
            "GIT_CONFIG_NOSYSTEM": "1", "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def git_(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env()).stdout


def gitml_(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "ml", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env()).stdout


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


class Load:
    """A bounded load loop: ``threads`` keep-alive clients posting ``body`` until stopped;
    every answer is counted (status -> count; connection failures under "error")."""

    def __init__(self, url: str, path: str, body: bytes, threads: int = 8,
                 headers: dict[str, str] | None = None) -> None:
        from urllib.parse import urlsplit

        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.path = path
        self.body = body
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.versions: dict[str, int] = {}
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _count(self, key: str, version: str | None = None) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            if version is not None:
                self.versions[version] = self.versions.get(version, 0) + 1

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self.stop_event.is_set():
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                conn.request("POST", self.path, body=self.body, headers=self.headers)
                r = conn.getresponse()
                data = r.read()
                version = None
                if r.status == 200 and data.startswith(b'{"model_name"'):
                    version = json.loads(data)["model_version"]
                self._count(str(r.status), version)
            except (OSError, http.client.HTTPException):
                self._count("error")
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=15)

    def total(self) -> int:
        return sum(self.counts.values())

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while self.total() < n and time.monotonic() < end:
            time.sleep(0.02)


def read_serve_url(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[str, list[str]]:
    """The URL a starting ``git ml serve`` prints ("listening on http://127.0.0.1:N"), and
    the lines it printed up to there; AssertionError when none comes in ``timeout``."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return m.group(1), lines
    raise AssertionError(f"git ml serve printed no URL: {lines}")
