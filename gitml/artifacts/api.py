"""Read any artifact at any revision from Python, without checking it out.

    import gitml
    df = pandas.read_parquet(gitml.open("data/train.parquet", rev="v1.0"))
    raw = gitml.read_bytes("data/images/cat.png", rev="HEAD~3")

``rev`` is a Git revision, None for the work tree's pointers, or ``":"`` for the staged
ones (the index, as in ``git show :path``). Content comes from the local store, else it is
fetched (verified) from the default remote.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from gitml.errors import GitMLError, ObjectMissingError
from gitml.layout import MATERIALIZED_DIR
from gitml.repo import MLRepo
from gitml.store import pointer as ptr
from gitml.store.pointer import Pointer

INDEX = ":"


def _find(repo: MLRepo, path: str, rev: str | None) -> tuple[str, Pointer, str | None]:
    """(artifact path, its pointer, member path inside a dir artifact or None)."""
    rel = repo.relpath(path).strip("/")
    if rel.endswith(ptr.SUFFIX):
        rel = ptr.artifact_path_for(rel)
    parts = rel.split("/")
    for i in range(len(parts), 0, -1):
        art = "/".join(parts[:i])
        pointer_rel = ptr.pointer_path_for(art)
        if rev is None:
            ppath = repo.abspath(pointer_rel)
            data = ppath.read_bytes() if ppath.is_file() else None
        elif rev == INDEX:
            data = repo.git.read_blob(None, pointer_rel)
        else:
            data = repo.git.read_blob(rev, pointer_rel)
        if data is not None:
            member = "/".join(parts[i:]) or None
            where = {None: "work tree", INDEX: "index"}.get(rev, rev)
            return art, ptr.parse(data, f"{pointer_rel} ({where})"), member
    where = f"at {rev}" if rev else "in the work tree"
    raise GitMLError(f"{rel} is not a gitml artifact {where}", "see `git ml status` for artifacts")


def _ensure(repo: MLRepo, art: str, p: Pointer) -> None:
    from gitml.artifacts.worktree import content_in_store

    if content_in_store(repo, p):
        return
    if repo.config.default_remote() is None and not repo.config.remotes():
        raise ObjectMissingError(f"{art} ({p.oid}) is not in the local store and no remote is set",
                                 "run `git ml remote add NAME URL --default`")
    from gitml.artifacts.sync import fetch_artifacts

    fetch_artifacts(repo, [(art, p)])


def _resolve_oid(repo: MLRepo, path: str, rev: str | None) -> str:
    art, p, member = _find(repo, path, rev)
    _ensure(repo, art, p)
    if member is None:
        if p.kind == "dir":
            raise GitMLError(f"{art} is a folder artifact", "open a file inside it")
        return p.oid
    if p.kind != "dir":
        raise GitMLError(f"{art} is a file, not a folder")
    for e in repo.store.read_tree(p.oid):
        if e.path == member:
            return e.oid
    raise GitMLError(f"{member} is not in the folder artifact {art} at {rev or 'the work tree'}")


def open(path: str, rev: str | None = None, repo: MLRepo | None = None) -> BinaryIO:
    repo = repo or MLRepo.discover()
    return repo.store.open(_resolve_oid(repo, path, rev))


def read_bytes(path: str, rev: str | None = None, repo: MLRepo | None = None) -> bytes:
    with open(path, rev, repo) as f:
        return f.read()


def materialize(path: str, rev: str | None = None, repo: MLRepo | None = None) -> Path:
    """A local, read-only file with the content of ``path`` at ``rev``.

    Small files are the store object itself; large (chunked) ones are assembled once into
    ``<ml dir>/cache/materialized/``.
    """
    repo = repo or MLRepo.discover()
    return local_path_of(repo, _resolve_oid(repo, path, rev))


def local_path_of(repo: MLRepo, oid: str) -> Path:
    """A read-only local file holding content ``oid`` (which must be in the store)."""
    obj = repo.store.object_path(oid)
    if obj.is_file():
        return obj
    dest = repo.ml_dir / MATERIALIZED_DIR / oid
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        repo.store.copy_to(oid, dest, mode=0o444)
    return dest
