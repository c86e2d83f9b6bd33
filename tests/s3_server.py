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


def launch_moto(log_path: Path, extra_env: dict[str, str] | None = None) -> MotoServer:
    """Start moto's server on a free loopback port (returns at once; see :func:`wait_moto`)."""
    port = free_port()
    env = {**os.environ, **FAKE_ENV, **(extra_env or {})}
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    log.close()  # the child holds its own descriptor
    return MotoServer(f"http://127.0.0.1:{port}", port, proc, log_path)


def wait_moto(server: MotoServer, timeout: float = 60.0) -> MotoServer:
    """Wait until the server answers HTTP."""
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {server.proc.returncode}: "
                               f"{server.log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(server.endpoint_url + "/moto-api/", timeout=1):
                return server
        except urllib.error.HTTPError:
            return server  # it answers, even if with an error status
        except OSError:
            if time.monotonic() > deadline:
                stop_moto(server)
                raise RuntimeError(f"moto server did not answer on {server.endpoint_url} "
                                   f"within {timeout}s") from None
            time.sleep(0.05)


def start_moto(log_path: Path, extra_env: dict[str, str] | None = None,
               timeout: float = 60.0) -> MotoServer:
    """Start moto's server on a free loopback port and wait until it answers."""
    return wait_moto(launch_moto(log_path, extra_env), timeout)


def stop_moto(server: MotoServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def _moto_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MotoServer]]:
    """Both test servers, launched together so their start-up overlaps."""
    base = tmp_path_factory.mktemp("moto")
    servers = {
        "plain": launch_moto(base / "moto.log"),
        # checks credentials: every key it has not issued itself is refused
        "auth": launch_moto(base / "moto-auth.log", {"INITIAL_NO_AUTH_ACTION_COUNT": "0"}),
    }
    try:
        for server in servers.values():
            wait_moto(server)
        yield servers
    finally:
        for server in servers.values():
            stop_moto(server)


@pytest.fixture(scope="session")
def s3_server(_moto_servers: dict[str, MotoServer]) -> MotoServer:
    """moto's standalone S3 server on 127.0.0.1, for the whole session."""
    return _moto_servers["plain"]


@pytest.fixture(scope="session")
def s3_auth_server(_moto_servers: dict[str, MotoServer]) -> MotoServer:
    """A second moto server that checks credentials (fake ones are refused)."""
    return _moto_servers["auth"]


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

    def read(self, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=self.name, Key=self.s3key(key))["Body"].read()
        return body

    def write(self, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=self.name, Key=self.s3key(key), Body=data)

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
