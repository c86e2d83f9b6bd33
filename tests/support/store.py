"""Reach into a repository's store the way a disk fault or a careless user would."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.store import pointer as ptr

if TYPE_CHECKING:
    from gitml.store.objects import ObjectStore


def pointer_oid(repo: Path, artifact: str) -> str:
    return ptr.parse((repo / ptr.pointer_path_for(artifact)).read_bytes()).oid


def store_root(repo: Path) -> Path:
    return repo / ".git/ml/store"


def object_path(repo: Path, oid: str, kind: str = "objects") -> Path:
    return store_root(repo) / kind / oid[:2] / oid[2:]


def _writable(path: Path) -> None:
    os.chmod(path, 0o644)


def flip_byte(path: Path, offset: int = 0) -> None:
    """Invert one byte of ``path`` in place (a bit-rot of the kind fsck must find)."""
    _writable(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def truncate(path: Path, keep: int) -> None:
    _writable(path)
    os.truncate(path, keep)


def chunk_paths(repo: Path, oid: str) -> list[Path]:
    """The chunk files of the chunked content ``oid``, in order."""
    from gitml.store import chunking

    _, chunks = chunking.loads(object_path(repo, oid, "chunked").read_bytes(), oid)
    return [object_path(repo, c.oid) for c in chunks]


def tree_member_oid(repo: Path, tree_oid: str, member: str) -> str:
    from gitml.store import tree

    for e in tree.loads(object_path(repo, tree_oid).read_bytes(), tree_oid):
        if e.path == member:
            return e.oid
    raise KeyError(member)


def temp_leftovers(*roots: Path) -> list[Path]:
    """Every gitml temp file below ``roots``."""
    from gitml.layout import is_temp_name

    out: list[Path] = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            out += [Path(dirpath) / f for f in files if is_temp_name(f)]
    return out


def open_store(repo: Path) -> ObjectStore:
    from gitml.store.objects import ObjectStore

    return ObjectStore(store_root(repo))


def has_key(repo: Path, key: str) -> bool:
    """Whether the local store holds ``key``, loose or in a pack."""
    return open_store(repo).has_key(key)


def read_key(repo: Path, key: str) -> bytes:
    return open_store(repo).read_key(key)


def where_object(repo: Path, oid: str) -> tuple[Path, int, int]:
    """(file, offset, size) holding object ``oid``: its loose file or a slice of a pack."""
    path, offset, size = open_store(repo).segment_of(f"objects/{oid[:2]}/{oid[2:]}")
    return Path(path), offset, size


def flip_object_byte(repo: Path, oid: str, at: int = 0) -> None:
    """Bit-rot one byte of object ``oid`` wherever it lies (loose or packed)."""
    path, offset, _ = where_object(repo, oid)
    flip_byte(path, offset + at)


def pack_files(repo: Path) -> list[Path]:
    return sorted((store_root(repo) / "packs").glob("*.pack"))


def store_objects(repo: Path) -> dict[str, bytes]:
    """store key -> bytes of every object in the local store, loose or packed."""
    store = open_store(repo)
    return {key: store.read_key(key) for key in store.iter_keys()}
