"""Storing a large file: its chunks (boundaries unchanged), the writer threads, failures."""

from __future__ import annotations

import io
import mmap
import os
import random
from pathlib import Path

import pytest

from gitml.errors import GitMLError
from gitml.store import chunking
from gitml.store.fsutil import open_new_direct, write_all_direct
from gitml.store.ids import hash_bytes
from gitml.store.objects import ObjectStore

MIB = 1 << 20


def _reference_cuts(data: bytes) -> list[int]:
    """Chunk lengths from pyfastcdc's own stream chunker with the store's parameters: the
    boundaries every existing store and remote dedupes against."""
    from pyfastcdc import FastCDC

    cdc = FastCDC(1024 * 1024)  # its defaults: 256 KiB min, 4 MiB max
    return [c.length for c in cdc.cut_stream(io.BytesIO(data))]


def _stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, MIB + 123, 4 * MIB])
def test_direct_write_keeps_every_byte(tmp_path: Path, size: int) -> None:
    buf = memoryview(mmap.mmap(-1, 4 * MIB))
    data = random.Random(size).randbytes(size)
    buf[:size] = data
    path = str(tmp_path / "f")
    fd, _ = open_new_direct(path, 0o444)
    try:
        write_all_direct(fd, buf[:size])
    finally:
        os.close(fd)
    assert Path(path).read_bytes() == data
    assert os.stat(path).st_mode & 0o777 == 0o444


