"""Reach into a repository's store the way a disk fault or a careless user would."""

from __future__ import annotations

import os
from pathlib import Path

from gitml.store import pointer as ptr


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
