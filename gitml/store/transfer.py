"""Moving artifacts between the local store and a remote.

- Only what the other side lacks moves. What a remote is known to hold is remembered in
  ``<ml dir>/remotes/<id>.known`` (keyed by the remote's identity) so a no-op push costs no request per object; the rest
  is asked in one batched ``has_many``.
- Transfers run in a pool of ``jobs`` threads. Leaf objects (chunks, files) go up before
  the trees and chunk lists that name them, so a remote never lists content it lacks.
- Every downloaded key is verified against its id before it is renamed into the store; a
  chunk list is verified by reassembling the file. Nothing unverified is ever kept.
- Each object lands atomically, so an interrupted push or pull resumes where it stopped.
- Small objects travel in packs (:mod:`gitml.store.packs`): one PUT per ~16 MiB going up,
  ranged GETs that read neighbours together coming down.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from gitml.errors import CorruptObjectError, GitMLError, ObjectMissingError
from gitml.store import chunking, tree
from gitml.store import packs as packs_mod
from gitml.store.fsutil import atomic_write_bytes
from gitml.store.keys import CHUNKED, OBJECTS, key_for, parse_key
from gitml.store.objects import ObjectStore, check_blob
from gitml.store.packs import PackIndex
from gitml.store.pointer import Pointer
from gitml.store.remote import DEFAULT_PACK_BYTES, Remote

Artifact = tuple[str, Pointer]
#: bytes of pack ranges coming down held in memory at once
IN_FLIGHT_BYTES = 64 * 1024 * 1024


def cap_malloc_arenas() -> None:
    """Called by the fetch and pull commands only (it changes the whole process's
    allocator, so a library read through ``gitml.open`` must not reach it).

    glibc gives each thread its own heap ("arena") and keeps what was freed there, so 16
    threads handing 16 MiB buffers around held 340 MiB in a 1 GiB pull. Two arenas keep
    it near 160 MiB at no cost in speed. Elsewhere (musl, macOS) this is a no-op."""
    global _arenas_capped
    if _arenas_capped or not sys.platform.startswith("linux"):
        return
    _arenas_capped = True
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX


_arenas_capped = False


class ByteBudget:
    """Bounds the bytes that downloads in flight hold in memory: a ranged read of a pack is
    whole in memory until its objects are verified and stored, so without a bound ``-j 16``
    with 16 MiB reads would hold 256 MiB. (Packs go up streamed from the store's files.)"""

    def __init__(self, limit: int = IN_FLIGHT_BYTES) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, n: int) -> Iterator[None]:
        with self._cond:
            while self.used and self.used + n > self.limit:  # one alone may exceed the limit
                self._cond.wait()
            self.used += n
        try:
            yield
        finally:
            with self._cond:
                self.used -= n
                self._cond.notify_all()
Advance = Callable[[int], None]


@dataclass
class TransferStats:
    remote: str
    transferred: int = 0
    bytes: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    repaired: int = 0  # damaged copies replaced (local ones on fetch, remote ones on push)

    def to_dict(self) -> dict[str, object]:
        return {"remote": self.remote, "transferred": self.transferred, "bytes": self.bytes,
                "already_there": self.skipped, "failed": self.failed, "repaired": self.repaired}


