"""Commit walks and tree diffs for manifests (``git ml log/show/diff/lineage``).

Only the paths gitml cares about are looked at: pointer files (``*.gitml``) and the
committed manifest folder ``.gitml/``. libgit2 diffs trees by id, so unchanged
subtrees are skipped without being read, and blobs are read only when a caller asks for
the ones that changed. Parsed blobs can be cached by blob id by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pygit2

from gitml.errors import GitMLError

POINTER_SUFFIX = ".gitml"
MANIFEST_DIR = ".gitml/"

_BLOB = pygit2.enums.ObjectType.BLOB
_TREE = pygit2.enums.ObjectType.TREE
_SORT = pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME
_ZERO = "0" * 40


@dataclass
class Change:
    path: str
    status: str           # A added, M modified, D deleted
    old: str | None       # blob id before (None when added)
    new: str | None       # blob id after (None when deleted)


@dataclass
class CommitInfo:
    id: str
    parents: list[str]
    author: str
    email: str
    time: int
    offset: int
    message: str
    tree: str
    changes: list[Change] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return self.message.split("\n", 1)[0]


def interesting(path: str) -> bool:
    return path.endswith(POINTER_SUFFIX) or path.startswith(MANIFEST_DIR)


def _status(delta: pygit2.DiffDelta) -> str:
    ch = delta.status_char()
    return {"A": "A", "D": "D"}.get(ch, "M")


def tree_changes(raw: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree | None) -> list[Change]:
    """Changes to interesting paths between two trees (None: the empty tree)."""
    if old is None and new is None:
        return []
    if old is None:
        assert new is not None
        diff = new.diff_to_tree(swap=True)
    elif new is None:
        diff = old.diff_to_tree()
    else:
        diff = old.diff_to_tree(new)
    out: list[Change] = []
    for d in diff.deltas:
        path = d.new_file.path if d.status_char() != "D" else d.old_file.path
        if not interesting(path):
            continue
        old_id = str(d.old_file.id)
        new_id = str(d.new_file.id)
        out.append(Change(path, _status(d), None if old_id == _ZERO else old_id,
                          None if new_id == _ZERO else new_id))
    return out


def _info(c: pygit2.Commit) -> CommitInfo:
    return CommitInfo(id=str(c.id), parents=[str(p) for p in c.parent_ids], author=c.author.name,
                      email=c.author.email, time=int(c.commit_time), offset=int(c.commit_time_offset),
                      message=c.message, tree=str(c.tree_id))


def peel_commit(raw: pygit2.Repository, rev: str) -> pygit2.Commit:
    try:
        return raw.revparse_single(rev).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as e:
        raise GitMLError(f"unknown revision '{rev}'", "see `git log` or `git tag` for valid names") from e


def walk(raw: pygit2.Repository, rev: str = "HEAD", max_count: int | None = None,
         first_parent: bool = False, with_changes: bool = True) -> Iterator[CommitInfo]:
    """Commits reachable from ``rev``, newest first, with their interesting changes
    against the first parent."""
    start = peel_commit(raw, rev)
    walker = raw.walk(start.id, _SORT)
    if first_parent:
        walker.simplify_first_parent()
    for n, c in enumerate(walker):
        if max_count is not None and n >= max_count:
            return
        info = _info(c)
        if with_changes:
            parent_tree = c.parents[0].tree if c.parents else None
            if parent_tree is not None and parent_tree.id == c.tree_id:
                info.changes = []
            else:
                info.changes = tree_changes(raw, parent_tree, c.tree)
        yield info


def commit_info(raw: pygit2.Repository, rev: str, with_changes: bool = True) -> CommitInfo:
    c = peel_commit(raw, rev)
    info = _info(c)
    if with_changes:
        info.changes = tree_changes(raw, c.parents[0].tree if c.parents else None, c.tree)
    return info


def blob(raw: pygit2.Repository, blob_id: str | pygit2.Oid) -> bytes:
    obj = raw[pygit2.Oid(hex=blob_id) if isinstance(blob_id, str) and len(blob_id) == 40 else blob_id]
    if not isinstance(obj, pygit2.Blob):
        raise GitMLError(f"Git object {blob_id} is not a file")
    return bytes(obj.data)


def blob_id_at(tree: pygit2.Tree, path: str) -> str | None:
    """Id of the blob at ``path`` in ``tree`` (None when absent or not a file)."""
    try:
        obj = tree[path]
    except KeyError:
        return None
    return str(obj.id) if obj.type == _BLOB else None


def _tree_obj(raw: pygit2.Repository, tree_id: pygit2.Oid) -> pygit2.Tree:
    obj = raw[tree_id]
    assert isinstance(obj, pygit2.Tree)
    return obj




def _walk_blobs(raw: pygit2.Repository, rev: str,
                wanted: Callable[[str], bool]) -> Iterator[tuple[str, pygit2.Oid]]:
    """(path, blob id) of every blob at ``rev`` whose path ``wanted`` accepts."""
    stack: list[tuple[pygit2.Tree, str]] = [(peel_commit(raw, rev).tree, "")]
    while stack:
        t, prefix = stack.pop()
        for e in t:
            path = prefix + str(e.name)
            if e.type == _TREE:
                stack.append((_tree_obj(raw, e.id), path + "/"))
            elif e.type == _BLOB and wanted(path):
                yield path, e.id


def last_change(raw: pygit2.Repository, rev: str, path: str, limit: int = 5000) -> str | None:
    """The newest commit reachable from ``rev`` that changed ``path`` (None if none in ``limit``)."""
    start = peel_commit(raw, rev)
    walker = raw.walk(start.id, _SORT)
    walker.simplify_first_parent()
    for n, c in enumerate(walker):
        if n >= limit:
            return None
        here = blob_id_at(c.tree, path)
        before = blob_id_at(c.parents[0].tree, path) if c.parents else None
        if here != before:
            return str(c.id) if here is not None else None
    return None




MANIFEST_PREFIXES = (".gitml/runs/", ".gitml/checks/", ".gitml/env/")


def is_manifest_path(path: str) -> bool:
    return path.endswith(POINTER_SUFFIX) or path.startswith(MANIFEST_PREFIXES)


def tree_manifest_entries(raw: pygit2.Repository, rev: str) -> dict[str, str]:
    """path -> Git blob id of every pointer and manifest file at ``rev``."""
    return {path: str(oid) for path, oid in _walk_blobs(raw, rev, is_manifest_path)}


def index_manifest_entries(index: pygit2.Index) -> dict[str, str]:
    """path -> Git blob id of every staged pointer and manifest file."""
    return {e.path: str(e.id) for e in index if is_manifest_path(e.path)}


def staged_changes(raw: pygit2.Repository, index: pygit2.Index, head: str | None,
                   prefixes: tuple[str, ...]) -> list[tuple[str, bytes | None, bytes | None]]:
    """(path, bytes at HEAD or None, staged bytes or None) for files under ``prefixes``
    whose staged content differs from HEAD."""
    staged = {e.path: str(e.id) for e in index if e.path.startswith(prefixes)}
    before: dict[str, str] = {}
    if head:
        tree = peel_commit(raw, head).tree
        for prefix in prefixes:
            folder = prefix.rstrip("/")
            try:
                sub = tree[folder]
            except KeyError:
                continue
            if sub.type != _TREE:
                continue
            for e in _tree_obj(raw, sub.id):
                if e.type == _BLOB:
                    before[f"{folder}/{e.name}"] = str(e.id)
    out: list[tuple[str, bytes | None, bytes | None]] = []
    for path in sorted(set(staged) | set(before)):
        if staged.get(path) == before.get(path):
            continue
        out.append((path, blob(raw, before[path]) if path in before else None,
                    blob(raw, staged[path]) if path in staged else None))
    return out


def log_raw(workdir: str, rev: str = "HEAD", max_count: int | None = None, *,
            first_parent: bool = False, pathspecs: tuple[str, ...] = ()) -> Iterator[CommitInfo]:
    """Like :func:`walk` but through one ``git log --raw`` process: the fastest way to get
    the changed paths of many commits (1,000 commits in tens of milliseconds). Only the
    changes to interesting paths are kept; ``pathspecs`` also limits the commits listed.
    ``message`` holds the subject line only."""
    import subprocess

    args = ["git", "log", "--raw", "--no-renames", "--no-abbrev", "-z", "--diff-merges=first-parent",
            "--format=%x1e%H%x1f%P%x1f%at%x1f%an%x1f%ae%x1f%T%x1f%s"]
    if max_count is not None:
        args.append(f"-n{max_count}")
    if first_parent:
        args.append("--first-parent")
    args += [rev, "--"]
    args += list(pathspecs)
    proc = subprocess.run(args, cwd=workdir, capture_output=True)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitMLError(f"git log failed: {msg[-1] if msg else proc.returncode}",
                         "check the revision name with `git log`")
    out = proc.stdout.decode("utf-8", "replace")
    for chunk in out.split("\x1e")[1:]:
        head, _, rest = chunk.partition("\0")
        f = head.split("\x1f")
        if len(f) < 7:
            continue
        info = CommitInfo(id=f[0], parents=f[1].split() if f[1] else [], author=f[3], email=f[4],
                          time=int(f[2] or 0), offset=0, message=f[6], tree=f[5])
        parts = rest.lstrip("\n").split("\0")
        i = 0
        while i + 1 < len(parts):
            meta, path = parts[i], parts[i + 1]
            i += 2
            if not meta.startswith(":"):
                break
            fields = meta[1:].split()
            if len(fields) < 5 or not interesting(path):
                continue
            st = fields[4][:1]
            info.changes.append(Change(path, "A" if st == "A" else ("D" if st == "D" else "M"),
                                       None if fields[2] == _ZERO else fields[2],
                                       None if fields[3] == _ZERO else fields[3]))
        yield info


def staged_pointer_changes(raw: pygit2.Repository, index: pygit2.Index,
                           base: str | None) -> list[tuple[str, str, bytes | None]]:
    """(pointer path, A/M/D, staged bytes or None) for pointers the index changes
    relative to ``base`` (None: an empty tree, for a root commit). Works on indexes
    opened from a file (hooks get ``GIT_INDEX_FILE``), which libgit2 cannot diff."""
    staged = {e.path: str(e.id) for e in index if e.path.endswith(POINTER_SUFFIX)}
    before: dict[str, str] = {}
    if base is not None:
        before = {p: b for p, b in tree_manifest_entries(raw, base).items() if p.endswith(POINTER_SUFFIX)}
    out: list[tuple[str, str, bytes | None]] = []
    for path in sorted(set(staged) | set(before)):
        old, new = before.get(path), staged.get(path)
        if old == new:
            continue
        st = "A" if old is None else ("D" if new is None else "M")
        out.append((path, st, None if new is None else blob(raw, new)))
    return out


def first_parent(raw: pygit2.Repository, rev: str) -> str | None:
    c = peel_commit(raw, rev)
    return str(c.parent_ids[0]) if c.parent_ids else None
