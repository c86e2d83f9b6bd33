"""Garbage collection and integrity checks of the local store and remotes."""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gitml.errors import GitMLError, ObjectMissingError
from gitml.layout import STORE_CHUNKED, STORE_OBJECTS, is_temp_name, owner_is_gone
from gitml.repo import MLRepo
from gitml.store import pointer as ptr
from gitml.store.fsutil import file_lock
from gitml.store.keys import CHUNKED, OBJECTS, key_for, parse_key
from gitml.store.local_packs import sweep_unindexed
from gitml.store.remote import Remote

STALE_TMP_SECONDS = 3600


@dataclass
class GcResult:
    where: str
    reachable: int = 0
    unreachable: list[str] = field(default_factory=list)
    bytes: int = 0
    deleted: bool = False
    broken_pointers: list[str] = field(default_factory=list)
    recent: int = 0  # unreachable but younger than the grace period: kept
    repacked: int = 0  # remote packs rewritten without their dead objects
    deleted_packs: int = 0  # remote packs with no live object
    kept_in_packs: int = 0  # dead objects left in packs that are mostly live
    temp_removed: int = 0  # partial uploads of killed pushes swept from a folder remote

    def to_dict(self) -> dict[str, object]:
        return {"where": self.where, "reachable_objects": self.reachable, "kept_recent": self.recent,
                "unreachable_objects": len(self.unreachable), "bytes": self.bytes,
                "deleted": self.deleted, "broken_pointers": self.broken_pointers,
                "packs_repacked": self.repacked, "packs_deleted": self.deleted_packs,
                "kept_in_live_packs": self.kept_in_packs, "temp_removed": self.temp_removed}


def reachable_keys(repo: MLRepo) -> tuple[set[str], list[str], list[str]]:
    """Store keys reachable from any ref, stash entry, worktree HEAD or index.

    Returns (keys, pointers whose content is not in the local store, broken pointers)."""
    keys: set[str] = set()
    incomplete: list[str] = []
    broken: list[str] = []
    for data in repo.git.reachable_blobs(ptr.SUFFIX):
        try:
            p = ptr.parse(data, "pointer")
        except GitMLError as e:
            broken.append(e.message)
            continue
        try:
            keys.update(repo.store.keys_of(p.oid, p.kind))
        except GitMLError:
            incomplete.append(p.oid)
            # keep whatever part of it is here
            keys.update({key_for(OBJECTS, p.oid), key_for(CHUNKED, p.oid)})
    return keys, incomplete, broken


def gc_local(repo: MLRepo, *, dry_run: bool) -> GcResult:
    res = GcResult("local store")
    with file_lock(repo.lock_path(), shared=False):
        keys, _incomplete, broken = reachable_keys(repo)
        if broken:
            # a pointer we cannot read might protect objects: refuse rather than guess
            raise GitMLError(f"gc stopped: {len(broken)} reachable pointer(s) cannot be parsed "
                             f"({broken[0]})", "fix or remove those commits' pointers first")
        res.reachable = len(keys)
        for key in repo.store.iter_keys():
            if key not in keys:
                res.unreachable.append(key)
                with contextlib.suppress(ObjectMissingError):
                    res.bytes += repo.store.key_size(key)
        if not dry_run:
            repo.store.remove_keys(res.unreachable)  # packs holding dead objects are rewritten
            repo.store.consolidate_packs()
            repo.stat_cache.clear_complete()
            _clean_tmp(repo)
            res.deleted = True
    return res