class KnownIndex:
    """Keys a remote is known to hold (append-only text file, one key per line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.keys: set[str] = set()
        with contextlib.suppress(FileNotFoundError):
            self.keys = set(path.read_text().split())

    def add(self, keys: Iterable[str]) -> None:
        new = [k for k in keys if k not in self.keys]
        if not new:
            return
        with self._lock:
            self.keys.update(new)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:  # O_APPEND: concurrent appends stay line-whole
                f.write("".join(k + "\n" for k in new))

    def forget(self, keys: Iterable[str] | None = None) -> None:
        with self._lock:
            if keys is None:
                self.keys.clear()
            else:
                self.keys.difference_update(keys)
            # a unique temp name: two processes may forget at once (the last one wins,
            # which only costs a question to the remote later)
            atomic_write_bytes(self.path, "".join(k + "\n" for k in sorted(self.keys)).encode())


T = TypeVar("T")


def _run_pool(jobs: int, items: Sequence[T], fn: Callable[[T], None]) -> list[tuple[T, Exception]]:
    """Run ``fn`` over ``items`` in a pool; collect failures instead of stopping at the first,
    but stop early on Ctrl-C."""
    errors: list[tuple[T, Exception]] = []
    if not items:
        return errors
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(items)))) as pool:
        futures: dict[Future[None], T] = {pool.submit(fn, k): k for k in items}
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    exc = f.exception()
                    if exc is not None:
                        if not isinstance(exc, Exception):
                            raise exc
                        errors.append((futures[f], exc))
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            raise
    return errors


def _raise_first(errors: Sequence[tuple[str, Exception]], verb: str, remote: Remote) -> None:
    if not errors:
        return
    key, exc = errors[0]
    more = f" (and {len(errors) - 1} more failures)" if len(errors) > 1 else ""
    if isinstance(exc, GitMLError):
        raise type(exc)(exc.message + more, exc.hint) from exc
    raise GitMLError(f"{verb} {key} with remote '{remote.name}' failed: {exc}{more}",
                     "run the command again; finished objects are not redone") from exc


def present_keys(remote: Remote, packs: PackIndex | None, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` the remote holds, in its packs or loose (one batched ``has_many``
    for the keys no pack holds)."""
    found: set[str] = set()
    rest = list(keys)
    if packs is not None and rest:
        if not packs.refreshed:
            packs.refresh()
        found = {k for k in rest if k in packs.entries}
        rest = [k for k in rest if k not in found]
    if rest:
        found |= remote.has_many(rest)
    return found


def learn_presence(remote: Remote, known: KnownIndex, keys: Sequence[str], *,
                   verify: bool = False, packs: PackIndex | None = None) -> None:
    """Ask the remote about the keys ``known`` does not list yet, or about all of them when
    ``verify``; afterwards ``known.keys`` is what the remote has."""
    unknown = list(keys) if verify else [k for k in dict.fromkeys(keys) if k not in known.keys]
    if not unknown:
        return
    if verify and packs is not None:
        packs.refresh()
    present = present_keys(remote, packs, unknown)
    if verify:
        known.forget([k for k in unknown if k not in present])
    known.add(present)


# ---------------------------------------------------------------------------------- push
def artifact_keys(store: ObjectStore, arts: Iterable[Artifact]) -> tuple[list[str], list[str], list[str]]:
    """(leaf keys, root keys, artifacts missing locally) for the given artifacts."""
    leaves: dict[str, None] = {}
    roots: dict[str, None] = {}
    missing: list[str] = []
    for path, p in arts:
        try:
            keys = store.keys_of(p.oid, p.kind)
        except ObjectMissingError:
            missing.append(path)
            continue
        for k in keys:
            parsed = parse_key(k)
            is_root = k.startswith(CHUNKED) or (p.kind == "dir" and parsed is not None
                                                and parsed[1] == p.oid)
            (roots if is_root else leaves)[k] = None
    for k in roots:
        leaves.pop(k, None)
    return list(leaves), list(roots), missing


def _local_sizes(store: ObjectStore, keys: Sequence[str]) -> list[tuple[str, int]]:
    sized: list[tuple[str, int]] = []
    absent: list[str] = []
    for k in keys:
        try:
            sized.append((k, store.key_size(k)))
        except ObjectMissingError:
            absent.append(k)
    if absent:
        raise ObjectMissingError(
            f"{len(absent)} object(s) to upload are missing from the local store, e.g. {absent[0]}")
    return sized


Batch = tuple[tuple[str, int], ...]  # (store key, size) of what goes up in one request


