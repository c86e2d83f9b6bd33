"""One contract every Remote implementation must satisfy (folder and S3)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gitml.errors import ObjectMissingError
from gitml.store.ids import hash_bytes
from gitml.store.local_remote import LocalRemote
from gitml.store.remote import Remote, open_remote


def obj_key(data: bytes, ns: str = "objects") -> str:
    oid = hash_bytes(data)
    return f"{ns}/{oid[:2]}/{oid[2:]}"


@pytest.fixture(params=["local", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Remote]:
    r: Remote
    if request.param == "local":
        r = open_remote("origin", str(tmp_path / "remote-folder"))
        assert isinstance(r, LocalRemote)
    else:
        bucket = request.getfixturevalue("s3_bucket")
        r = open_remote("origin", bucket.url, bucket.options)
        from gitml.store.s3_remote import S3Remote

        assert isinstance(r, S3Remote)
    try:
        yield r
    finally:
        r.close()


def put_bytes(remote: Remote, tmp_path: Path, key: str, data: bytes) -> None:
    src = tmp_path / f"src-{threading.get_ident()}-{hash_bytes(data)}"
    src.write_bytes(data)
    remote.put_file(key, src)
    src.unlink()


def get_bytes(remote: Remote, tmp_path: Path, key: str) -> bytes:
    dest = tmp_path / f"dest-{threading.get_ident()}"
    remote.get_file(key, dest)
    try:
        return dest.read_bytes()
    finally:
        dest.unlink()


def test_put_get_round_trip(remote: Remote, tmp_path: Path) -> None:
    payloads = [b"", b"x", os.urandom(1), os.urandom(70_000), bytes(range(256)) * 1000]
    for data in payloads:
        key = obj_key(data)
        put_bytes(remote, tmp_path, key, data)
    for data in payloads:
        assert get_bytes(remote, tmp_path, obj_key(data)) == data


def test_overwrite_replaces_content(remote: Remote, tmp_path: Path) -> None:
    put_bytes(remote, tmp_path, "objects/aa/one", b"first")
    put_bytes(remote, tmp_path, "objects/aa/one", b"second!")
    assert get_bytes(remote, tmp_path, "objects/aa/one") == b"second!"
    assert remote.key_size("objects/aa/one") == 7


def test_get_missing_key_raises_object_missing(remote: Remote, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(ObjectMissingError) as info:
        remote.get_file("objects/00/" + "0" * 30, dest)
    assert "objects/00/" + "0" * 30 in str(info.value)
    assert "origin" in str(info.value)
    # the error is one line, no traceback text
    assert "\n" not in str(info.value)


def test_has_many_present_absent(remote: Remote, tmp_path: Path) -> None:
    assert remote.has_many([]) == set()
    present = [obj_key(f"p{i}".encode()) for i in range(5)]
    for i, k in enumerate(present):
        put_bytes(remote, tmp_path, k, f"p{i}".encode())
    absent = [obj_key(f"a{i}".encode()) for i in range(5)]
    assert remote.has_many(present + absent) == set(present)
    assert remote.has_many(absent) == set()
    assert remote.has_many(present[:1]) == set(present[:1])
    assert remote.has_many(absent[:1]) == set()
    # a generator works and duplicates are fine
    assert remote.has_many(k for k in present + present) == set(present)


def test_has_many_many_keys(remote: Remote, tmp_path: Path) -> None:
    """3,000 keys asked (250 present) across namespaces and every fan-out folder."""
    datas = [f"obj-{i}".encode() for i in range(250)]
    items = [(obj_key(d, "objects" if i % 10 else "chunked"), d) for i, d in enumerate(datas)]
    present = [k for k, _ in items]
    srcdir = tmp_path / "many"
    srcdir.mkdir()

    def up(item: tuple[str, bytes]) -> None:
        key, data = item
        p = srcdir / key.replace("/", "_")
        p.write_bytes(data)
        remote.put_file(key, p)

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(up, items))
    absent = [obj_key(f"absent-{i}".encode(), "objects" if i % 2 else "chunked")
              for i in range(2750)]
    # neighbours of present keys (same fan-out folder, one character off) are absent
    absent += [k[:-1] + ("0" if k[-1] != "0" else "1") for k in present[:50]]
    got = remote.has_many(present + absent)
    assert got == set(present)
    # a sparse question against the full remote
    sample = present[::37] + absent[::37]
    assert remote.has_many(sample) == set(present[::37])
    # the first and last keys in sort order (range edges)
    ordered = sorted(present)
    assert remote.has_many([ordered[0], ordered[-1], *absent[:20]]) == {ordered[0], ordered[-1]}


def test_iter_keys_with_prefix(remote: Remote, tmp_path: Path) -> None:
    keys = ["objects/ab/c1", "objects/ab/c2", "objects/cd/e3", "chunked/ab/f4"]
    for k in keys:
        put_bytes(remote, tmp_path, k, k.encode())
    assert sorted(remote.iter_keys()) == sorted(keys)
    assert sorted(remote.iter_keys("objects/")) == ["objects/ab/c1", "objects/ab/c2", "objects/cd/e3"]
    assert sorted(remote.iter_keys("objects/ab/")) == ["objects/ab/c1", "objects/ab/c2"]
    assert sorted(remote.iter_keys("chunked/")) == ["chunked/ab/f4"]
    assert list(remote.iter_keys("nothing/")) == []


def test_delete_many(remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # small delete batches so that several batches run without thousands of uploads
    monkeypatch.setattr("gitml.store.s3_remote.DELETE_BATCH", 50)
    keys = [obj_key(f"d{i}".encode()) for i in range(130)]
    srcdir = tmp_path / "del"
    srcdir.mkdir()

    def up(k: str) -> None:
        p = srcdir / k.replace("/", "_")
        p.write_bytes(k.encode())
        remote.put_file(k, p)

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(up, keys))
    keep = keys[:5]
    gone = keys[5:]
    remote.delete_many(iter([*gone, "objects/ff/never-existed"]))
    assert sorted(remote.iter_keys()) == sorted(keep)
    assert remote.has_many(keys) == set(keep)
    remote.delete_many([])
    with pytest.raises(ObjectMissingError):
        remote.get_file(gone[0], tmp_path / "x")


def test_key_size(remote: Remote, tmp_path: Path) -> None:
    put_bytes(remote, tmp_path, "objects/12/size", b"z" * 12345)
    assert remote.key_size("objects/12/size") == 12345
    assert remote.key_size("objects/12/absent") is None


def test_concurrent_puts_of_same_key(remote: Remote, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    key = obj_key(data)
    srcs = []
    for i in range(12):
        p = tmp_path / f"same-{i}"
        p.write_bytes(data)
        srcs.append(p)
    barrier = threading.Barrier(len(srcs))

    def up(p: Path) -> None:
        barrier.wait()
        remote.put_file(key, p)

    with ThreadPoolExecutor(len(srcs)) as ex:
        list(ex.map(up, srcs))
    assert get_bytes(remote, tmp_path, key) == data
    assert remote.has_many([key]) == {key}
    assert [k for k in remote.iter_keys() if not k.startswith(".")] == [key]


def test_concurrent_reads_while_writing_never_partial(remote: Remote, tmp_path: Path) -> None:
    """A reader sees either nothing or the whole object, never a prefix of it."""
    data = os.urandom(1_000_000)
    key = obj_key(data)
    src = tmp_path / "big"
    src.write_bytes(data)
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        n = 0
        while not stop.is_set():
            dest = tmp_path / f"r-{n}"
            n += 1
            try:
                remote.get_file(key, dest)
            except ObjectMissingError:
                continue
            seen.append(len(dest.read_bytes()))
            dest.unlink()

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(3):
        remote.put_file(key, src)
    stop.set()
    t.join()
    assert all(n == len(data) for n in seen)


def test_put_bytes_and_ranged_reads(remote: Remote) -> None:
    data = os.urandom(300_000)
    remote.put_bytes("packs/p.pack", data)
    assert remote.get_range("packs/p.pack") == data
    assert remote.get_range("packs/p.pack", 0, 10) == data[:10]
    assert remote.get_range("packs/p.pack", 123_456, 7) == data[123_456:123_463]
    assert remote.get_range("packs/p.pack", 299_990) == data[299_990:]
    assert remote.get_range("packs/p.pack", 5, 0) == b""
    remote.put_bytes("packs/p.pack", b"replaced")  # a later put wins, never a mix
    assert remote.get_range("packs/p.pack") == b"replaced"
    assert remote.key_size("packs/p.pack") == 8
    bigger = os.urandom(70 * 1024 * 1024) if isinstance(remote, LocalRemote) else None
    if bigger is not None:
        remote.put_bytes("packs/big.pack", bigger)
        assert remote.get_range("packs/big.pack", 64 * 1024 * 1024, 1000) == \
            bigger[64 * 1024 * 1024: 64 * 1024 * 1024 + 1000]


def test_put_stream(remote: Remote, tmp_path: Path) -> None:
    from gitml.store.packs import ConcatReader

    blobs = [os.urandom(n) for n in (10, 200_000, 1)]
    parts = []
    for i, b in enumerate(blobs):
        (tmp_path / f"part{i}").write_bytes(b)
        parts.append((str(tmp_path / f"part{i}"), len(b)))
    with ConcatReader(parts) as reader:
        remote.put_stream("packs/s.pack", reader, reader.size)  # type: ignore[arg-type]
    assert remote.get_range("packs/s.pack") == b"".join(blobs)


def test_ranged_read_errors(remote: Remote) -> None:
    with pytest.raises(ObjectMissingError) as info:
        remote.get_range("packs/absent.pack", 0, 10)
    assert "packs/absent.pack" in str(info.value)
    remote.put_bytes("packs/short.pack", b"0123456789")
    from gitml.errors import GitMLError

    with pytest.raises(GitMLError):  # past the end: never a silently short answer
        remote.get_range("packs/short.pack", 5, 50)