def _clean_tmp(repo: MLRepo) -> None:
    """Remove partial writes left by killed processes (older than an hour, so never one
    that is still being written): in the store's tmp folder and its fan-out folders."""
    now = time.time()
    store = repo.store
    folders = [store.tmp_dir]
    for kind in (STORE_OBJECTS, STORE_CHUNKED):
        base = store.root / kind
        if base.is_dir():
            folders += [Path(e.path) for e in os.scandir(base) if e.is_dir()]
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if not is_temp_name(entry.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat().st_mtime > STALE_TMP_SECONDS or owner_is_gone(entry.name):
                    os.unlink(entry.path)
    # a pack whose writer was killed between renaming it and its index: never read
    sweep_unindexed(store.packs, int(STALE_TMP_SECONDS * 1e9))


REMOTE_GRACE_SECONDS = 14 * 24 * 3600  # like `git gc`'s prune expiry


def gc_remote(repo: MLRepo, remote: Remote, *, dry_run: bool,
              grace_seconds: float = REMOTE_GRACE_SECONDS) -> GcResult:
    """Objects on the remote that no local ref reaches. Objects younger than the grace period
    are kept: another clone may have pushed them for commits this clone has not fetched.
    A pack with no live object is deleted; one that is mostly dead is rewritten."""
    from gitml.artifacts.sync import known_index, pack_cache_dir
    from gitml.store import packs as packs_mod

    res = GcResult(f"remote {remote.name}")
    keys, incomplete, broken = reachable_keys(repo)
    if broken or incomplete:
        # Without the chunk lists and trees locally we cannot know what a pointer protects.
        raise GitMLError(
            f"remote gc stopped: {len(incomplete)} reachable artifact(s) are not complete in the "
            f"local store and {len(broken)} pointer(s) cannot be read",
            "run `git ml fetch --all-commits` first")
    res.reachable = len(keys)
    cutoff = time.time() - grace_seconds
    pack_files: dict[str, tuple[int, float]] = {}  # key -> (size, modified)
    loose_dead: list[str] = []
    for key, size, modified in remote.iter_key_info():
        if packs_mod.parse_pack_key(key) is not None:
            pack_files[key] = (size, modified)
            continue
        if parse_key(key) is None or key in keys:
            continue
        if modified > cutoff:  # unknown times (0.0) count as old
            res.recent += 1
            continue
        loose_dead.append(key)
        res.bytes += size
    res.unreachable += loose_dead
    index = packs_mod.PackIndex(remote, pack_cache_dir(repo, remote))
    if pack_files:
        index.refresh(listing=pack_files)
    # an index without its pack is useless; a pack without its index is a push cut short
    # (a young one may still be awaiting its index)
    lost = [packs_mod.index_key(p) for p in index.dangling]
    lost += [packs_mod.pack_key(p) for p in index.orphans
             if pack_files[packs_mod.pack_key(p)][1] <= cutoff]
    res.bytes += sum(pack_files[k][0] for k in lost)
    verdicts: list[packs_mod.PackVerdict] = []
    for pack_id, entries in sorted(index.by_pack.items()):
        pack_size, modified = pack_files[packs_mod.pack_key(pack_id)]
        v = packs_mod.judge_pack(pack_id, entries, pack_size,
                                 pack_files[packs_mod.index_key(pack_id)][0], keys,
                                 old=modified <= cutoff)
        if v.action == "keep":
            if modified > cutoff:
                res.recent += len(v.dead)
            else:
                res.kept_in_packs += len(v.dead)
            continue
        verdicts.append(v)
        res.unreachable += v.dead
        res.bytes += v.freed
        res.repacked += v.action == "repack"
        res.deleted_packs += v.action == "delete"
    if not dry_run:
        remote.delete_many(loose_dead)
        for v in verdicts:
            if v.action == "repack":
                packs_mod.repack(remote, index, v.pack, v.live)
            else:
                packs_mod.delete_pack(remote, index, v.pack)
        remote.delete_many(lost)
        known_index(repo, remote).forget(res.unreachable)
        res.temp_removed = remote.sweep_temp(time.time() - STALE_TMP_SECONDS)
        res.deleted = True
    return res


@dataclass
class FsckResult:
    checked: int = 0
    damaged: dict[str, str] = field(default_factory=dict)  # bytes that do not hash
    incomplete: dict[str, str] = field(default_factory=dict)  # intact chunk lists, chunks absent
    missing: list[str] = field(default_factory=list)  # artifacts of the index not in the store
    broken_pointers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"checked": self.checked, "damaged": self.damaged, "incomplete": self.incomplete,
                "missing": self.missing, "broken_pointers": self.broken_pointers, "ok": self.ok}

    @property
    def ok(self) -> bool:
        return not (self.damaged or self.incomplete or self.missing or self.broken_pointers)


def _check_key(repo: MLRepo, key: str) -> tuple[str, str] | None:
    """(verdict, detail) for a damaged or incomplete key, None when it is intact."""
    store = repo.store
    parsed = parse_key(key)
    if parsed is not None and parsed[0] == CHUNKED:
        try:
            absent = store.missing_chunks(parsed[1])
        except GitMLError as e:  # the list itself does not parse
            return "damaged", e.message
        except OSError as e:
            return "damaged", f"cannot read it: {e.strerror}"
        if absent:
            return "incomplete", f"{absent} chunk(s) not downloaded yet"
    problem = store.verify_key(key)
    return ("damaged", problem) if problem else None


def fsck(repo: MLRepo, *, jobs: int = 4, advance: object = None) -> FsckResult:
    res = FsckResult()
    keys = list(repo.store.iter_keys())
    res.checked = len(keys)

    def check(key: str) -> tuple[str, tuple[str, str] | None]:
        verdict = _check_key(repo, key)
        if callable(advance):
            advance(1)
        return key, verdict

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for key, verdict in pool.map(check, keys):
            if verdict is not None:
                (res.damaged if verdict[0] == "damaged" else res.incomplete)[key] = verdict[1]
    for pack_id, why in repo.store.packs.damaged.items():
        res.damaged[f"packs/{pack_id}.idx"] = why
    from gitml.artifacts import worktree

    for path in worktree.tracked_artifacts(repo):
        try:
            p = worktree.worktree_pointer(repo, path)
        except GitMLError as e:
            res.broken_pointers.append(e.message)
            continue
        if p is None:
            continue
        if not worktree.content_in_store(repo, p, trust_marks=False):
            res.missing.append(path)
            continue
        problem = worktree.pointer_size_problem(repo, p)
        if problem:
            res.broken_pointers.append(f"{path}.gitml: {problem}")
    return res


def fsck_remote(repo: MLRepo, remote: Remote, *, jobs: int) -> dict[str, str]:
    """Read back every object on ``remote`` (loose and in packs); ``{key: problem}`` for
    those whose bytes do not match their id."""
    from gitml.artifacts.sync import pack_index
    from gitml.store.transfer import scan_remote

    packs = pack_index(repo, remote)
    packs.refresh(jobs)
    loose = [k for k in remote.iter_keys() if parse_key(k) is not None]
    return scan_remote(remote, loose + sorted(packs.entries), packs=packs, jobs=jobs)
