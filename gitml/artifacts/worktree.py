"""Working-tree operations on artifacts: add, status, checkout, and listing pointers.

This is where the store meets Git: artifacts are hashed into the store, their pointers
written next to them and staged, and the real paths git-ignored.
"""

from __future__ import annotations

import contextlib
import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitml.artifacts import quick_status, watch_client
from gitml.artifacts import select as select_mod
from gitml.artifacts.folder_scan import check_name, quick_fingerprint, special_kind, walk
from gitml.artifacts.folder_scan import fingerprint as folder_fingerprint
from gitml.errors import (
    CorruptObjectError,
    GitMLError,
    ObjectMissingError,
    PointerError,
    UsageError,
)
from gitml.layout import COMMITTED_DIR, TMP_PREFIX, is_temp_name, owner_is_gone, temp_name
from gitml.repo import MLRepo
from gitml.store import pointer as ptr
from gitml.store.fsutil import atomic_write_bytes, atomic_write_text, file_lock
from gitml.store.ids import hash_bytes
from gitml.store.objects import StoredFile
from gitml.store.pointer import Pointer
from gitml.store.stat_cache import RACY_MARGIN_NS, trusted
from gitml.store.tree import TreeEntry
from gitml.store.tree import dumps as tree_dumps

TMP_MARK = TMP_PREFIX
#: what to do about content that is damaged or incomplete in the local store
REPAIR_HINT = ("run `git ml fetch --repair` to download good copies from the remote, "
               "or pull from a remote that has them")
ProgressFn = Callable[[int], None]


def default_jobs() -> int:
    return max(2, min(8, (os.cpu_count() or 2) * 2))


# ---------------------------------------------------------------------------- listing
def pointers(repo: MLRepo, rev: str | None = None) -> dict[str, Pointer]:
    """Artifact path → pointer, from the index (``rev`` None) or the tree of ``rev``."""
    blobs = (repo.git.index_blobs(ptr.SUFFIX) if rev is None
             else repo.git.tree_blobs(rev, ptr.SUFFIX))
    where = "index" if rev is None else rev
    return {ptr.artifact_path_for(p): ptr.parse(data, f"{p} ({where})") for p, data in blobs.items()}


def worktree_pointer(repo: MLRepo, artifact: str) -> Pointer | None:
    rel = ptr.pointer_path_for(artifact)
    try:
        data = repo.abspath(rel).read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise PointerError(f"{rel}: a folder where a pointer file should be",
                           f"move the folder away, then `git checkout -- {rel}`") from None
    except OSError as e:
        raise PointerError(f"{rel}: cannot read the pointer: {e.strerror}",
                           "check the file's permissions") from e
    return ptr.parse(data, rel)


def tracked_artifacts(repo: MLRepo, paths: Sequence[str] | None = None) -> list[str]:
    """Artifacts whose pointers are in the index, limited to what ``paths`` (work-tree
    relative) select (see :mod:`gitml.artifacts.select`; a path selecting nothing errors)."""
    arts = sorted(ptr.artifact_path_for(p) for p in repo.git.index_paths() if p.endswith(ptr.SUFFIX))
    return select_mod.select(arts, paths)


# ----------------------------------------------------------------------------- hashing
@dataclass
class _FileState:
    rel: str  # path relative to the artifact root (dir) or the work tree (file)
    abs: str
    st: os.stat_result
    oid: str | None = None


def _hash_and_store(repo: MLRepo, items: list[_FileState], *, store: bool, jobs: int,
                    progress: ProgressFn | None) -> int:
    """Fill in ``oid`` for items lacking one; store content when ``store``. Returns new bytes.

    Small files are done on this thread, many at a time (stored into packs): their cost is
    system calls, which extra threads only make contend. Large ones are read by ``jobs``
    threads, where reading and hashing do overlap."""
    todo = [i for i in items if i.oid is None]
    if not todo:
        return 0
    from gitml.store.objects import PACK_OBJECT_MAX

    small = [i for i in todo if i.st.st_size < PACK_OBJECT_MAX]
    large = [i for i in todo if i.st.st_size >= PACK_OBJECT_MAX]
    with _readable_errors():
        new = _store_small(repo, small, progress) if store else _hash_small(small, progress)
    return new + _hash_and_store_large(repo, large, store=store, jobs=jobs, progress=progress)


