"""End to end with real Git, the real `git ml` CLI and a real S3 protocol server (moto)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.s3_server import MotoServer, S3Bucket, free_port
from tests.support.remote import pack_location, remote_objects
from tests.support.store import store_objects

SECRET = "s3cr3t-DO-NOT-PRINT-0123456789"


def make_data(root: Path, n_small: int, big_mib: int) -> dict[str, bytes]:
    """A directory of small files and one large (chunked) file; returns path -> bytes."""
    out: dict[str, bytes] = {}
    (root / "data").mkdir()
    for i in range(n_small):
        data = f"row {i}\n".encode() * (50 + i * 7) + os.urandom(64)
        (root / "data" / f"f{i:03d}.csv").write_bytes(data)
        out[f"data/f{i:03d}.csv"] = data
    big = os.urandom(big_mib * 1024 * 1024)
    (root / "model.bin").write_bytes(big)
    out["model.bin"] = big
    return out


def setup_remote(repo: Path, bucket: S3Bucket, *, name: str = "origin") -> None:
    gitml(repo, "remote", "add", name, bucket.url, "--default")
    gitml(repo, "remote", "modify", name, "endpoint_url", bucket.endpoint_url)


def add_and_commit(repo: Path, *paths: str) -> None:
    gitml(repo, "add", *paths)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")


def clone(repo: Path, dest: Path) -> Path:
    git(repo.parent, "clone", "-q", str(repo), str(dest))
    return dest


def store_files(clone_dir: Path) -> dict[str, bytes]:
    return store_objects(clone_dir)


def assert_one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("gitml: error: "), err
    return lines[0]


def test_push_clone_pull_status_gc(repo: Path, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    """The whole user story against one bucket: status --remote, push -j 8, a fresh clone
    pulls exact bytes, a no-op push, then remote gc (dry run, no --force, --force)."""
    files = make_data(repo, n_small=30, big_mib=9)
    add_and_commit(repo, "data", "model.bin")
    setup_remote(repo, s3_bucket)
    git(repo, "commit", "-q", "-am", "remote")
    # the committed config names the bucket and endpoint but holds no secret
    committed = (repo / ".gitml" / "config.toml").read_text()
    assert s3_bucket.url in committed and s3_bucket.endpoint_url in committed
    assert "testing" not in committed

    res = gitml(repo, "status", "--remote").stdout
    assert "not on the remote (2): data, model.bin" in res, res
    out = gitml(repo, "push", "-j", "8").stdout
    listed = set(s3_bucket.keys())
    on_server = remote_objects(listed, s3_bucket.read)
    # small files and chunks travel in packs: a handful of keys, not one per object
    assert sum(k.startswith("chunked/") for k in on_server) == 1
    assert sum(k.startswith("objects/") for k in on_server) > 31  # 30 files + tree + chunks
    assert len(listed) <= 6, sorted(listed)
    assert f"pushed {len(on_server)} objects" in out, out
    assert "everything is on the remote" in gitml(repo, "status", "--remote").stdout

    other = clone(repo, tmp_path / "clone")
    assert not (other / "model.bin").exists()
    gitml(other, "pull", "-j", "8")
    for rel, data in files.items():
        assert (other / rel).read_bytes() == data, rel
    # the clone's store holds exactly what the server holds, byte for byte
    assert store_files(other) == on_server
    # a push from the clone moves nothing (it asks the remote in a batch, not per object)
    again = gitml(other, "push", "-j", "8", "--json").stdout
    assert '"transferred": 0' in again and f'"already_there": {len(on_server)}' in again

    # remote gc: unreachable objects are reported with their size, deleted only with --force
    junk = {f"objects/ee/{'e' * 29}{i}": b"j" * (1000 * (i + 1)) for i in range(3)}
    for k, v in junk.items():
        s3_bucket.write(k, v)
    s3_bucket.write("README.txt", b"not ours")
    # just-pushed objects are spared: another clone may have pushed them for unfetched commits
    recent = gitml(repo, "gc", "--remote", "--force").stdout
    assert "deleted 0 unreachable objects" in recent and "kept 3 unreachable objects" in recent
    dry = gitml(repo, "gc", "--remote", "--dry-run", "--grace-days", "0").stdout
    assert "would delete 3 unreachable objects (5.9 KiB)" in dry, dry
    assert set(s3_bucket.keys()) == listed | set(junk) | {"README.txt"}
    no_force = gitml(repo, "gc", "--remote", "--grace-days", "0").stdout
    assert "pass --force" in no_force
    assert set(s3_bucket.keys()) == listed | set(junk) | {"README.txt"}
    gitml(repo, "gc", "--remote", "--force", "--grace-days", "0")
    assert set(s3_bucket.keys()) == listed | {"README.txt"}


@pytest.mark.parametrize("packed", [True, False], ids=["in-pack", "loose"])
def test_corrupt_object_on_server_is_refused(repo: Path, s3_bucket: S3Bucket, tmp_path: Path,
                                             packed: bool) -> None:
    files = make_data(repo, n_small=3, big_mib=0)
    add_and_commit(repo, "data", "model.bin")
    setup_remote(repo, s3_bucket)
    if not packed:
        gitml(repo, "remote", "modify", "origin", "pack_mib", "0")
    git(repo, "commit", "-q", "-am", "remote")
    gitml(repo, "push")
    store = repo / ".git" / "ml" / "store"
    victim = next(k for k in store_files(repo)
                  if k.startswith("objects/") and (store / k).read_bytes() == files["data/f001.csv"])
    oid = victim.split("/", 1)[1].replace("/", "")
    listed = s3_bucket.keys()
    if packed:
        assert victim not in listed
        where, entry = pack_location(listed, s3_bucket.read, victim)
        flip_at = entry.offset + entry.size // 2
    else:
        where, flip_at = victim, len(files["data/f001.csv"]) // 2
    good = s3_bucket.read(where)
    bad = bytearray(good)
    bad[flip_at] ^= 0xFF  # same size, one byte flipped
    s3_bucket.write(where, bytes(bad))

    other = clone(repo, tmp_path / "clone")
    proc = gitml(other, "pull", check=False)
    line = assert_one_line_error(proc)
    assert oid[:2] in line and oid[2:] in line and "origin" in line and "damaged" in line, line
    # nothing bad was kept: the damaged key is not in the store, no temp files linger
    local = store_files(other)
    assert victim not in local
    assert all(files["data/f001.csv"][:40] not in v for v in local.values())
    tmp_dir = other / ".git" / "ml" / "store" / "tmp"
    assert not tmp_dir.exists() or not any(tmp_dir.iterdir())
    assert not (other / "data" / "f001.csv").exists()

    # once the server copy is repaired, the same pull succeeds and gives exact bytes
    s3_bucket.write(where, good)
    gitml(other, "pull")
    for rel, data in files.items():
        assert (other / rel).read_bytes() == data


@pytest.mark.parametrize("pack_mib", ["0", "0.002"], ids=["loose", "packs"])
def test_push_killed_midway_then_resumed(repo: Path, s3_bucket: S3Bucket, s3_server: MotoServer,
                                         pack_mib: str) -> None:
    """SIGKILL a running push after some keys landed; the next push does only the rest
    (with packs of ~2 KiB: ~10 files per pack)."""
    (repo / "many").mkdir()
    for i in range(150):
        (repo / "many" / f"{i:04d}.txt").write_bytes(f"file {i}\n".encode() + os.urandom(200))
    add_and_commit(repo, "many")
    setup_remote(repo, s3_bucket)
    gitml(repo, "remote", "modify", "origin", "pack_mib", pack_mib)
    git(repo, "commit", "-q", "-am", "remote")
    local = store_files(repo)

    proc = subprocess.Popen(["git-ml", "push", "-j", "2", "--quiet"], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    enough = 30 if pack_mib == "0" else 6
    deadline = time.monotonic() + 30
    try:
        while True:
            n = len(s3_bucket.keys())
            if n >= enough or proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "push finished before it could be killed"
    time.sleep(0.3)  # let the server finish requests that were already whole
    before = set(s3_bucket.keys())
    had = remote_objects(before, s3_bucket.read)
    assert enough <= len(before) and 0 < len(had) < len(local)

    log = s3_server.log_path
    offset = log.stat().st_size
    out = gitml(repo, "push", "-j", "8").stdout
    after = set(s3_bucket.keys())
    assert remote_objects(after, s3_bucket.read) == local
    new_log = log.read_bytes()[offset:].decode(errors="replace")
    prefix = f"/{s3_bucket.name}/{s3_bucket.prefix}/"
    put_keys = re.findall(rf'"PUT {re.escape(prefix)}(\S+) HTTP', new_log)
    assert put_keys, new_log[-2000:]
    # nothing that was whole on the remote went up again, not even a pack whose index
    # never arrived (only its index is sent)
    assert not set(put_keys) & before, "finished objects were uploaded again"
    assert set(put_keys) == after - before
    assert f"pushed {len(local) - len(had)} objects" in out


def test_wrong_credentials_clear_error(repo: Path, s3_auth_server: MotoServer, s3_env: dict[str, str]) -> None:
    (repo / "w.bin").write_bytes(b"weights")
    add_and_commit(repo, "w.bin")
    gitml(repo, "remote", "add", "origin", "s3://some-bucket/p", "--default")
    gitml(repo, "remote", "modify", "origin", "endpoint_url", s3_auth_server.endpoint_url)
    gitml(repo, "remote", "modify", "origin", "access_key_id", "AKIAWRONGWRONGWRONG1")
    gitml(repo, "remote", "modify", "origin", "secret_access_key", SECRET)
    # secrets go to the local, uncommitted config only, and are never printed
    assert SECRET not in (repo / ".gitml" / "config.toml").read_text()
    listing = gitml(repo, "remote", "list").stdout
    assert SECRET not in listing and "***" in listing
    proc = gitml(repo, "push", check=False)
    line = assert_one_line_error(proc)
    assert "remote 'origin': access denied by s3://some-bucket/p" in line, line
    assert "check AWS credentials / profile" in line
    assert SECRET not in proc.stdout + proc.stderr
    # the same through the environment chain (no explicit keys in the config)
    local_cfg = repo / ".git" / "ml" / "config.local.toml"
    assert SECRET in local_cfg.read_text()
    local_cfg.unlink()
    proc = gitml(repo, "status", "--remote", check=False, env={"AWS_SECRET_ACCESS_KEY": SECRET})
    assert "access denied" in assert_one_line_error(proc)
    assert SECRET not in proc.stdout + proc.stderr


def test_missing_bucket_clear_error(repo: Path, s3_server: MotoServer, s3_env: dict[str, str],
                                    tmp_path: Path) -> None:
    (repo / "w.bin").write_bytes(b"weights")
    add_and_commit(repo, "w.bin")
    gitml(repo, "remote", "add", "origin", "s3://no-such-bucket-gitml/p", "--default")
    gitml(repo, "remote", "modify", "origin", "endpoint_url", s3_server.endpoint_url)
    git(repo, "commit", "-q", "-am", "remote")
    line = assert_one_line_error(gitml(repo, "push", check=False))
    assert "bucket 'no-such-bucket-gitml' does not exist" in line, line
    assert "create it" in line or "fix the URL" in line
    other = clone(repo, tmp_path / "clone")
    line = assert_one_line_error(gitml(other, "pull", check=False))
    assert "bucket 'no-such-bucket-gitml' does not exist" in line, line


def test_unreachable_endpoint_clear_error(repo: Path, s3_env: dict[str, str]) -> None:
    (repo / "w.bin").write_bytes(b"weights")
    add_and_commit(repo, "w.bin")
    port = free_port()  # nothing listens there
    gitml(repo, "remote", "add", "origin", "s3://b/p", "--default")
    gitml(repo, "remote", "modify", "origin", "endpoint_url", f"http://127.0.0.1:{port}")
    gitml(repo, "remote", "modify", "origin", "max_attempts", "1")
    t0 = time.monotonic()
    line = assert_one_line_error(gitml(repo, "push", check=False))
    assert f"cannot reach http://127.0.0.1:{port}" in line, line
    assert time.monotonic() - t0 < 20
