"""Read any artifact at any revision from Python, without checking it out.

    import gitml
    df = pandas.read_parquet(gitml.open("data/train.parquet", rev="v1.0"))
    raw = gitml.read_bytes("data/images/cat.png", rev="HEAD~3")

``rev`` is a Git revision, None for the work tree's pointers, or ``":"`` for the staged
ones (the index, as in ``git show :path``). Content comes from the local store, else it is
fetched (verified) from the default remote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gitml.errors import GitMLError, ObjectMissingError, PointerError
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

    A loose object is the store's own file; content in a pack or in chunks is written
    once, verified, into ``<ml dir>/cache/materialized/``.
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


# -------------------------------------------------------------- any tracked path, located
@dataclass(frozen=True)
class Located:
    """A repository path at a place, with its content id (xxh3-128 of the bytes).

    ``kind``: "artifact" (a gitml pointer, or a file inside a folder artifact), "git" (a
    plain file tracked by Git, at a commit or in the index) or "file" (the work-tree
    copy of a file without a pointer). ``rev`` is the commit id, :data:`INDEX`, or None
    for the work tree.
    """

    path: str
    oid: str
    kind: str
    rev: str | None
    folder: bool = False  # a folder artifact itself (its oid names a tree)

    @property
    def where(self) -> str:
        return {None: "work tree", INDEX: "index"}.get(self.rev, self.rev or "")


def locate(path: str, rev: str | None = None, repo: MLRepo | None = None) -> Located:
    """``path`` (relative to the work tree's root) at ``rev`` and its id, without reading
    an artifact's bytes; :class:`GitMLError` when it exists nowhere there."""
    found = find(path, rev, repo)
    if found is None:
        where = {None: "in the work tree", INDEX: "in the index"}.get(rev, f"at {rev}")
        raise GitMLError(f"{path.strip('/')} does not exist {where}",
                         "check the path (and `git ml add` / `git add` it)")
    return found


def find(path: str, rev: str | None = None, repo: MLRepo | None = None) -> Located | None:
    """The one resolver of "this path at that revision" (None when it is not there):
    a gitml artifact (or a file inside a folder artifact) first, then a plain file
    tracked by Git, then (work tree only) the file itself. ``rev``: a revision,
    :data:`INDEX` for the staged version, None for the work tree."""
    from gitml.store.ids import hash_bytes, hash_file

    repo = repo or MLRepo.discover()
    rel = path.strip("/")
    commit = rev if rev in (None, INDEX) else repo.git.resolve(str(rev))
    try:
        art, p, member = _find(repo, str(repo.workdir / rel), commit)
    except PointerError:
        raise  # a damaged pointer is an error, not "no artifact here"
    except GitMLError:
        art = None
    if art is not None:
        oid = p.oid if member is None else _resolve_oid(repo, str(repo.workdir / rel), commit)
        return Located(rel, oid, "artifact", commit, member is None and p.kind == "dir")
    if commit is None:
        wt = repo.workdir / rel
        return Located(rel, hash_file(wt)[0], "file", None) if wt.is_file() else None
    blob = repo.git.read_blob(None if commit == INDEX else commit, rel)
    return None if blob is None else Located(rel, hash_bytes(blob), "git", commit)


def read_located(loc: Located, repo: MLRepo) -> bytes:
    """The bytes of ``loc``, verified against its id (artifacts fetched when missing)."""
    from gitml.errors import CorruptObjectError
    from gitml.store.ids import hash_bytes

    if loc.kind == "artifact":
        data = read_bytes(str(repo.workdir / loc.path), loc.rev, repo)
    elif loc.kind == "git":
        blob = repo.git.read_blob(None if loc.rev == INDEX else loc.rev, loc.path)
        if blob is None:
            raise GitMLError(f"{loc.path}: vanished from {loc.where}")
        data = blob
    else:
        data = (repo.workdir / loc.path).read_bytes()
    got = hash_bytes(data)
    if got != loc.oid:
        raise CorruptObjectError(f"{loc.path}: bytes hash to {got}, the recorded id is {loc.oid}",
                                 "run `git ml fsck`, then `git ml pull` to fetch a good copy")
    return data


def local_file(loc: Located, repo: MLRepo) -> Path | None:
    """A local file with the content of ``loc`` (the store copy of an artifact, the
    work-tree file), or None for a file that only Git holds (use :func:`read_located`)."""
    if loc.kind == "artifact":
        return materialize(str(repo.workdir / loc.path), loc.rev, repo)
    if loc.kind == "file":
        return repo.workdir / loc.path
    return None