@contextlib.contextmanager
def _readable_errors() -> Iterator[None]:
    """A file that vanished or cannot be read while being added: one line, not a traceback."""
    try:
        yield
    except FileNotFoundError as e:
        raise GitMLError(f"{e.filename} disappeared while it was being added") from None
    except PermissionError as e:
        raise GitMLError(f"cannot read {e.filename}: permission denied",
                         "check the file's permissions") from None


def _store_small(repo: MLRepo, items: list[_FileState], progress: ProgressFn | None) -> int:
    new = 0

    def done(i: int, stored: StoredFile) -> None:
        nonlocal new
        items[i].oid = stored.oid
        new += stored.new_bytes
        if progress:
            progress(stored.size)

    repo.store.put_files([i.abs for i in items], [i.st.st_size for i in items], done)
    return new


def _hash_small(items: list[_FileState], progress: ProgressFn | None) -> int:
    for item in items:
        with open(item.abs, "rb", buffering=0) as f:
            item.oid = hash_bytes(f.read())
        if progress:
            progress(item.st.st_size)
    return 0


def _hash_and_store_large(repo: MLRepo, todo: list[_FileState], *, store: bool, jobs: int,
                          progress: ProgressFn | None) -> int:
    if not todo:
        return 0

    def work(batch: list[_FileState]) -> int:
        new = 0
        for item in batch:
            with _readable_errors():
                if store:
                    res = repo.store.put_file(item.abs)
                    item.oid = res.oid
                    new += res.new_bytes
                else:
                    from gitml.store.ids import hash_file

                    item.oid, _ = hash_file(item.abs)
            if progress:
                progress(item.st.st_size)
        return new

    # big files get a batch each, so the threads share them out evenly
    batches: list[list[_FileState]] = []
    current: list[_FileState] = []
    size = 0
    for item in todo:
        current.append(item)
        size += item.st.st_size
        if len(current) >= 64 or size >= 8 << 20:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    if len(batches) == 1 or jobs <= 1:
        return sum(work(b) for b in batches)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return sum(pool.map(work, batches))


def _mode(st: os.stat_result) -> int:
    return 0o100755 if st.st_mode & 0o111 else 0o100644


@dataclass
class _DirScan:
    entries: list[TreeEntry]
    files: list[_FileState]
    oid: str | None = None  # known tree id (from the fingerprint, or computed)
    #: the fingerprint, when it was recognised by the stat cache (not racy): a status
    #: snapshot may then prove the folder clean by it alone
    proven_fingerprint: str | None = None

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)


def _scan_dir(repo: MLRepo, rel: str, *, store: bool, jobs: int,
              progress: ProgressFn | None = None, need_entries: bool = True,
              expected_files: int = 0) -> tuple[_DirScan, int]:
    root = repo.abspath(rel)
    if not store and not need_entries:
        quick = quick_fingerprint(root, expected_files)
        if quick is not None:
            oid = repo.stat_cache.lookup_dir(rel, *quick)
            if oid is not None:
                return _DirScan([], [], oid, quick[0]), 0
    walked = walk(root, repo.workdir)
    fingerprint, newest = folder_fingerprint(walked)
    if not store and not need_entries:
        oid = repo.stat_cache.lookup_dir(rel, fingerprint, newest)
        if oid is not None:
            return _DirScan([], [], oid, fingerprint), 0
    cached = repo.stat_cache.load_prefix(rel + "/")
    files: list[_FileState] = []
    for r, p, st in walked:
        item = _FileState(r, p, st)
        row = cached.get(f"{rel}/{r}")
        if row is not None:
            oid = trusted(row, st)
            if oid is not None and (not store or repo.store.has_object(oid)
                                    or repo.store.has(oid)):
                item.oid = oid
        files.append(item)
    new = _hash_and_store(repo, files, store=store, jobs=jobs, progress=progress)
    entries = [TreeEntry(f.rel, f.oid or "", f.st.st_size, _mode(f.st)) for f in files]
    _record(repo, [(f"{rel}/{f.rel}", f) for f in files], cached)
    data = tree_dumps(entries)
    tree_oid = repo.store.put_bytes(data) if store else hash_bytes(data)
    repo.stat_cache.record_dir(rel, fingerprint, tree_oid)
    # what lookup_dir will accept next time, it may vouch for now (the same racy rule)
    proven = fingerprint if newest < time.time_ns() - RACY_MARGIN_NS else None
    return _DirScan(entries, files, tree_oid, proven), new


