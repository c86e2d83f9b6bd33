"""Pack files: index format, batching, ranged-read planning and the gc verdicts."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitml.errors import ConfigError, CorruptObjectError
from gitml.store import packs
from gitml.store.ids import hash_bytes
from gitml.store.remote import open_remote


def key_of(data: bytes) -> str:
    oid = hash_bytes(data)
    return f"objects/{oid[:2]}/{oid[2:]}"


@given(st.lists(st.binary(max_size=300), max_size=40, unique=True))
def test_pack_round_trip(blobs: list[bytes]) -> None:
    parts = [(key_of(b), b) for b in blobs]
    pack_id, data, index = packs.build_pack(parts)
    assert pack_id == hash_bytes(index.split(b"\n", 1)[1])  # the entry lines name the bytes
    entries = packs.parse_index(index, pack_id)
    assert {k: data[e.offset: e.offset + e.size] for k, e in entries.items()} == dict(parts)


@given(st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=10, unique=True),
       st.data())
def test_damaged_index_is_refused(blobs: list[bytes], draw: st.DataObject) -> None:
    pack_id, _, index = packs.build_pack([(key_of(b), b) for b in blobs])
    cut = draw.draw(st.integers(0, len(index) - 1))
    with pytest.raises(CorruptObjectError) as info:
        packs.parse_index(index[:cut], pack_id)  # truncated anywhere
    assert pack_id in info.value.message
    with pytest.raises(CorruptObjectError):
        packs.parse_index(index, "0" * 32)  # the index of another pack


def test_index_entries_must_lie_inside_the_pack() -> None:
    pack_id, index = packs.index_bytes([(key_of(b"abc"), 3)])
    head, body = index.split(b"\n", 1)
    fields = head.split(b" ")
    fields[3] = b"2"  # the header says the pack is shorter than its entries
    with pytest.raises(CorruptObjectError, match="outside the pack"):
        packs.parse_index(b" ".join(fields) + b"\n" + body, pack_id)
    lines = index.decode().split("\n")
    lines[1] = lines[1].rsplit(" ", 1)[0] + " 4"  # an entry edited: its id no longer fits
    with pytest.raises(CorruptObjectError, match="do not hash"):
        packs.parse_index("\n".join(lines).encode(), pack_id)


def test_concat_reader_reads_files_end_to_end(tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    blobs = [os.urandom(n) for n in (0, 1, 5000, 70_000, 3)]
    parts = []
    for i, b in enumerate(blobs):
        p = Path(tmp_path) / f"p{i}"
        p.write_bytes(b)
        parts.append((str(p), len(b)))
    whole = b"".join(blobs)
    with packs.ConcatReader(parts) as r:
        assert r.size == len(whole)
        assert r.read() == whole
        for start, n in ((0, 10), (4999, 3), (5001, 70_001), (75_000, 10), (len(whole), 5)):
            r.seek(start)
            assert r.read(n) == whole[start: start + n]
        r.seek(-3, os.SEEK_END)
        assert r.read() == blobs[-1]
    Path(parts[3][0]).write_bytes(b"short")  # the store changed under us: an error, not junk
    with packs.ConcatReader(parts) as r, pytest.raises(CorruptObjectError):
        r.read()


def test_plan_batches_respects_the_target_and_the_order() -> None:
    sized = [(f"k{i}", s) for i, s in enumerate([5, 5, 5, 20, 1, 1, 9])]
    batches = packs.plan_batches(sized, 10)
    assert [[k for k, _ in b] for b in batches] == [["k0", "k1"], ["k2"], ["k3"], ["k4", "k5"], ["k6"]]
    assert all(sum(s for _, s in b) <= 10 or len(b) == 1 for b in batches)


def test_plan_ranges_joins_neighbours_only() -> None:
    def e(pack: str, off: int, size: int) -> packs.PackEntry:
        return packs.PackEntry(pack, off, size)

    located = [("a", e("P", 0, 100)), ("b", e("P", 150, 50)), ("c", e("P", 10_000, 10)),
               ("d", e("Q", 0, 5)), ("z", e("P", 200, 100))]
    ranges = packs.plan_ranges(located, gap=100, max_bytes=1000)
    assert [(r.pack, r.start, r.length, [k for k, _ in r.items]) for r in ranges] == [
        ("P", 0, 300, ["a", "b", "z"]), ("P", 10_000, 10, ["c"]), ("Q", 0, 5, ["d"])]
    # a read never grows past max_bytes
    many = [(str(i), e("P", i * 10, 10)) for i in range(100)]
    assert all(r.length <= 200 for r in packs.plan_ranges(many, gap=0, max_bytes=200))
    assert sum(len(r.items) for r in packs.plan_ranges(many, gap=0, max_bytes=200)) == 100


def test_slice_range_checks_the_length() -> None:
    rng = packs.ReadRange("P", 0, 10, (("a", packs.PackEntry("P", 0, 10)),))
    with pytest.raises(CorruptObjectError):
        list(packs.slice_range(rng, b"short"))


def test_judge_pack() -> None:
    entries = {k: packs.PackEntry("P", i * 10, 10) for i, k in enumerate("abcd")}
    judge = packs.judge_pack
    assert judge("P", entries, 40, 9, set("abcd"), old=True).action == "keep"
    gone = judge("P", entries, 40, 9, set(), old=True)
    assert gone.action == "delete" and gone.freed == 49 and sorted(gone.dead) == list("abcd")
    assert judge("P", entries, 40, 9, set(), old=False).action == "keep"  # grace period
    half = judge("P", entries, 40, 9, set("ab"), old=True)
    assert half.action == "repack" and half.freed == 20 and [k for k, _ in half.live] == ["a", "b"]
    assert judge("P", entries, 40, 9, set("abc"), old=True).action == "keep"


def test_pack_size_option() -> None:
    from gitml.store.remote import DEFAULT_PACK_BYTES

    assert open_remote("o", "/tmp/x").pack_bytes == DEFAULT_PACK_BYTES == 16 * 2**20
    assert open_remote("o", "/tmp/x", {"pack_mib": "0"}).pack_bytes == 0
    assert open_remote("o", "/tmp/x", {"pack_mib": "0.5"}).pack_bytes == 512 * 1024
    with pytest.raises(ConfigError, match="pack_mib"):
        open_remote("o", "/tmp/x", {"pack_mib": "lots"})


def test_pack_index_refresh_caches_and_forgets(tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    root = Path(tmp_path)
    remote = open_remote("origin", str(root / "remote"))
    a = packs.build_pack([(key_of(b"one"), b"one"), (key_of(b"two"), b"two")])
    b = packs.build_pack([(key_of(b"three"), b"three")])
    for pack_id, data, index in (a, b):
        remote.put_bytes(packs.pack_key(pack_id), data)
        remote.put_bytes(packs.index_key(pack_id), index)
    # a pack whose index never arrived, and an index whose pack is gone, are both ignored
    c = packs.build_pack([(key_of(b"four"), b"four")])
    remote.put_bytes(packs.pack_key(c[0]), c[1])
    d = packs.build_pack([(key_of(b"five"), b"five")])
    remote.put_bytes(packs.index_key(d[0]), d[2])
    index = packs.PackIndex(remote, root / "cache")
    index.refresh()
    assert set(index.entries) == {key_of(b"one"), key_of(b"two"), key_of(b"three")}
    assert sorted(p.stem for p in (root / "cache").glob("*.idx")) == sorted([a[0], b[0]])
    packs.delete_pack(remote, index, b[0])
    fresh = packs.PackIndex(remote, root / "cache")
    fresh.refresh()
    assert set(fresh.entries) == {key_of(b"one"), key_of(b"two")}
    assert [p.stem for p in (root / "cache").glob("*.idx")] == [a[0]]
    # a damaged cached index is fetched again rather than trusted
    (root / "cache" / f"{a[0]}.idx").write_bytes(b"junk")
    again = packs.PackIndex(remote, root / "cache")
    again.refresh()
    assert set(again.entries) == {key_of(b"one"), key_of(b"two")}


def test_fetch_survives_a_pack_rewritten_under_it(tmp_path: os.PathLike[str]) -> None:
    """Another clone's gc rewrites a pack after this process read the index: the ranged
    read finds nothing, the index is read again, and the fetch completes."""
    from pathlib import Path

    from gitml.store import transfer
    from gitml.store.objects import ObjectStore
    from gitml.store.pointer import Pointer

    root = Path(tmp_path)
    src = ObjectStore(root / "src")
    blobs = [os.urandom(500) for _ in range(30)]
    oids = [src.put_bytes(b) for b in blobs]
    arts = [(f"f{i}", Pointer(oid=o, size=500, kind="file")) for i, o in enumerate(oids)]
    remote = open_remote("origin", str(root / "remote"))
    pushed = transfer.push(src, remote, arts, known=transfer.KnownIndex(root / "k1"), jobs=2,
                           packs=packs.PackIndex(remote, root / "c1"), pack_bytes=8000)
    assert pushed.transferred == 30
    stale = packs.PackIndex(remote, root / "c2")
    stale.refresh()
    assert len(stale.by_pack) == 2  # 16 + 14 objects
    other = packs.PackIndex(remote, root / "c3")
    other.refresh()
    for pack_id, entries in sorted(other.by_pack.items()):
        keep = sorted(entries.items(), key=lambda kv: kv[1].offset)[:-1]  # drop one object
        packs.repack(remote, other, pack_id, keep)
    assert not set(stale.by_pack) & set(other.by_pack)
    dest = ObjectStore(root / "dest")
    wanted = [a for a in arts if any(f"objects/{a[1].oid[:2]}/{a[1].oid[2:]}" in e
                                     for e in other.by_pack.values())]
    assert len(wanted) == 28
    stats = transfer.fetch(dest, remote, wanted, known=transfer.KnownIndex(root / "k2"),
                           packs=stale)
    assert stats.transferred == 28
    assert all(dest.read_object(p.oid) == blobs[oids.index(p.oid)] for _, p in wanted)


def test_resumed_push_sends_only_the_index_of_an_orphan_pack(tmp_path: os.PathLike[str]) -> None:
    """A push killed after a pack went up but before its index: the next push sends the
    index alone (the pack's id fixes its bytes)."""
    from pathlib import Path
    from typing import BinaryIO, ClassVar

    from gitml.store import transfer
    from gitml.store.local_remote import LocalRemote
    from gitml.store.objects import ObjectStore
    from gitml.store.pointer import Pointer

    class Counting(LocalRemote):
        streamed: ClassVar[list[str]] = []

        def put_stream(self, key: str, stream: BinaryIO, size: int) -> None:
            self.streamed.append(key)
            super().put_stream(key, stream, size)

    root = Path(tmp_path)
    src = ObjectStore(root / "src")
    oids = [src.put_bytes(os.urandom(300)) for _ in range(10)]
    arts = [(f"f{i}", Pointer(oid=o, size=300, kind="file")) for i, o in enumerate(oids)]
    remote = Counting("origin", str(root / "remote"))
    keys = [f"objects/{o[:2]}/{o[2:]}" for o in oids]
    files = [(k, str(src.path_of_key(k)), 300) for k in keys]
    pack_id, _ = packs.index_bytes([(k, 300) for k in keys])
    with packs.ConcatReader([(p, s) for _, p, s in files]) as r:
        remote.put_stream(packs.pack_key(pack_id), r, r.size)  # type: ignore[arg-type]
    remote.streamed.clear()
    index = packs.PackIndex(remote, root / "cache")
    stats = transfer.push(src, remote, arts, known=transfer.KnownIndex(root / "known"), jobs=2,
                          packs=index, pack_bytes=1 << 20)
    assert stats.transferred == 10 and remote.streamed == [packs.index_key(pack_id)]
    fresh = packs.PackIndex(remote, root / "cache2")
    fresh.refresh()
    assert set(fresh.entries) == set(keys) and not fresh.orphans