def test_large_file_round_trip_through_the_chunk_writers(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(23 * MIB + 5)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    store = ObjectStore(tmp_path / "store")
    stored = store.put_file(src)
    assert stored.size == len(data) and stored.new_bytes == len(data)
    assert stored.oid == hash_bytes(data)
    _, refs = store.read_chunklist(stored.oid)
    assert [r.size for r in refs] == _reference_cuts(data)  # the boundaries did not move
    for ref in refs:
        path = store.object_path(ref.oid)
        assert os.stat(path).st_mode & 0o777 == 0o444
        assert hash_bytes(path.read_bytes()) == ref.oid
    out = tmp_path / "out.bin"
    store.copy_to(stored.oid, out)
    assert out.read_bytes() == data
    assert list((tmp_path / "store/tmp").iterdir()) == []
    again = store.put_file(src)  # everything is there: nothing new
    assert again.oid == stored.oid and again.new_bytes == 0


def test_a_failing_chunk_write_is_one_error_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    data = random.Random(8).randbytes(30 * MIB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    lengths = _reference_cuts(data)
    cut = sum(lengths[:10])
    victim = hash_bytes(data[cut:cut + lengths[10]])  # the 11th chunk cannot be stored
    root = tmp_path / "store"
    (root / "objects").mkdir(parents=True)
    (root / "objects" / victim[:2]).write_bytes(b"a file where its folder should be")
    store = ObjectStore(root)
    with pytest.raises(GitMLError) as err:
        store.put_file(src)
    assert "\n" not in str(err.value) and "gitml store" in str(err.value)
    assert not (root / "chunked").exists()  # no chunk list: the file is not stored
    assert list((root / "tmp").iterdir()) == []  # no partial write left behind
    for path in _stored_files(root / "objects"):  # what did land is whole
        if path.parent.is_dir() and len(path.parent.name) == 2:
            assert hash_bytes(path.read_bytes()) == path.parent.name + path.name


@pytest.mark.parametrize("size", [9 * MIB, 33 * MIB + 1])
def test_all_zero_file_is_stored_once_per_distinct_chunk(tmp_path: Path, size: int) -> None:
    src = tmp_path / "zeros.bin"
    src.write_bytes(bytes(size))
    store = ObjectStore(tmp_path / "store")
    stored = store.put_file(src)
    _, refs = store.read_chunklist(stored.oid)
    assert [r.size for r in refs] == _reference_cuts(bytes(size))
    assert stored.new_bytes == sum(dict((r.oid, r.size) for r in refs).values())
    out = tmp_path / "out.bin"
    store.copy_to(stored.oid, out)
    assert out.read_bytes() == bytes(size)


def _inputs() -> list[tuple[str, bytes]]:
    """Random, all-zero, edited and repetitive data, around the stream chunker's 8 MiB
    buffer edges and the 4 MiB largest chunk."""
    rng = random.Random(3)
    base = rng.randbytes(20 * MIB)
    mid = 9 * MIB + 17
    out = [(f"random {n}", base[:n]) for n in (8 * MIB - 1, 8 * MIB, 8 * MIB + 1, 12 * MIB + 3)]
    out += [(f"zeros {n}", bytes(n)) for n in (4 * MIB, 4 * MIB + 1, 16 * MIB + 5)]
    out.append(("insert", base[:mid] + b"EDIT" * 25 + base[mid:]))
    out.append(("delete", base[:mid] + base[mid + 4096:]))
    out.append(("overwrite", base[:mid] + bytes(300 * 1024) + base[mid + 300 * 1024:]))
    out.append(("zeros inside random", base[:5 * MIB] + bytes(9 * MIB) + base[5 * MIB:10 * MIB]))
    out.append(("repeated block", rng.randbytes(700 * 1024) * 15))
    return out


@pytest.mark.parametrize(("name", "data"), _inputs(), ids=[n for n, _ in _inputs()])
def test_boundaries_equal_pyfastcdcs_stream_chunker(name: str, data: bytes) -> None:
    got = [len(v) for v in chunking.iter_chunks(io.BytesIO(data))]
    assert got == _reference_cuts(data), name


def test_a_read_error_mid_file_stops_the_writers_and_leaves_no_temp_file(tmp_path: Path) -> None:
    import threading

    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(random.Random(9).randbytes(40 * MIB))

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            if self.inner.tell() >= 24 * MIB:
                raise OSError(5, "Input/output error")
            return self.inner.readinto(b)

    before = threading.active_count()
    store = ObjectStore(tmp_path / "store")
    with pytest.raises(OSError, match="Input/output error"):
        store.put_stream(Failing(), 40 * MIB)
    assert threading.active_count() == before  # the writer threads are gone
    assert list((tmp_path / "store/tmp").iterdir()) == []
    assert not (tmp_path / "store/chunked").exists()
    for path in _stored_files(tmp_path / "store/objects"):  # the chunks that landed are whole
        assert hash_bytes(path.read_bytes()) == path.parent.name + path.name


def _write_chunks(writers: object, first: int, n: int) -> None:
    chunk = memoryview(bytes(MIB))
    for i in range(first, first + n):
        writers.submit(str(i), chunk)  # type: ignore[attr-defined]
    writers.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("slow_way_is_direct", [True, False])
def test_writers_take_the_cheaper_way_and_keep_checking_the_other(
        monkeypatch: pytest.MonkeyPatch, slow_way_is_direct: bool) -> None:
    import time

    from gitml.store import chunk_writers

    monkeypatch.setattr(chunk_writers, "PROBE", 4 * MIB)
    calls: dict[int, bool] = {}

    def put(oid: str, data: memoryview, direct: bool) -> None:
        if direct == slow_way_is_direct:
            time.sleep(0.01)  # 100 MiB/s against the other way's memory speed
        calls[int(oid)] = direct

    path = chunk_writers.WritePath()
    _write_chunks(chunk_writers.ChunkWriters(put, MIB, path), 0, 300)
    assert sorted(calls) == list(range(300))
    assert path.prefers_direct() is not slow_way_is_direct
    early = [calls[i] for i in range(8)]
    assert early.count(True) >= 3 and early.count(False) >= 3  # both ways measured first
    later = [calls[i] for i in range(24, 300)]
    slow = later.count(slow_way_is_direct)
    # mostly the cheap way; the other now and then: 1 chunk in 16, or in 128 when it is
    # more than 8 times dearer, as here
    assert 1 <= slow <= 6, later
    calls.clear()
    _write_chunks(chunk_writers.ChunkWriters(put, MIB, path), 300, 8)  # the next file, same store
    assert [calls[i] for i in range(300, 308)].count(slow_way_is_direct) <= 1  # no new probe


@pytest.mark.parametrize(("direct_cost", "period"), [(1.1, 16), (3.0, 48), (1000.0, 128), (0.5, 32)])
def test_the_dearer_way_is_checked_less_often_the_dearer_it_is(direct_cost: float, period: int) -> None:
    from gitml.store import chunk_writers

    path = chunk_writers.WritePath()
    path.record(False, chunk_writers.PROBE, 1.0)  # through the page cache: 1 s per PROBE bytes
    path.record(True, chunk_writers.PROBE, direct_cost)
    picks = [path.direct_now() for _ in range(period * 8)]
    cheap_is_direct = direct_cost < 1.0
    assert picks.count(not cheap_is_direct) == 8  # the dearer way: once per period


def test_writers_turn_round_when_the_cheaper_way_becomes_dear(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from gitml.store import chunk_writers

    monkeypatch.setattr(chunk_writers, "PROBE", 4 * MIB)
    slow = {"direct": True}
    calls: dict[int, bool] = {}

    def put(oid: str, data: memoryview, direct: bool) -> None:
        if direct == slow["direct"]:
            time.sleep(0.01)
        calls[int(oid)] = direct

    path = chunk_writers.WritePath()
    _write_chunks(chunk_writers.ChunkWriters(put, MIB, path), 0, 32)
    assert not path.prefers_direct()
    slow["direct"] = False  # memory became expensive, the disk quiet
    _write_chunks(chunk_writers.ChunkWriters(put, MIB, path), 32, 160)
    assert path.prefers_direct()
    assert [calls[i] for i in range(172, 192)].count(True) >= 17


def test_chunks_written_either_way_are_whole(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gitml.store import chunk_writers

    monkeypatch.setattr(chunk_writers, "PROBE", 4 * MIB)  # 20 MiB: both ways, in turns
    ways: list[bool] = []
    record = chunk_writers.WritePath.record
    monkeypatch.setattr(chunk_writers.WritePath, "record",
                        lambda self, direct, n, s: (ways.append(direct), record(self, direct, n, s)))
    data = random.Random(11).randbytes(20 * MIB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    store = ObjectStore(tmp_path / "store")
    stored = store.put_file(src)
    assert True in ways and False in ways
    out = tmp_path / "out.bin"
    store.copy_to(stored.oid, out)
    assert out.read_bytes() == data
    _, refs = store.read_chunklist(stored.oid)
    assert all(os.stat(store.object_path(r.oid)).st_mode & 0o777 == 0o444 for r in refs)
    for r in refs:
        assert hash_bytes(store.object_path(r.oid).read_bytes()) == r.oid


def test_chunking_parameters_are_pyfastcdcs_defaults() -> None:
    assert (chunking.MIN_CHUNK, chunking.AVG_CHUNK, chunking.MAX_CHUNK) == (256 * 1024, MIB, 4 * MIB)