def _record(repo: MLRepo, items: Iterable[tuple[str, _FileState]],
            cached: dict[str, tuple[int, int, int, int, str, int]] | None = None) -> None:
    """Remember stats of hashed files; skip rows that are already current."""
    rows = []
    for key, f in items:
        if f.oid is None:
            continue
        if cached is not None:
            row = cached.get(key)
            if row is not None and trusted(row, f.st) == f.oid:
                continue
        rows.append((key, f.st, f.oid))
    repo.stat_cache.record_many(rows)


def current_oid(repo: MLRepo, rel: str, *, store: bool = False, jobs: int | None = None) -> str | None:
    """Content id of the working-tree file or folder ``rel`` (None when absent)."""
    path = repo.abspath(rel)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    jobs = jobs or default_jobs()
    if stat_mod.S_ISDIR(st.st_mode):
        scan, _ = _scan_dir(repo, rel, store=store, jobs=jobs, need_entries=False)
        return scan.oid
    oid = repo.stat_cache.lookup(rel, st)
    if oid is not None and (not store or repo.store.has(oid)):
        return oid
    item = _FileState(rel, str(path), st)
    _hash_and_store(repo, [item], store=store, jobs=1, progress=None)
    _record(repo, [(rel, item)])
    return item.oid


# --------------------------------------------------------------------------------- add
@dataclass
class AddResult:
    path: str
    pointer_path: str
    oid: str
    size: int
    kind: str
    changed: bool
    files: int | None = None
    new_bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "pointer": self.pointer_path, "oid": self.oid, "size": self.size,
                "kind": self.kind, "changed": self.changed, "files": self.files,
                "new_bytes": self.new_bytes}


def _validate_add_target(repo: MLRepo, rel: str, tracked: set[str], arts: set[str]) -> None:
    if rel == "":
        raise UsageError("cannot add the whole work tree; name files or folders")
    top = rel.split("/", 1)[0]
    if top in (".git", COMMITTED_DIR):
        raise UsageError(f"{rel}: gitml's own files cannot be added")
    check_name(rel)
    path = repo.abspath(rel)
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(repo.workdir):
            raise GitMLError(f"{rel} is a link to {target}, outside the repository")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise GitMLError(f"{rel}: no such file or folder") from None
    except OSError as e:
        raise GitMLError(f"{rel}: cannot read it: {e.strerror}", "check its permissions") from e
    if not (stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISDIR(st.st_mode)):
        raise GitMLError(f"{rel} is {special_kind(st)}; gitml versions regular files and folders")
    pointer_path = repo.abspath(ptr.pointer_path_for(rel))
    if pointer_path.is_dir() and not pointer_path.is_symlink():
        raise GitMLError(f"{ptr.pointer_path_for(rel)} is a folder where the pointer would go",
                         "move it away")
    if rel in tracked:
        raise GitMLError(f"{rel} is tracked by Git", f"run `git rm --cached {rel}` first, then add it")
    prefix = rel + "/"
    if path.is_dir() and any(t.startswith(prefix) for t in tracked):
        raise GitMLError(f"{rel} contains files tracked by Git",
                         f"run `git rm -r --cached {rel}` first, then add it")
    parts = rel.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if parent in arts:
            raise GitMLError(f"{rel} is inside the artifact {parent}",
                             f"run `git ml add {parent}` to update the whole folder")
    if path.is_dir() and any(a.startswith(prefix) for a in arts):
        raise GitMLError(f"{rel} contains artifacts that are added on their own",
                         "remove their pointers first (git rm <path>.gitml)")