def _upload_batches(store: ObjectStore, keys: Sequence[str], pack_bytes: int) -> list[Batch]:
    """Cut keys into upload batches: one key alone (a PUT of its own) or several that go
    up as one pack. An object of half a pack or more gains nothing from packing."""
    sized = _local_sizes(store, keys)
    if pack_bytes <= 0:
        return [(ks,) for ks in sized]
    alone: list[Batch] = [(ks,) for ks in sized if ks[1] >= pack_bytes // 2]
    small = [ks for ks in sized if ks[1] < pack_bytes // 2]
    return alone + [tuple(b) for b in packs_mod.plan_batches(small, pack_bytes)]


def push(store: ObjectStore, remote: Remote, arts: Sequence[Artifact], *, known: KnownIndex,
         jobs: int | None, advance: Advance | None = None, verify: bool = False,
         packs: PackIndex | None = None, pack_bytes: int = DEFAULT_PACK_BYTES,
         ) -> TransferStats:
    """Upload what ``remote`` lacks: small objects in packs of about ``pack_bytes`` (when
    ``packs`` is given), the rest one by one. ``verify`` asks the remote about every key
    instead of trusting the known-keys index (after someone else's gc, or a lost bucket)."""
    leaves, roots, missing = artifact_keys(store, arts)
    if missing:
        raise ObjectMissingError(
            f"{len(missing)} artifact(s) are not in the local store, e.g. {missing[0]}")
    stats = TransferStats(remote.name)
    all_keys = leaves + roots
    jobs = jobs or remote.default_jobs
    learn_presence(remote, known, all_keys, verify=verify, packs=packs)
    if verify:
        stats.repaired = repair_remote(store, remote, [k for k in all_keys if k in known.keys],
                                       packs=packs, jobs=jobs)
    todo_leaves = [k for k in leaves if k not in known.keys]
    todo_roots = [k for k in roots if k not in known.keys]
    stats.skipped = len(all_keys) - len(todo_leaves) - len(todo_roots)
    lock = threading.Lock()
    done_batch: list[str] = []

    def finished(keys: Sequence[str], size: int) -> None:
        with lock:
            stats.transferred += len(keys)
            stats.bytes += size
            done_batch.extend(keys)
            if len(done_batch) >= 256:
                known.add(done_batch)
                done_batch.clear()
        if advance:
            advance(size)

    def upload(batch: Batch) -> None:
        keys = [k for k, _ in batch]
        total = sum(size for _, size in batch)
        for k in keys:
            check_local(store, k)
        if len(batch) == 1:
            put_object(store, remote, keys[0])
        else:
            assert packs is not None
            files = [(k, *store.segment_of(k)[:2], size) for k, size in batch]
            pack_id, index = packs_mod.upload_pack(remote, files, packs.orphans)
            packs.add(pack_id, index)
        finished(keys, total)

    pack_bytes = pack_bytes if packs is not None else 0
    try:
        for group in (todo_leaves, todo_roots):
            batches = _upload_batches(store, group, pack_bytes)
            errors = _run_pool(jobs, batches, upload)
            if errors:
                stats.failed = [k for b, _ in errors for k, _ in b]
                _raise_first([(_label(b), e) for b, e in errors], "uploading", remote)
    finally:
        known.add(done_batch)
    return stats


def put_object(store: ObjectStore, remote: Remote, key: str) -> None:
    """Upload one object as a key of its own, from its file or its local pack."""
    if store.is_loose(key):
        remote.put_file(key, store.path_of_key(key))
    else:
        remote.put_bytes(key, store.read_key(key))


def check_local(store: ObjectStore, key: str) -> None:
    """Refuse to send a local object whose bytes do not hash to its id (read now, then
    again from the page cache by the upload)."""
    problem = store.verify_key(key, whole=False)
    if problem:
        raise CorruptObjectError(f"{key} is damaged in the local store ({problem}); "
                                 "it was not uploaded")


def scan_remote(remote: Remote, keys: Sequence[str], *, packs: PackIndex | None,
                jobs: int) -> dict[str, str]:
    """Download and check each of ``keys`` the remote holds (loose, or in a pack: the whole
    pack is read); returns ``{key: problem}`` for the damaged ones."""
    wanted = set(keys)
    loose = [k for k in keys if packs is None or packs.locate(k) is None]
    in_packs = sorted({e.pack for k in keys if packs is not None and (e := packs.locate(k))})
    damaged: dict[str, str] = {}
    budget = ByteBudget()

    def check_loose(key: str) -> None:
        try:
            data = remote.get_range(key)
        except ObjectMissingError:
            damaged[key] = "missing"
            return
        problem = check_blob(key, data)
        if problem:
            damaged[key] = problem

    def check_pack(pack_id: str) -> None:
        assert packs is not None
        entries = sorted(packs.by_pack.get(pack_id, {}).items(), key=lambda kv: kv[1].offset)
        size = sum(e.size for _, e in entries)
        with budget.hold(size):
            try:
                data = remote.get_range(packs_mod.pack_key(pack_id))
            except ObjectMissingError:
                data = b""
            for key, e in entries:
                blob = data[e.offset:e.offset + e.size]
                problem = check_blob(key, blob) if len(blob) == e.size else "the pack is cut short"
                if problem and key in wanted:
                    damaged[key] = f"{problem} (in pack {pack_id})"

    errors: list[tuple[str, Exception]] = []
    errors += _run_pool(jobs, loose, check_loose)
    errors += _run_pool(jobs, in_packs, check_pack)
    _raise_first(errors, "checking", remote)
    return damaged


def repair_remote(store: ObjectStore, remote: Remote, keys: Sequence[str], *,
                  packs: PackIndex | None, jobs: int) -> int:
    """Replace damaged copies of ``keys`` on the remote with verified local ones: a loose
    object is uploaded again; a pack is rewritten under its own id (the id fixes its
    bytes) with its damaged members taken from the local store. Returns how many."""
    if packs is not None and not packs.refreshed:
        packs.refresh(jobs)
    damaged = scan_remote(remote, keys, packs=packs, jobs=jobs)
    if not damaged:
        return 0
    for key in damaged:
        if not store.has_key(key):
            raise CorruptObjectError(
                f"{key} is damaged on remote '{remote.name}' ({damaged[key]}) and this clone "
                "has no copy of it", "push it from a clone that has it")
        check_local(store, key)
    by_pack: dict[str, list[str]] = {}
    for key in damaged:
        entry = packs.locate(key) if packs is not None else None
        if entry is None:
            put_object(store, remote, key)
        else:
            by_pack.setdefault(entry.pack, []).append(key)
    for pack_id in by_pack:
        assert packs is not None
        _rewrite_pack(store, remote, packs, pack_id)
    return len(damaged)


def _rewrite_pack(store: ObjectStore, remote: Remote, packs: PackIndex, pack_id: str) -> None:
    entries = sorted(packs.by_pack[pack_id].items(), key=lambda kv: kv[1].offset)
    try:
        data = remote.get_range(packs_mod.pack_key(pack_id))
    except ObjectMissingError:
        data = b""
    parts: list[tuple[str, bytes | memoryview]] = []
    for key, e in entries:
        blob: bytes | memoryview = data[e.offset:e.offset + e.size]
        if len(blob) != e.size or check_blob(key, blob):
            if not store.has_key(key):
                raise CorruptObjectError(
                    f"{key} in pack {pack_id} on remote '{remote.name}' is damaged and this "
                    "clone has no copy of it", "push it from a clone that has it")
            check_local(store, key)
            blob = store.read_key(key)
        parts.append((key, blob))
    new_id, pack, _ = packs_mod.build_pack(parts)
    assert new_id == pack_id  # the index fixes the bytes: same members, same id
    remote.put_bytes(packs_mod.pack_key(pack_id), pack)


def _label(batch: Batch) -> str:
    first = batch[0][0]
    return first if len(batch) == 1 else f"a pack of {len(batch)} objects ({first}, ...)"


def _download_verified(store: ObjectStore, remote: Remote, key: str) -> int:
    """Download a loose key (an object or a chunk list: at most a few MiB) into the store."""
    data = remote.get_range(key)
    _store_checked(store, remote, key, data, f"{key} on remote '{remote.name}'")
    return len(data)


def _install_range(store: ObjectStore, remote: Remote, rng: packs_mod.ReadRange) -> tuple[int, int]:
    """Read one range of a pack; verify and store each object in it. (objects, bytes)"""
    data = remote.get_range(packs_mod.pack_key(rng.pack), rng.start, rng.length)
    verified = []
    for key, blob in packs_mod.slice_range(rng, data):
        _check_downloaded(remote, key, blob, f"{key} in pack {rng.pack} on remote '{remote.name}'")
        verified.append((key, blob))
    store.put_many_keys(verified)  # a local pack, not one file per object
    return len(verified), len(data)


def _store_checked(store: ObjectStore, remote: Remote, key: str, blob: bytes | memoryview,
                   where: str) -> None:
    """Verify downloaded content against its key (see :func:`check_blob`), then store it;
    nothing unverified is ever kept."""
    _check_downloaded(remote, key, blob, where)
    store.put_key_bytes(key, blob)


def _check_downloaded(remote: Remote, key: str, blob: bytes | memoryview, where: str) -> None:
    problem = check_blob(key, blob)
    if problem:
        raise CorruptObjectError(f"{where} is damaged ({problem}); nothing was kept",
                                 "the remote copy is bad: push it again from a clone that has it")


def fetch(store: ObjectStore, remote: Remote, arts: Sequence[Artifact], *, known: KnownIndex,
          jobs: int | None = None, advance: Advance | None = None,
          packs: PackIndex | None = None) -> TransferStats:
    """Download what ``store`` lacks to reproduce ``arts``; every key is verified. Objects
    in packs come down in ranged reads, neighbours together."""
    return _Fetch(store, remote, known, jobs or remote.default_jobs, advance, packs).run(arts)


class _Fetch:
    """One fetch, in steps: the trees of folder artifacts, then the whole objects and
    chunk lists of their files, then the chunks, then a check of each reassembled file."""

    def __init__(self, store: ObjectStore, remote: Remote, known: KnownIndex, jobs: int,
                 advance: Advance | None, packs: PackIndex | None) -> None:
        self.store = store
        self.remote = remote
        self.known = known
        self.jobs = jobs
        self.advance = advance
        self.packs = packs
        self.stats = TransferStats(remote.name)
        self._lock = threading.Lock()
        self._budget = ByteBudget()
        self.names: dict[str, str] = {}  # content id -> artifact path (for messages)

    def run(self, arts: Sequence[Artifact]) -> TransferStats:
        self.fetch_trees(arts)
        small = self.list_files(arts)
        whole, lists = self.locate_files(small)
        self.fetch_keys(whole + lists)
        chunk_keys = self.fetch_chunks(lists)
        self.verify_reassembled(lists)
        self.known.add(whole + lists + chunk_keys)
        return self.stats

    # steps -------------------------------------------------------------------------
    def fetch_trees(self, arts: Sequence[Artifact]) -> None:
        self.fetch_keys([key_for(OBJECTS, p.oid) for _, p in arts if p.kind == "dir"])

    def list_files(self, arts: Sequence[Artifact]) -> set[str]:
        """Fill ``names`` with every file's content id; returns the ids of files under the
        chunking threshold (always stored whole)."""
        small: set[str] = set()
        for path, p in arts:
            if p.kind == "dir":
                for e in tree.loads(self.store.read_object(p.oid), p.oid):
                    self.names.setdefault(e.oid, f"{path}/{e.path}")
                    if e.size < chunking.CHUNK_THRESHOLD:
                        small.add(e.oid)
            else:
                self.names.setdefault(p.oid, path)
        return small

    def locate_files(self, small: set[str]) -> tuple[list[str], list[str]]:
        """(whole-object keys, chunk-list keys) on the remote of the files the store lacks."""
        store = self.store
        need = [oid for oid in self.names if not store.has_key(key_for(OBJECTS, oid))
                and (oid in small or not store.has(oid))]
        present = present_keys(self.remote, self.packs, [key_for(OBJECTS, o) for o in need])
        maybe_chunked = [key_for(CHUNKED, o) for o in need
                         if o not in small and key_for(OBJECTS, o) not in present]
        present |= present_keys(self.remote, self.packs, maybe_chunked)
        absent = [o for o in need if key_for(OBJECTS, o) not in present
                  and key_for(CHUNKED, o) not in present]
        if absent:
            raise ObjectMissingError(
                f"{len(absent)} object(s) are neither in the local store nor on remote "
                f"'{self.remote.name}', e.g. {self.names[absent[0]]} ({absent[0]})",
                "push them from a clone that has them")
        whole = [key_for(OBJECTS, o) for o in need if key_for(OBJECTS, o) in present]
        return whole, [k for k in maybe_chunked if k in present]

    def fetch_chunks(self, lists: list[str]) -> list[str]:
        chunk_keys: list[str] = []
        for key in lists:
            _, chunks = self.store.read_chunklist(_oid_of(key))
            chunk_keys += [key_for(OBJECTS, c.oid) for c in chunks]
        self.fetch_keys(chunk_keys)
        return chunk_keys

    def verify_reassembled(self, lists: list[str]) -> None:
        for key in lists:
            oid = _oid_of(key)
            problem = self.store.verify_key(key)
            if problem:
                self.store.remove_keys([key])
                raise CorruptObjectError(
                    f"{self.names[oid]} ({oid}) from remote '{self.remote.name}' is damaged: "
                    f"{problem}; nothing was kept", "push it again from a clone that has it")

    # downloading keys --------------------------------------------------------------
    def fetch_keys(self, keys: list[str]) -> None:
        keys = [k for k in dict.fromkeys(keys) if not self.store.has_key(k)]
        for attempt in range(2):
            if not keys:
                return
            errors = self._fetch_once(keys)
            # a pack may vanish under us (another clone's gc repacked it): look again, once
            vanished = [t for t, e in errors if isinstance(t, packs_mod.ReadRange | AdoptPack)
                        and isinstance(e, ObjectMissingError)]
            if attempt == 0 and self.packs is not None and vanished and len(vanished) == len(errors):
                self.packs.refresh(self.jobs)
                keys = [k for t in vanished
                        for k in (t.wanted if isinstance(t, AdoptPack) else [k for k, _ in t.items])]
                continue
            if errors:
                labels = [t if isinstance(t, str) else f"pack {t.pack}" for t, _ in errors]
                self.stats.failed += labels
                _raise_first([(label, e) for label, (_, e) in zip(labels, errors, strict=True)],
                             "downloading", self.remote)
            return

    def _fetch_once(self, keys: list[str]) -> list[tuple[str | packs_mod.ReadRange | AdoptPack, Exception]]:
        located: list[tuple[str, packs_mod.PackEntry]] = []
        loose: list[str] = []
        if self.packs is not None and not self.packs.refreshed:
            self.packs.refresh(self.jobs)
        for k in keys:
            entry = self.packs.locate(k) if self.packs is not None else None
            if entry is None:
                loose.append(k)
            else:
                located.append((k, entry))
        whole, located = self._adoptable(located)
        tasks: list[str | packs_mod.ReadRange | AdoptPack] = [
            *whole, *packs_mod.plan_ranges(located), *loose]
        return _run_pool(self.jobs, tasks, self._download)

    def _adoptable(self, located: list[tuple[str, packs_mod.PackEntry]]
                   ) -> tuple[list[AdoptPack], list[tuple[str, packs_mod.PackEntry]]]:
        """Packs of a folder remote of which most bytes are wanted are taken whole (linked
        or copied in the kernel, then verified) instead of read range by range; the rest
        of ``located`` is read as ranges."""
        if self.packs is None or not located:
            return [], located
        by_pack: dict[str, list[str]] = {}
        for key, e in located:
            by_pack.setdefault(e.pack, []).append(key)
        whole: list[AdoptPack] = []
        for pack_id, keys in by_pack.items():
            entries = self.packs.by_pack.get(pack_id, {})
            total = sum(e.size for e in entries.values())
            if total and sum(entries[k].size for k in keys) >= ADOPT_RATIO * total:
                path = self.remote.local_file(packs_mod.pack_key(pack_id))
                if path is not None:
                    whole.append(AdoptPack(pack_id, path, entries, tuple(keys)))
        taken = {a.pack for a in whole}
        return whole, [(k, e) for k, e in located if e.pack not in taken]

    def _download(self, task: str | packs_mod.ReadRange | AdoptPack) -> None:
        if isinstance(task, AdoptPack):
            if not self.store.packs.adopt(task.path, task.pack, task.entries, check_blob):
                # a damaged object in it (perhaps not one we want): read what we want
                for rng in packs_mod.plan_ranges([(k, task.entries[k]) for k in task.wanted]):
                    self._download(rng)
                return
            count, size = len(task.wanted), sum(task.entries[k].size for k in task.wanted)
        elif isinstance(task, str):
            count, size = 1, _download_verified(self.store, self.remote, task)
        else:
            with self._budget.hold(task.length):
                count, size = _install_range(self.store, self.remote, task)
        with self._lock:
            self.stats.transferred += count
            self.stats.bytes += size
        if self.advance:
            self.advance(size)


#: a folder remote's pack is taken whole when at least this share of its bytes is wanted
ADOPT_RATIO = 0.5


@dataclass(frozen=True)
class AdoptPack:
    pack: str
    path: str  # the pack's file on the folder remote
    entries: dict[str, packs_mod.PackEntry]
    wanted: tuple[str, ...]


def _oid_of(key: str) -> str:
    parsed = parse_key(key)
    assert parsed is not None
    return parsed[1]
