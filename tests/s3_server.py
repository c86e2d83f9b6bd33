"""Fixtures: a real S3 protocol server (moto's standalone server) on 127.0.0.1.

Registered from tests/conftest.py through ``pytest_plugins``. The server is a
subprocess started once per session on a free loopback port and stopped at the end;
each test that wants a bucket gets a fresh one. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_bucket_counter = itertools.count()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MotoServer:
    """A running ``python -m moto.server`` subprocess."""

    endpoint_url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def client(self, **kwargs: Any) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=kwargs.pop("aws_access_key_id", "testing"),
            aws_secret_access_key=kwargs.pop("aws_secret_access_key", "testing"),
            **kwargs,
        )


def start_moto(log_path: Path, extra_env: dict[str, str] | None = None,
               timeout: float = 30.0) -> MotoServer:
    """Start moto's server on a free loopback port and wait until it answers."""
    port = free_port()
    env = {**os.environ, **FAKE_ENV, **(extra_env or {})}
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}: "
                               f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                break
        except urllib.error.HTTPError:
            break  # it answers, even if with an error status
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not answer on {url} within {timeout}s") from None
            time.sleep(0.05)
    return MotoServer(url, port, proc, log_path)


def stop_moto(server: MotoServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's standalone S3 server on 127.0.0.1, for the whole session."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = start_moto(log)
    try:
        yield server
    finally:
        stop_moto(server)


@pytest.fixture(scope="session")
def s3_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A second moto server that checks credentials (every key it has not issued is refused)."""
    log = tmp_path_factory.mktemp("moto-auth") / "moto.log"
    server = start_moto(log, {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        yield server
    finally:
        stop_moto(server)


@dataclass
class S3Bucket:
    """A fresh, empty bucket on the test server and how to reach it."""

    server: MotoServer
    name: str
    prefix: str = "store"
    env: dict[str, str] = field(default_factory=lambda: dict(FAKE_ENV))

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}" if self.prefix else f"s3://{self.name}"

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    @property
    def options(self) -> dict[str, str]:
        """Remote options for :class:`gitml.store.s3_remote.S3Remote` (few retries: fast tests)."""
        return {"endpoint_url": self.server.endpoint_url, "max_attempts": "3"}

    def client(self) -> Any:
        return self.server.client()

    def s3key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def keys(self) -> list[str]:
        """Every key in the bucket under the prefix, without the prefix."""
        client = self.client()
        out: list[str] = []
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=(self.prefix + "/") if self.prefix else ""
        ):
            out.extend(o["Key"][strip:] for o in page.get("Contents", ()))
        return out


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake AWS credentials in the environment (also inherited by `git ml` subprocesses)."""
    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return dict(FAKE_ENV)


@pytest.fixture
def s3_bucket(s3_server: MotoServer, s3_env: dict[str, str]) -> S3Bucket:
    """A fresh bucket on the session's moto server; ``.url`` and ``.options`` for a remote."""
    name = f"gitml-test-{os.getpid()}-{next(_bucket_counter)}"
    s3_server.client().create_bucket(Bucket=name)
    return S3Bucket(s3_server, name)