def ignore_pattern(name: str) -> str:
    """The ``.gitignore`` line that matches exactly the file ``name`` beside it, escaped as
    Git's pattern syntax requires (glob characters, a leading ``#``/``!``, trailing
    spaces). Names with line breaks are refused before this (:func:`check_name`)."""
    escaped = name.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?").replace("[", "\\[")
    stripped = escaped.rstrip(" ")
    escaped = stripped + "\\ " * (len(escaped) - len(stripped))  # Git drops unescaped ones
    return "/" + escaped


def _ensure_ignored(repo: MLRepo, rel: str) -> str:
    """Add ``/name`` to the .gitignore beside the artifact; returns the .gitignore path.
    Under the work-tree lock: two adds in one folder must both keep their line."""
    parent, _, name = rel.rpartition("/")
    ignore_rel = f"{parent}/.gitignore" if parent else ".gitignore"
    ignore_path = repo.abspath(ignore_rel)
    line = ignore_pattern(name)
    with file_lock(repo.worktree_lock_path()):
        try:
            text = ignore_path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            text = ""
        except OSError as e:
            raise GitMLError(f"cannot read {ignore_rel}: {e.strerror}", "check its permissions") from e
        if line in text.splitlines():
            return ignore_rel
        if text and not text.endswith("\n"):
            text += "\n"
        atomic_write_bytes(ignore_path, (text + line + "\n").encode("utf-8", "surrogateescape"),
                           tmp_dir=repo.store.tmp_dir)
    return ignore_rel


def add(repo: MLRepo, paths: Sequence[Path | str], *, jobs: int | None = None,
        progress: ProgressFn | None = None) -> list[AddResult]:
    jobs = jobs or default_jobs()
    rels: list[str] = []
    for p in paths:
        rel = repo.relpath(p)
        if rel.endswith(ptr.SUFFIX):
            rel = ptr.artifact_path_for(rel)
        rel = rel.rstrip("/")
        if rel not in rels:
            rels.append(rel)
    tracked = set(repo.git.index_paths())
    arts = {ptr.artifact_path_for(t) for t in tracked if t.endswith(ptr.SUFFIX)}
    for rel in rels:
        _validate_add_target(repo, rel, tracked - {ptr.pointer_path_for(rel)}, arts - {rel})

    results: list[AddResult] = []
    to_stage: list[str] = []
    repo.store.sweep_tmp()
    with file_lock(repo.lock_path(), shared=True):
        for rel in rels:
            path = repo.abspath(rel)
            old = None
            try:
                old = worktree_pointer(repo, rel)
            except PointerError:
                old = None  # a damaged pointer is simply replaced
            if path.is_dir():
                scan, new = _scan_dir(repo, rel, store=True, jobs=jobs, progress=progress)
                oid = scan.oid
                assert oid is not None
                repo.stat_cache.mark_complete(oid)
                pointer = Pointer(oid, scan.size, "dir", len(scan.entries))
            else:
                st = path.stat()
                oid_cached = repo.stat_cache.lookup(rel, st)
                item = _FileState(rel, str(path), st,
                                  oid_cached if oid_cached and repo.store.has(oid_cached) else None)
                new = _hash_and_store(repo, [item], store=True, jobs=1, progress=progress)
                _record(repo, [(rel, item)])
                assert item.oid is not None
                pointer = Pointer(item.oid, st.st_size, "file")
            pointer_rel = ptr.pointer_path_for(rel)
            changed = old != pointer
            if changed:
                atomic_write_text(repo.abspath(pointer_rel), pointer.dumps(),
                                  tmp_dir=repo.store.tmp_dir)
            ignore_rel = _ensure_ignored(repo, rel)
            to_stage += [pointer_rel, ignore_rel]
            results.append(AddResult(rel, pointer_rel, pointer.oid, pointer.size, pointer.kind,
                                     changed, pointer.files, new))
        # staged under the lock, so a concurrent gc sees the new pointers in the index
        repo.git.stage(sorted(set(to_stage)))
    return results


# ------------------------------------------------------------------------------ status
@dataclass
class StatusEntry:
    path: str
    kind: str
    state: str  # clean | modified | missing | not-in-store | invalid-pointer
    in_store: bool
    detail: str = ""
    changes: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"path": self.path, "kind": self.kind, "state": self.state,
                                "in_store": self.in_store}
        if self.detail:
            d["detail"] = self.detail
        if self.changes:
            d["changes"] = self.changes
        return d


def content_in_store(repo: MLRepo, p: Pointer, *, trust_marks: bool = True) -> bool:
    """True when the whole content of ``p`` (every member of a folder, every chunk of a large
    file) is in the local store. A positive answer for multi-object content is remembered
    in the stat cache (gc clears it), so status does not stat thousands of objects each time;
    ``trust_marks=False`` (fsck) always looks."""
    if trust_marks and repo.stat_cache.is_complete(p.oid):
        return True
    if p.kind == "dir":
        if not repo.store.has_object(p.oid):
            return False
        try:
            ok = all(repo.store.has(e.oid) for e in repo.store.read_tree(p.oid))
        except GitMLError:
            return False
    else:
        if repo.store.has_object(p.oid):
            return True  # one object: nothing worth remembering
        ok = repo.store.has(p.oid)
    if ok:
        repo.stat_cache.mark_complete(p.oid)
    return ok


def pointer_size_problem(repo: MLRepo, p: Pointer) -> str | None:
    """What is wrong with the pointer's ``size`` (and ``files``) given the content in the
    local store, or None (also when the store cannot tell: content not here)."""
    store = repo.store
    checked = f"{p.oid} size {p.size} files {p.files}"  # a folder's tree is read once
    try:
        if p.kind == "dir":
            if repo.stat_cache.is_complete(checked):
                return None
            entries = store.read_tree(p.oid)
            actual, files = sum(e.size for e in entries), len(entries)
            if p.files != files:
                return f"says {p.files} files, the content has {files}"
            if actual == p.size:
                repo.stat_cache.mark_complete(checked)
        elif store.has_object(p.oid):
            actual = store.key_size(f"objects/{p.oid[:2]}/{p.oid[2:]}")
        else:
            actual, _ = store.read_chunklist(p.oid)
    except (GitMLError, OSError):
        return None
    if actual != p.size:
        return f"says size {p.size}, the content has {actual} bytes"
    return None


def status(repo: MLRepo, paths: Sequence[str] | None = None, *, jobs: int | None = None,
           watch: bool = True) -> list[StatusEntry]:
    """The state of each tracked artifact (all, or those ``paths`` select). A running
    watcher (``watch``) vouches for folders nothing touched since the last status; when
    every artifact is clean the stats that prove it are kept for the next, quick, status
    (:mod:`gitml.artifacts.quick_status`)."""
    started_ns = time.time_ns()
    jobs = jobs or default_jobs()
    arts = tracked_artifacts(repo, paths)
    watched = _ask_watcher(repo, arts) if watch else None
    out: list[StatusEntry] = []
    proof: list[dict[str, object]] | None = [] if not paths else None
    for art in arts:
        entry, evidence = _artifact_status(repo, art, jobs, watched)
        out.append(entry)
        if proof is not None and entry.state == "clean" and evidence is not None:
            proof.append(evidence)
        else:
            proof = None
    if not paths:
        if proof is not None:
            quick_status.write(repo, started_ns, proof)
        else:
            quick_status.drop(str(repo.ml_dir))
    return out


@dataclass
class _Watched:
    token: str
    unchanged: dict[str, str]  # artifact -> tree id recorded at a token the watcher vouches for


def _ask_watcher(repo: MLRepo, arts: list[str]) -> _Watched | None:
    folders = {art: path for art in arts if os.path.isdir(path := str(repo.abspath(art)))}
    if not folders:
        return None
    recorded = repo.stat_cache.watched_dirs(list(folders))
    answer = watch_client.ask(str(repo.ml_dir), {folders[a]: recorded.get(a, ("", ""))[0] for a in folders})
    if answer is None:
        return None
    token, states = answer
    return _Watched(token, {a: recorded[a][1] for a in folders
                           if states.get(folders[a]) == "unchanged" and a in recorded})


def _artifact_status(repo: MLRepo, art: str, jobs: int,
                     watched: _Watched | None) -> tuple[StatusEntry, dict[str, object] | None]:
    """One artifact's state, and when clean what proves it for a status snapshot."""
    try:
        p = worktree_pointer(repo, art)
    except PointerError as e:
        return StatusEntry(art, "?", "invalid-pointer", False, e.message), None
    if p is None:
        return StatusEntry(art, "?", "invalid-pointer", False, "pointer file deleted from the work tree"), None
    in_store = content_in_store(repo, p)
    problem = pointer_size_problem(repo, p) if in_store else None
    if problem:
        return StatusEntry(art, p.kind, "invalid-pointer", in_store, problem), None
    path = repo.abspath(art)
    if not path.exists():
        return StatusEntry(art, p.kind, "missing" if in_store else "not-in-store", in_store), None
    if p.kind == "dir":
        if not path.is_dir():
            return StatusEntry(art, p.kind, "modified", in_store, "a file where a folder was"), None
        evidence: dict[str, object] = {"path": art, "kind": "dir", "files": p.files or 0}
        oid = watched.unchanged.get(art) if watched is not None else None
        scan: _DirScan | None = None
        if oid is None:
            scan, _ = _scan_dir(repo, art, store=False, jobs=jobs, need_entries=False,
                                expected_files=p.files or 0)
            oid = scan.oid
            if watched is not None and oid is not None:
                repo.stat_cache.record_watched(art, watched.token, oid)
            if scan.proven_fingerprint is not None:
                evidence["quick"] = scan.proven_fingerprint
        if watched is not None:
            evidence["watch"] = watched.token
        if oid == p.oid:
            state = "clean" if in_store else "not-in-store"
            proven = "watch" in evidence or "quick" in evidence
            return StatusEntry(art, p.kind, state, in_store), evidence if proven else None
        if scan is None or not scan.entries:  # list what changed
            scan, _ = _scan_dir(repo, art, store=False, jobs=jobs)
        changes = _tree_changes(repo, p.oid, scan.entries)
        return StatusEntry(art, p.kind, "modified", in_store, changes=changes), None
    if path.is_dir():
        return StatusEntry(art, p.kind, "modified", in_store, "a folder where a file was"), None
    state = "clean" if current_oid(repo, art) == p.oid else "modified"
    if state == "clean" and path.stat().st_size != p.size:
        return StatusEntry(art, p.kind, "invalid-pointer", in_store,
                           f"says size {p.size}, the file has {path.stat().st_size} bytes"), None
    if state == "clean" and not in_store:
        state = "not-in-store"
    return StatusEntry(art, p.kind, state, in_store), {"path": art, "kind": "file"}


def _tree_changes(repo: MLRepo, old_oid: str, new: list[TreeEntry]) -> dict[str, list[str]]:
    try:
        old = {e.path: e for e in repo.store.read_tree(old_oid)}
    except GitMLError:
        return {}
    cur = {e.path: e for e in new}
    return {
        "added": sorted(set(cur) - set(old)),
        "deleted": sorted(set(old) - set(cur)),
        "modified": sorted(p for p in set(cur) & set(old)
                           if (cur[p].oid, cur[p].mode) != (old[p].oid, old[p].mode)),
    }


# ---------------------------------------------------------------------------- checkout
@dataclass
class CheckoutResult:
    restored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # modified and unsaved: not overwritten
    missing: list[str] = field(default_factory=list)  # content not in the store
    removed: list[str] = field(default_factory=list)
    #: path -> object id of content that is damaged or incomplete in the store: not written
    damaged: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"restored": self.restored, "unchanged": self.unchanged, "kept": self.kept,
                "missing": self.missing, "removed": self.removed, "damaged": self.damaged}

    def damage_error(self) -> CorruptObjectError | None:
        """One error naming what could not be restored from a damaged store, and the fix."""
        if not self.damaged:
            return None
        first, oid = next(iter(self.damaged.items()))
        more = f" and {len(self.damaged) - 1} more" if len(self.damaged) > 1 else ""
        return CorruptObjectError(
            f"{first} (object {oid}){more}: damaged or incomplete in the local store; "
            "not written", REPAIR_HINT)


