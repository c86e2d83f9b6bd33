"""Property tests of the pointer, tree and chunk-list formats and of chunking."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitml.errors import CorruptObjectError, GitMLError, PointerError
from gitml.store import chunking, pointer, tree
from gitml.store.ids import hash_bytes

oids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
names = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
                min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
relpaths = st.lists(names, min_size=1, max_size=4).map("/".join)


@given(oid=oids, size=st.integers(0, 2**50), files=st.integers(0, 10**7), is_dir=st.booleans())
def test_pointer_round_trip(oid: str, size: int, files: int, is_dir: bool) -> None:
    p = pointer.Pointer(oid, size, "dir" if is_dir else "file", files if is_dir else None)
    text = p.dumps()
    assert pointer.parse(text) == p
    assert pointer.parse(text.encode()) == p
    assert text.endswith("\n") and len(text) < 300


@pytest.mark.parametrize("text", [
    "", "version 1\nkind file\noid xyz\nsize 1\n",
    "version 2\nkind file\noid " + "a" * 32 + "\nsize 1\n",
    "version 1\nkind blob\noid " + "a" * 32 + "\nsize 1\n",
    "version 1\nkind file\noid " + "a" * 32 + "\nsize -1\n",
    "version 1\nkind file\noid " + "a" * 32 + "\nsize 1\ncolor red\n",
    "version 1\nkind dir\noid " + "a" * 32 + "\nsize 1\n",
    "version 1\nversion 1\nkind file\noid " + "a" * 32 + "\nsize 1\n",
])
def test_pointer_rejects_damage(text: str) -> None:
    with pytest.raises(PointerError):
        pointer.parse(text, "x.gitml")


def test_pointer_rejects_binary() -> None:
    with pytest.raises(PointerError, match="binary"):
        pointer.parse(b"\xff\xfe\x00garbage", "x.gitml")


@given(st.dictionaries(relpaths, st.tuples(oids, st.integers(0, 2**40), st.sampled_from(tree.MODES)),
                       max_size=30))
def test_tree_round_trip_and_order_independent(entries: dict[str, tuple[str, int, int]]) -> None:
    items = [tree.TreeEntry(p, o, s, m) for p, (o, s, m) in entries.items()]
    data = tree.dumps(items)
    assert tree.loads(data) == sorted(items)
    shuffled = items[:]
    random.shuffle(shuffled)
    assert tree.dumps(shuffled) == data


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../b", "a//b", "./a", "a\nb", "a\\b", ""])
def test_tree_rejects_unsafe_paths(bad: str) -> None:
    with pytest.raises(GitMLError):
        tree.dumps([tree.TreeEntry(bad, "a" * 32, 1)])


def test_tree_loads_rejects_garbage() -> None:
    with pytest.raises(CorruptObjectError):
        tree.loads(b"not a tree\n")
    with pytest.raises(CorruptObjectError):
        tree.loads(b"gitml-tree 1\n100644 1 " + b"a" * 32 + b" ../escape\n")


def _chunks(data: bytes) -> list[bytes]:
    return [bytes(c) for c in chunking.iter_chunks(io.BytesIO(data))]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(0, 6 * 1024 * 1024))
def test_chunking_reassembles_exactly(seed: int, size: int) -> None:
    data = random.Random(seed).randbytes(size)
    parts = _chunks(data)
    assert b"".join(parts) == data
    assert all(len(p) <= 4 * chunking.AVG_CHUNK for p in parts)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), where=st.floats(0.1, 0.9))
def test_local_edit_changes_only_nearby_chunks(seed: int, where: float) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(12 * 1024 * 1024)
    pos = int(len(data) * where)
    edited = data[:pos] + b"EDIT" * 25 + data[pos:]
    before = {hash_bytes(c) for c in _chunks(data)}
    after = _chunks(edited)
    new = [c for c in after if hash_bytes(c) not in before]
    assert len(new) <= 2, f"{len(new)} chunks changed for a 100-byte insert"
    assert sum(len(c) for c in new) <= 8 * chunking.AVG_CHUNK


def test_chunk_list_round_trip_and_damage() -> None:
    refs = [chunking.ChunkRef("a" * 32, 10), chunking.ChunkRef("b" * 32, 5)]
    assert chunking.loads(chunking.dumps(15, refs)) == (15, refs)
    with pytest.raises(CorruptObjectError):
        chunking.loads(chunking.dumps(16, refs))
    with pytest.raises(CorruptObjectError):
        chunking.loads(b"gitml-chunks 1\nsize 3\nzz 3\n")
