"""S3Remote specifics against the moto server: request counts, multipart, retries, errors."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gitml.errors import ConfigError, ObjectMissingError, RemoteError
from gitml.store import s3_remote
from gitml.store.ids import hash_bytes
from gitml.store.s3_remote import S3Remote
from tests.s3_server import MotoServer, S3Bucket


def key_of(data: bytes) -> str:
    oid = hash_bytes(data)
    return f"objects/{oid[:2]}/{oid[2:]}"


def count_calls(remote: S3Remote) -> Counter[str]:
    """Count API operations the remote's client makes (by operation name)."""
    calls: Counter[str] = Counter()

    def on_call(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    remote.client.meta.events.register("before-call.s3", on_call)
    return calls


def fill(remote: S3Remote, tmp_path: Path, keys: list[str]) -> None:
    src = tmp_path / "payload"
    src.write_bytes(b"payload")
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: remote.put_file(k, src), keys))


def test_has_many_batches_requests(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    remote = S3Remote("origin", s3_bucket.url, s3_bucket.options)
    present = [key_of(f"p{i}".encode()) for i in range(60)]
    fill(remote, tmp_path, present)
    absent = [key_of(f"a{i}".encode()) for i in range(3000)]
    calls = count_calls(remote)
    assert remote.has_many(present + absent) == set(present)
    # one listing per fan-out group (16 per namespace), never one request per key
    assert calls["ListObjectsV2"] <= 16
    assert calls["HeadObject"] == 0
    calls.clear()
    # a handful of keys: plain HEADs
    assert remote.has_many(present[:2] + absent[:2]) == set(present[:2])
    assert calls["HeadObject"] == 4 and calls["ListObjectsV2"] == 0


def test_has_many_pages_and_seeks(s3_bucket: S3Bucket, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Within a group the listing pages through dense ranges and seeks over sparse ones."""
    monkeypatch.setattr(s3_remote, "LIST_PAGE", 10)
    keys = [f"objects/a{i % 10}/{i:030d}" for i in range(100)]  # all in group objects/a
    remote = S3Remote("origin", s3_bucket.url, s3_bucket.options)
    fill(remote, tmp_path, keys)
    calls = count_calls(remote)
    ordered = sorted(keys)
    # dense: all 100 present + 100 absent neighbours -> about 100/10 pages
    absent = [k + "x" for k in ordered]
    assert remote.has_many(ordered + absent) == set(ordered)
    assert calls["ListObjectsV2"] <= 12
    calls.clear()
    # sparse: 6 keys spread over the group -> at most one request per key, seeking between
    sparse = [*ordered[::20], ordered[-1]]
    assert remote.has_many([*sparse, "objects/a5/zzz", "objects/a9/zzz"]) == set(sparse)
    assert calls["ListObjectsV2"] + calls["HeadObject"] <= len(sparse) + 2
    calls.clear()
    # keys after the last listed one and before the first
    assert remote.has_many(["objects/a0/", "objects/a0/0", "objects/af/zz"]) == set()


def test_multipart_up_and_down(s3_bucket: S3Bucket, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_remote, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3_remote, "PART_SIZE", 5 * 1024 * 1024)
    data = os.urandom(13 * 1024 * 1024)
    src = tmp_path / "big"
    src.write_bytes(data)
    remote = S3Remote("origin", s3_bucket.url, {**s3_bucket.options, "jobs": "4"})
    calls = count_calls(remote)
    remote.put_file("objects/bb/big", src)
    assert calls["CreateMultipartUpload"] == 1 and calls["UploadPart"] == 3
    assert calls["CompleteMultipartUpload"] == 1 and calls["PutObject"] == 0
    dest = tmp_path / "down"
    calls.clear()
    remote.get_file("objects/bb/big", dest)
    assert dest.read_bytes() == data
    assert calls["GetObject"] >= 3  # ranged parts in parallel
    assert remote.key_size("objects/bb/big") == len(data)


def test_big_pack_streams_up_in_parts(s3_bucket: S3Bucket, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack larger than one PUT (a big ``pack_mib``) goes up as a multipart upload read
    straight from the object files, and ranged reads of it come back exact."""
    from gitml.store.packs import ConcatReader

    monkeypatch.setattr(s3_remote, "SINGLE_PUT_MAX", 1024 * 1024)
    monkeypatch.setattr(s3_remote, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3_remote, "PART_SIZE", 5 * 1024 * 1024)
    blobs = [os.urandom(n) for n in (3_000_000, 1, 4_500_000, 4_000_000)]  # parts span files
    parts = []
    for i, b in enumerate(blobs):
        (tmp_path / f"o{i}").write_bytes(b)
        parts.append((str(tmp_path / f"o{i}"), len(b)))
    remote = S3Remote("origin", s3_bucket.url, {**s3_bucket.options, "jobs": "4"})
    calls = count_calls(remote)
    with ConcatReader(parts) as reader:
        remote.put_stream("packs/big.pack", reader, reader.size)  # type: ignore[arg-type]
    assert calls["UploadPart"] == 3 and calls["PutObject"] == 0
    whole = b"".join(blobs)
    assert remote.get_range("packs/big.pack", 2_999_990, 20) == whole[2_999_990:3_000_010]
    assert remote.get_range("packs/big.pack") == whole


def test_transient_errors_are_retried(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    from botocore.awsrequest import AWSResponse

    remote = S3Remote("origin", s3_bucket.url, {**s3_bucket.options, "max_attempts": "3",
                                                 "retry_mode": "standard"})
    failures = {"left": 1}
    sends = Counter[str]()

    class Raw:
        def stream(self, **_: Any) -> Any:
            yield b"<Error><Code>SlowDown</Code><Message>slow down</Message></Error>"

    def flaky(request: Any, **_: Any) -> AWSResponse | None:
        sends["n"] += 1
        if failures["left"] > 0:
            failures["left"] -= 1
            return AWSResponse(request.url, 503, {}, Raw())
        return None

    remote.client.meta.events.register("before-send.s3.PutObject", flaky)
    src = tmp_path / "x"
    src.write_bytes(b"retry me")
    remote.put_file("objects/cc/retry", src)
    assert sends["n"] == 2
    dest = tmp_path / "y"
    remote.get_file("objects/cc/retry", dest)
    assert dest.read_bytes() == b"retry me"
    # a server that keeps failing: a one-line RemoteError after max_attempts
    failures["left"] = 100
    sends.clear()
    with pytest.raises(RemoteError) as info:
        remote.put_file("objects/cc/never", src)
    assert sends["n"] == 3
    assert "\n" not in str(info.value) and "origin" in str(info.value)


def test_missing_bucket_errors(s3_server: MotoServer, s3_env: dict[str, str], tmp_path: Path) -> None:
    remote = S3Remote("origin", "s3://gitml-absent-bucket/p", {"endpoint_url": s3_server.endpoint_url})
    src = tmp_path / "x"
    src.write_bytes(b"x")
    for call in (lambda: remote.has_many(["objects/aa/b"]),
                 lambda: remote.has_many([f"objects/a{i}/b" for i in range(10)]),
                 lambda: remote.put_file("objects/aa/b", src),
                 lambda: remote.get_file("objects/aa/b", tmp_path / "y"),
                 lambda: list(remote.iter_keys())):
        with pytest.raises(RemoteError) as info:
            call()
        assert not isinstance(info.value, ObjectMissingError)
        assert "bucket 'gitml-absent-bucket' does not exist" in str(info.value)
        assert info.value.hint and "create it" in info.value.hint


def test_access_denied_and_secrets_never_shown(s3_auth_server: MotoServer, s3_env: dict[str, str],
                                               tmp_path: Path) -> None:
    secret = "very-secret-value-123"
    remote = S3Remote("origin", "s3://bkt/pre", {
        "endpoint_url": s3_auth_server.endpoint_url, "access_key_id": "AKIAFAKEFAKEFAKE0000",
        "secret_access_key": secret, "session_token": "tok-secret"})
    with pytest.raises(RemoteError) as info:
        remote.has_many(["objects/aa/b"])
    msg = str(info.value)
    assert msg == ("remote 'origin': access denied by s3://bkt/pre/ "
                   "(check AWS credentials / profile)")
    assert secret not in remote.describe() and secret not in repr(vars(info.value))
    with pytest.raises(RemoteError, match="access denied"):
        remote.get_file("objects/aa/b", tmp_path / "y")


def test_bad_options(s3_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="names no bucket"):
        S3Remote("origin", "s3:///prefix")
    with pytest.raises(ConfigError, match="jobs must be a positive integer"):
        S3Remote("origin", "s3://b/p", {"jobs": "many"})
    with pytest.raises(ConfigError, match="retry_mode"):
        S3Remote("origin", "s3://b/p", {"retry_mode": "sometimes"})
    remote = S3Remote("origin", "s3://b/p", {"profile": "no-such-profile-gitml"})
    with pytest.raises(ConfigError, match="AWS profile 'no-such-profile-gitml' not found"):
        remote.has_many(["objects/aa/b"])


def test_iter_key_info_sizes_and_times(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    import time

    remote = S3Remote("origin", s3_bucket.url, s3_bucket.options)
    src = tmp_path / "x"
    src.write_bytes(b"12345")
    before = time.time() - 5
    remote.put_file("objects/aa/k1", src)
    info = list(remote.iter_key_info("objects/"))
    assert [(k, n) for k, n, _ in info] == [("objects/aa/k1", 5)]
    assert before <= info[0][2] <= time.time() + 5
    calls = count_calls(remote)
    assert remote.key_size("objects/aa/k1") == 5  # from the listing, no HEAD
    assert calls["HeadObject"] == 0
    remote.delete_many(["objects/aa/k1"])
    assert remote.key_size("objects/aa/k1") is None


def test_jobs_option_sets_default_parallelism(s3_env: dict[str, str]) -> None:
    assert S3Remote("origin", "s3://b/p").default_jobs == S3Remote.default_jobs
    assert S3Remote("origin", "s3://b/p", {"jobs": "32"}).default_jobs == 32


def test_url_prefix_forms(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    """s3://bucket, s3://bucket/ and s3://bucket/a/b/ all work and keep keys apart."""
    src = tmp_path / "x"
    src.write_bytes(b"x")
    for url, expect in ((f"s3://{s3_bucket.name}", "objects/aa/k"),
                        (f"s3://{s3_bucket.name}/deep/er/", "deep/er/objects/aa/k")):
        remote = S3Remote("origin", url, s3_bucket.options)
        remote.put_file("objects/aa/k", src)
        assert list(remote.iter_keys("objects/")) == ["objects/aa/k"]
        s3_bucket.client().head_object(Bucket=s3_bucket.name, Key=expect)
        remote.close()