def _needs_fetch(repo: MLRepo, p: Pointer) -> bool:
    return not content_in_store(repo, p)


def checkout(repo: MLRepo, paths: Sequence[str] | None = None, *, force: bool = False,
             link: str | None = None, fetch: bool = True, jobs: int | None = None) -> CheckoutResult:
    """Make the work tree hold what the pointers say. Fetches what the store lacks from the
    default remote when ``fetch`` and one is configured."""
    jobs = jobs or default_jobs()
    link = link if link is not None else str(repo.config.section("core").get("link", "copy"))
    if link not in ("copy", "reflink", "hardlink", "auto"):
        raise GitMLError(f"core.link must be copy, reflink or hardlink, not {link!r}")
    arts: list[tuple[str, Pointer]] = []
    for art in tracked_artifacts(repo, paths):
        p = worktree_pointer(repo, art)
        if p is None:
            continue
        arts.append((art, p))
    if fetch and any(_needs_fetch(repo, p) for _, p in arts):
        from gitml.artifacts.sync import fetch_artifacts

        remote_name = repo.config.default_remote()
        if remote_name:
            fetch_artifacts(repo, [(a, p) for a, p in arts if _needs_fetch(repo, p)],
                            remote_name=remote_name, jobs=None)
    result = CheckoutResult()
    repo.store.sweep_tmp()
    with file_lock(repo.lock_path(), shared=True):
        for art, p in arts:
            if _needs_fetch(repo, p):
                result.missing.append(art)
                continue
            _sweep_temp_files(repo, art)
            if p.kind == "dir":
                _checkout_dir(repo, art, p, result, force=force, link=link, jobs=jobs)
            else:
                _checkout_file(repo, art, p, result, force=force, link=link)
    return result


def _is_saved(repo: MLRepo, oid: str | None) -> bool:
    return oid is not None and repo.store.has(oid)


def _materialise_nocache(repo: MLRepo, rel: str, oid: str, mode: int, link: str,
                         made_dirs: set[str] | None = None) -> os.stat_result:
    dest = f"{repo.workdir}/{rel}"
    folder = dest.rpartition("/")[0]
    try:
        if made_dirs is None or folder not in made_dirs:
            os.makedirs(folder, exist_ok=True)
            if made_dirs is not None:
                made_dirs.add(folder)
        repo.store.copy_to(oid, dest, mode=mode, link=link)
        return os.stat(dest)
    except OSError as e:
        raise GitMLError(f"cannot write {rel}: {e.strerror}") from e


def _sweep_temp_files(repo: MLRepo, art: str) -> None:
    """Remove temp files a killed gitml left beside an artifact (only when the store's tmp
    folder is on another file system are they written there at all)."""
    folder = repo.abspath(art).parent
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(TMP_MARK) and is_temp_name(entry.name) and owner_is_gone(entry.name):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):  # a new folder being written whole
                    import shutil

                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)


def _checkout_file(repo: MLRepo, art: str, p: Pointer, result: CheckoutResult, *, force: bool,
                   link: str) -> None:
    path = repo.abspath(art)
    if path.is_dir() and not path.is_symlink():
        if not force:
            result.kept.append(art)
            return
        import shutil

        shutil.rmtree(path)
    cur = current_oid(repo, art) if path.exists() else None
    if cur == p.oid:
        result.unchanged.append(art)
        return
    if cur is not None and not force and not _is_saved(repo, cur):
        result.kept.append(art)
        return
    try:
        st = _materialise_nocache(repo, art, p.oid, 0o644, link)
    except (CorruptObjectError, ObjectMissingError):
        result.damaged[art] = p.oid  # the old file (if any) is left as it was
        return
    # copy_to hashed these bytes: the id recorded is the id of what is on disk
    repo.stat_cache.record_many([(art, st, p.oid)], written_by_us=True)
    result.restored.append(art)


def _checkout_dir(repo: MLRepo, art: str, p: Pointer, result: CheckoutResult, *, force: bool,
                  link: str, jobs: int) -> None:
    root = repo.abspath(art)
    if root.exists() and not root.is_dir():
        if not force and not _is_saved(repo, current_oid(repo, art)):
            result.kept.append(art)
            return
        root.unlink()
    try:
        wanted = {e.path: e for e in repo.store.read_tree(p.oid)}
    except CorruptObjectError:
        result.damaged[art] = p.oid
        return
    if repo.store.has_object(p.oid):
        problem = repo.store.verify_key(f"objects/{p.oid[:2]}/{p.oid[2:]}")
        if problem:  # a damaged tree may still parse: never restore from it
            result.damaged[art] = p.oid
            return
    if not root.exists():
        _checkout_new_dir(repo, art, list(wanted.values()), result)
        return
    have: dict[str, _FileState] = {}
    if root.is_dir():
        scan, _ = _scan_dir(repo, art, store=False, jobs=jobs, need_entries=False)
        if scan.oid == p.oid:
            result.unchanged.append(art)
            return
        if not scan.entries and not scan.files:
            scan, _ = _scan_dir(repo, art, store=False, jobs=jobs)
        have = {f.rel: f for f in scan.files}
    changed = False
    for rel, f in have.items():
        if rel in wanted:
            continue
        if force or _is_saved(repo, f.oid):
            os.unlink(f.abs)
            result.removed.append(f"{art}/{rel}")
            changed = True
        else:
            result.kept.append(f"{art}/{rel}")
    todo = []
    for rel, e in wanted.items():
        cur = have.get(rel)
        if cur is not None and cur.oid == e.oid:
            if _mode(cur.st) != e.mode:
                os.chmod(cur.abs, e.mode & 0o777)  # mode-only change
            continue
        if cur is not None and not force and not _is_saved(repo, cur.oid):
            result.kept.append(f"{art}/{rel}")
            continue
        todo.append(e)

    def work(batch: list[TreeEntry]) -> list[tuple[str, os.stat_result, str]]:
        rows = []
        for e in batch:
            rel = f"{art}/{e.path}"
            try:
                st = _materialise_nocache(repo, rel, e.oid, e.mode, link, made_dirs)
            except (CorruptObjectError, ObjectMissingError):
                result.damaged[rel] = e.oid  # dict assignment is atomic across threads
                continue
            rows.append((rel, st, e.oid))
        return rows

    batches = [todo[i:i + 64] for i in range(0, len(todo), 64)]
    rows: list[tuple[str, os.stat_result, str]] = []
    made_dirs: set[str] = set()  # shared by the threads: set.add is atomic
    if len(batches) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for r in pool.map(work, batches):
                rows.extend(r)
    else:
        for b in batches:
            rows.extend(work(b))
    repo.stat_cache.record_many(rows, written_by_us=True)  # one transaction, owning thread
    _prune_empty_dirs(root)
    if any(k.startswith(art + "/") for k in result.damaged):
        return  # reported as damaged, not as restored
    if todo or changed:
        result.restored.append(art)
    else:
        result.unchanged.append(art)


def _checkout_new_dir(repo: MLRepo, art: str, entries: list[TreeEntry],
                      result: CheckoutResult) -> None:
    """A folder that is not there at all is written whole into a temporary sibling and
    renamed into place once: each file costs an open, a write and a close (no temp file
    and rename per file), in the order the objects lie in the store, and a killed
    checkout leaves no half-written folder (the sibling is swept by name)."""
    root = repo.abspath(art)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = root.parent / temp_name(root.name)
    os.mkdir(tmp_root)
    base = str(tmp_root)
    made: set[str] = {base}
    store = repo.store
    rows: list[tuple[str, os.stat_result, str]] = []
    try:
        for e in store.in_storage_order(entries):
            rel = f"{art}/{e.path}"
            dest = f"{base}/{e.path}"
            folder = dest.rpartition("/")[0]
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            try:
                st = store.write_verified(e.oid, dest, e.mode)
            except (CorruptObjectError, ObjectMissingError):
                result.damaged[rel] = e.oid
                continue
            rows.append((rel, st, e.oid))
        os.rename(tmp_root, root)
    except BaseException as e:
        import shutil

        shutil.rmtree(tmp_root, ignore_errors=True)
        if isinstance(e, OSError):
            raise GitMLError(f"cannot write {art}: {e.strerror}") from e
        raise
    repo.stat_cache.record_many(rows, written_by_us=True)  # a rename keeps inodes and times
    if not any(k.startswith(art + "/") for k in result.damaged):
        result.restored.append(art)


def _prune_empty_dirs(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        if dirpath != str(root) and not dirnames and not filenames:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
