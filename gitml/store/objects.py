"""The local content-addressed object store.

Layout under the store root (``<git common dir>/ml/store``)::

    objects/ab/cdef…   bytes whose xxh3-128 is ``abcdef…`` (single files, chunks, trees)
    chunked/ab/cdef…   chunk list of a large file whose content id is ``abcdef…``
    packs/<id>.pack    many small objects in one file, with ``<id>.idx`` beside it
                       (:mod:`gitml.store.local_packs`): folders of small files
    tmp/               partial writes (``*.incomplete``), renamed into place when whole

Objects are write-once and read-only (mode 0444). Every write goes to ``tmp/`` and is
renamed into place, so readers and concurrent writers never see a partial object. An
object is addressed by its key (``objects/ab/cdef…``) wherever it lies, loose or packed.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeVar

from gitml.errors import CorruptObjectError, GitMLError, ObjectMissingError
from gitml.layout import STORE_TMP, owner_is_gone, temp_name
from gitml.store import chunking, tree
from gitml.store.chunk_writers import ChunkWriters, WritePath
from gitml.store.chunking import CHUNK_THRESHOLD, ChunkRef
from gitml.store.fsutil import (
    kernel_copy,
    open_new_direct,
    read_listed,
    store_write_error,
    temp_path_for,
    write_all,
    write_all_direct,
)
from gitml.store.ids import hash_bytes, hash_file, hash_stream, new_hasher
from gitml.store.keys import CHUNKED, OBJECTS, key_for, parse_key
from gitml.store.local_packs import LocalPacks
from gitml.store.readable import Readable

if TYPE_CHECKING:
    from gitml.store.packs import PackEntry

#: a copy below this size is read, hashed and written in one go
SMALL_COPY = 1 << 20
#: objects at least this big stay loose files (copied in the kernel, reflinked); smaller
#: ones added or fetched many at a time go into packs
PACK_OBJECT_MAX = 512 * 1024
#: fewer new small objects than this in one batch are not worth a pack
PACK_MIN_OBJECTS = 8


def check_blob(key: str, data: bytes | memoryview) -> str | None:
    """None when ``data`` may be stored under ``key``, else what is wrong with it. An object
    must hash to its id; a chunk list must be well formed (its content is verified once
    its chunks are there, by reassembling)."""
    parsed = parse_key(key)
    if parsed is None:
        return "not a gitml object name"
    kind, oid = parsed
    if kind == OBJECTS:
        actual = hash_bytes(data)
        return None if actual == oid else f"its bytes hash to {actual}"
    try:
        chunking.loads(bytes(data), oid)
    except CorruptObjectError as e:
        return e.message
    return None


@dataclass(frozen=True)
class StoredFile:
    oid: str
    size: int
    new_bytes: int  # bytes this add wrote to the store (0 when all content was there)


def write_new_file(path: str, data: bytes | memoryview, mode: int, *, exclusive: bool = False) -> None:
    """Write ``path`` holding ``data``, with ``mode`` whatever the umask: open, write,
    close, and a chmod only when the umask narrowed the mode. ``exclusive``: the file must
    not exist yet."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, mode & 0o777)
    try:
        write_all(fd, data)
        if _UMASK & mode & 0o777:
            os.fchmod(fd, mode & 0o777)
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class TreeEntryLike(Protocol):
    @property
    def oid(self) -> str: ...


E = TypeVar("E", bound=TreeEntryLike)


class ObjectStore:
    _reflink_works: bool | None = None  # learnt on the first copy

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / STORE_TMP
        self._fans: set[str] = set()  # fan-out folders known to exist
        self._tmp_ready = False
        self.packs = LocalPacks(root, self.tmp_dir)
        self._write_path = WritePath()  # whether a large add's chunks skip the page cache

    # paths ---------------------------------------------------------------
    def path_of_key(self, key: str) -> Path:
        return self.root / key

    def object_path(self, oid: str) -> Path:
        return self.root / key_for(OBJECTS, oid)

    def chunklist_path(self, oid: str) -> Path:
        return self.root / key_for(CHUNKED, oid)

    # presence --------------------------------------------------------------
    def has_key(self, key: str) -> bool:
        if key in self.packs.entries:  # no system call for a packed object
            return True
        if os.path.isfile(f"{self.root}/{key}"):  # a string path: called per object
            return True
        return self.packs.locate(key) is not None  # looks again if packs/ changed

    def has_object(self, oid: str) -> bool:
        return self.has_key(key_for(OBJECTS, oid))

    def is_loose(self, key: str) -> bool:
        return os.path.isfile(f"{self.root}/{key}")

    def key_size(self, key: str) -> int:
        """Bytes of the object ``key`` as stored (:class:`ObjectMissingError` when absent)."""
        try:
            return os.stat(f"{self.root}/{key}").st_size
        except FileNotFoundError:
            entry = self.packs.locate(key)
            if entry is None:
                raise ObjectMissingError(f"{key} is not in the local store") from None
            return entry.size

    def segment_of(self, key: str) -> tuple[str, int, int]:
        """(file, offset, size) holding the object ``key``: its own file or a slice of a
        pack, so an upload streams it without reading it into memory first."""
        path = f"{self.root}/{key}"
        try:
            return path, 0, os.stat(path).st_size
        except FileNotFoundError:
            seg = self.packs.segment(key)
            if seg is None:
                raise ObjectMissingError(f"{key} is not in the local store") from None
            return seg

    def read_key(self, key: str) -> bytes:
        """The stored bytes of ``key``, loose or packed (not verified)."""
        try:
            with open(f"{self.root}/{key}", "rb") as f:
                return f.read()
        except FileNotFoundError:
            entry = self.packs.locate(key)
            if entry is None:
                raise ObjectMissingError(f"{key} is not in the local store") from None
            return self.packs.read(entry)

    def has(self, oid: str) -> bool:
        """True when the content ``oid`` can be read back whole from this store."""
        if self.has_object(oid):
            return True
        try:
            _, chunks = self.read_chunklist(oid)
        except (ObjectMissingError, CorruptObjectError):
            return False
        return all(self.has_object(c.oid) for c in chunks)

    # writing ---------------------------------------------------------------
    def _tmp_file(self) -> tuple[int, Path]:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        path = self.tmp_dir / temp_name("obj")
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444), path

    def _make_tmp_dir(self) -> None:
        with contextlib.suppress(OSError):
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._tmp_ready = True

    def sweep_tmp(self) -> int:
        """Delete the temp files of gitml processes that are gone (killed mid-write);
        returns how many. Cheap (one folder), so commands that write call it first."""
        removed = 0
        try:
            entries = list(os.scandir(self.tmp_dir))
        except OSError:
            return 0
        for entry in entries:
            if owner_is_gone(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    def install_tmp(self, tmp: Path, dest: Path) -> None:
        """Make ``tmp`` read-only and rename it to ``dest`` (write-once: an existing object wins)."""
        try:
            os.chmod(tmp, 0o444)
            fan = str(dest.parent)
            if fan not in self._fans:
                os.makedirs(fan, exist_ok=True)
                self._fans.add(fan)
            os.replace(tmp, dest)
        except OSError as e:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise store_write_error(e, dest) from e

    def _write(self, dest: Path, data: bytes | memoryview) -> None:
        try:
            fd, tmp = self._tmp_file()
        except OSError as e:
            raise store_write_error(e, self.tmp_dir) from e
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException as e:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if isinstance(e, OSError):
                raise store_write_error(e, dest) from e
            raise
        self.install_tmp(tmp, dest)

    def put_bytes(self, data: bytes | memoryview, oid: str | None = None, *, direct: bool = False) -> str:
        """Store small content. The hot path of adding many small files: plain string paths,
        a temp file in ``tmp/`` (swept if the process is killed), no extra chmod (created 0444).
        ``direct``: ``data`` starts page-aligned and goes to the disk with O_DIRECT where the
        file system allows (a large file's chunks: :mod:`gitml.store.chunk_writers`)."""
        oid = oid or hash_bytes(data)
        fan = f"{self.root}/{OBJECTS}/{oid[:2]}"
        dest = f"{fan}/{oid[2:]}"
        if os.path.exists(dest):
            return oid
        if fan not in self._fans:
            try:
                os.makedirs(fan, exist_ok=True)
            except OSError as e:
                raise store_write_error(e, Path(fan)) from e
            self._fans.add(fan)
        if not self._tmp_ready:
            self._make_tmp_dir()
        # in tmp/, not the fan-out folder: a killed writer's leftovers are all in one place
        tmp = f"{self.tmp_dir}/{temp_name(oid[2:])}"
        try:
            if direct:
                fd, direct = open_new_direct(tmp, 0o444)
            else:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
        except OSError as e:
            raise store_write_error(e, Path(dest)) from e
        try:
            if direct:
                write_all_direct(fd, memoryview(data))
            else:
                write_all(fd, data)
            os.close(fd)
            fd = -1
            os.rename(tmp, dest)
        except BaseException as e:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(e, OSError):
                raise store_write_error(e, Path(dest)) from e
            raise
        return oid

    def put_key_bytes(self, key: str, data: bytes | memoryview) -> None:
        """Install content already checked with :func:`check_blob` under its store key."""
        kind, oid = parse_key(key) or ("", "")
        if kind == OBJECTS:
            self.put_bytes(data, oid)
        elif kind == CHUNKED:
            dest = self.chunklist_path(oid)
            if not dest.exists():
                self._write(dest, data)
        else:
            raise GitMLError(f"not a gitml object name: {key!r}")

    def put_stream(self, stream: Readable, size_hint: int) -> StoredFile:
        """Store a file's content; large ones as content-defined chunks. Streams: memory stays flat."""
        if size_hint < CHUNK_THRESHOLD:
            data = stream.read()
            if len(data) < CHUNK_THRESHOLD:
                oid = hash_bytes(data)
                if os.path.exists(f"{self.root}/{OBJECTS}/{oid[:2]}/{oid[2:]}"):
                    return StoredFile(oid, len(data), 0)
                self.put_bytes(data, oid)
                return StoredFile(oid, len(data), len(data))
            stream = _Prefixed(data, stream)
        return self._put_chunked(stream)

    def _put_chunked(self, stream: Readable) -> StoredFile:
        """Chunk and hash on this thread while writer threads store the new chunks
        (:mod:`gitml.store.chunk_writers`), so a large add costs about max(chunking,
        writing) rather than their sum."""
        whole = new_hasher()
        refs: list[ChunkRef] = []
        size = new = 0
        if not self._tmp_ready:
            self._make_tmp_dir()
        writers = ChunkWriters(self._put_chunk, chunking.MAX_CHUNK, self._write_path)
        queued: set[str] = set()
        try:
            for view in chunking.iter_chunks(stream):
                if writers.failures:
                    break
                whole.update(view)
                coid = hash_bytes(view)
                refs.append(ChunkRef(coid, len(view)))
                size += len(view)
                if coid not in queued and not os.path.exists(self._object_str(coid)):
                    queued.add(coid)
                    new += len(view)
                    writers.submit(coid, view)  # copied: the chunker reuses its buffer
        except BaseException:
            writers.abort()
            raise
        writers.close()
        oid = whole.hexdigest()
        if self.has_object(oid):  # the same bytes were once stored whole
            return StoredFile(oid, size, new)
        dest = self.chunklist_path(oid)
        if not dest.exists():
            self._write(dest, chunking.dumps(size, refs))
        return StoredFile(oid, size, new)

    def _put_chunk(self, oid: str, data: memoryview, direct: bool) -> None:
        self.put_bytes(data, oid, direct=direct)

    def _object_str(self, oid: str) -> str:
        return f"{self.root}/{OBJECTS}/{oid[:2]}/{oid[2:]}"

    def temp_path_beside(self, dest: Path) -> Path:
        """A private temp name in ``dest``'s own folder (created if needed): renaming it into
        place is then a same-folder rename."""
        fan = str(dest.parent)
        if fan not in self._fans:
            os.makedirs(fan, exist_ok=True)
            self._fans.add(fan)
        return dest.parent / temp_name(dest.name)

    def put_file(self, path: Path | str) -> StoredFile:
        with open(path, "rb", buffering=0) as f:
            return self.put_stream(f, os.fstat(f.fileno()).st_size)

    def put_files(self, paths: Sequence[str], sizes: Sequence[int],
                  done: Callable[[int, StoredFile], None]) -> None:
        """Store many files at once: those under :data:`PACK_OBJECT_MAX` that are new go into
        packs (one store file per ~64 MiB instead of one per object), the rest as
        :meth:`put_file` would. ``done(i, stored)`` is called for each, in order, once its
        content is readable from the store. On one thread: for small files the cost is
        system calls, which threads on a small machine only make contend."""
        small = [i for i, size in enumerate(sizes) if size < PACK_OBJECT_MAX]
        for i, size in enumerate(sizes):
            if size >= PACK_OBJECT_MAX:
                done(i, self.put_file(paths[i]))
        if len(small) < PACK_MIN_OBJECTS:
            for i in small:
                done(i, self.put_file(paths[i]))
            return
        results: list[tuple[int, StoredFile]] = []
        self.packs.refresh()
        loose = self.loose_object_keys()  # one listing, not a stat per file
        packed = self.packs.entries
        with self.packs.writer() as writer:
            for i in small:
                data = read_listed(paths[i], sizes[i])
                if len(data) >= PACK_OBJECT_MAX:  # grew since it was listed
                    done(i, self.put_stream(io.BytesIO(data), len(data)))
                    continue
                oid = hash_bytes(data)
                key = key_for(OBJECTS, oid)
                if key in writer or key in packed or key in loose:
                    results.append((i, StoredFile(oid, len(data), 0)))
                    continue
                writer.add(key, data)
                results.append((i, StoredFile(oid, len(data), len(data))))
        for i, stored in results:  # the pack is installed: its objects are readable now
            done(i, stored)

    def loose_object_keys(self) -> set[str]:
        """Keys of the loose whole objects now in the store (one listing per fan-out
        folder). Another process may add one meanwhile: storing it again in a pack is
        harmless (the same bytes under the same id)."""
        keys: set[str] = set()
        base = f"{self.root}/{OBJECTS}"
        try:
            fans = os.listdir(base)
        except FileNotFoundError:
            return keys
        for fan in fans:
            if len(fan) == 2:
                with contextlib.suppress(NotADirectoryError, FileNotFoundError):
                    keys.update(f"{OBJECTS}/{fan}/{name}" for name in os.listdir(f"{base}/{fan}")
                                if not name.startswith("."))
        return keys

    def put_many_keys(self, blobs: Iterable[tuple[str, bytes | memoryview]]) -> None:
        """Install verified objects (see :func:`check_blob`) that the store lacks (the fetch
        asked only for those): small ``objects/`` keys in one pack, the rest loose (a
        fetched range of a remote pack lands as a local pack)."""
        loose: list[tuple[str, bytes | memoryview]] = []
        packable: list[tuple[str, bytes | memoryview]] = []
        for key, blob in blobs:
            small = key.startswith(OBJECTS) and len(blob) < PACK_OBJECT_MAX
            (packable if small else loose).append((key, blob))
        if len(packable) < PACK_MIN_OBJECTS:
            loose += packable
            packable = []
        for key, blob in loose:
            self.put_key_bytes(key, blob)
        if packable:
            with self.packs.writer() as writer:
                for key, blob in packable:
                    writer.add(key, blob)

    def remove_keys(self, keys: Iterable[str]) -> int:
        """Delete objects: loose files are unlinked, packs holding any of ``keys`` are
        rewritten without them (or deleted when nothing else is in them). The caller holds
        the store's exclusive lock. Returns the bytes freed."""
        freed = 0
        by_pack: dict[str, set[str]] = {}
        for key in keys:
            path = f"{self.root}/{key}"
            try:
                freed += os.stat(path).st_size
                os.unlink(path)
                continue
            except FileNotFoundError:
                pass
            entry = self.packs.locate(key)
            if entry is not None:
                by_pack.setdefault(entry.pack, set()).add(key)
        for pack_id, dead in by_pack.items():
            freed += self.rewrite_pack(pack_id, dead)
        return freed

    def consolidate_packs(self, *, most: int = 16, small: int = 16 * 1024 * 1024) -> int:
        """When there are more than ``most`` packs, write the objects of those under
        ``small`` bytes (each re-verified) into as few packs as they fill, then delete them:
        every add of a changed folder makes a pack, and lookups load every index. Returns
        how many packs were merged. The caller holds the store's exclusive lock."""
        self.packs.refresh()
        sizes = {p: self.packs.pack_size(p) for p in self.packs.by_pack}
        merge = sorted(p for p, size in sizes.items() if size < small)
        if len(sizes) <= most or len(merge) < 2:
            return 0
        with self.packs.writer() as writer:
            for pack_id in merge:
                for key, entry in sorted(self.packs.by_pack[pack_id].items(),
                                         key=lambda kv: kv[1].offset):
                    data = self._read_packed_or_none(entry)
                    if data is not None and check_blob(key, data) is None:  # damaged: dropped
                        writer.add(key, data)
        new = set(writer.pack_ids)
        for pack_id in merge:
            if pack_id not in new:
                self.packs.delete(pack_id)
        return len(merge)

    def _read_packed_or_none(self, entry: PackEntry) -> bytes | None:
        """A packed object's bytes, or None when the pack file is cut short or gone."""
        try:
            return self.packs.read(entry)
        except (CorruptObjectError, ObjectMissingError):
            return None

    def rewrite_pack(self, pack_id: str, drop: set[str]) -> int:
        """Write pack ``pack_id`` again without ``drop`` and without any object whose bytes
        no longer hash to its id, then delete the old one; the new pack is in place before
        the old goes. Returns the bytes freed."""
        entries = self.packs.by_pack.get(pack_id, {})
        before = self.packs.pack_size(pack_id)
        live = sorted(((k, e) for k, e in entries.items() if k not in drop),
                      key=lambda kv: kv[1].offset)
        kept = 0
        if live:
            with self.packs.writer() as writer:
                for key, entry in live:
                    data = self._read_packed_or_none(entry)
                    if data is not None and check_blob(key, data) is None:
                        writer.add(key, data)
                        kept += len(data)
            if pack_id in writer.pack_ids:  # nothing dropped after all: the same pack
                return 0
        self.packs.delete(pack_id)
        return max(0, before - kept)

    # reading ---------------------------------------------------------------
    def read_chunklist(self, oid: str) -> tuple[int, list[ChunkRef]]:
        try:
            data = self.read_key(key_for(CHUNKED, oid))  # loose, or in a pack taken whole
        except ObjectMissingError:
            raise ObjectMissingError(f"object {oid} is not in the local store") from None
        return chunking.loads(data, oid)

    def read_object(self, oid: str) -> bytes:
        try:
            return self.read_key(key_for(OBJECTS, oid))
        except ObjectMissingError:
            raise ObjectMissingError(f"object {oid} is not in the local store") from None

    def read_tree(self, oid: str) -> list[tree.TreeEntry]:
        return tree.loads(self.read_object(oid), oid)

    def open(self, oid: str) -> BinaryIO:
        """A read-only binary stream over the content ``oid`` (whole object or chunks)."""
        path = self.object_path(oid)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            pass
        entry = self.packs.locate(key_for(OBJECTS, oid))
        if entry is not None:
            return io.BytesIO(self.packs.read(entry))
        return self._open_chunked(oid)  # type: ignore[return-value]  # a RawIOBase reads like one

    def open_chunk(self, oid: str) -> io.RawIOBase | io.BytesIO:
        try:
            return open(self.object_path(oid), "rb", buffering=0)
        except FileNotFoundError:
            return io.BytesIO(self.read_object(oid))

    def _open_chunked(self, oid: str) -> _ChunkReader:
        size, chunks = self.read_chunklist(oid)
        missing = [c.oid for c in chunks if not self.has_object(c.oid)]
        if missing:
            raise ObjectMissingError(
                f"object {oid} is incomplete in the local store ({len(missing)} chunks missing)")
        return _ChunkReader(self, chunks, size)

    def copy_to(self, oid: str, dest: Path | str, *, mode: int = 0o644, link: str = "copy") -> None:
        """Materialise ``oid`` at ``dest``, verified and atomically: the bytes are hashed
        before the temp file is renamed into place, so damaged store content never reaches
        ``dest`` (:class:`CorruptObjectError`, ``dest`` untouched). The temp file lives in
        the store's ``tmp/`` when that is on ``dest``'s file system, so a killed process
        leaves nothing in the user's folders.

        The caller creates ``dest``'s folder. Plain string paths and no per-file mkstemp: a
        checkout of 20,000 small files is mostly system calls."""
        dest = str(dest)
        src = self._object_str(oid)
        if not self._tmp_ready:
            self._make_tmp_dir()
        tmp = temp_path_for(dest, self.tmp_dir)
        try:
            if link == "hardlink" and os.path.isfile(src):
                self._check(oid, hash_file(src)[0])
                os.link(src, tmp)  # the store copy is read-only: edits can't reach the store
            elif (entry := self._packed_only(oid)) is not None:
                write_new_file(tmp, self.verified_packed(oid, entry), mode)
            else:
                self._copy_verified(oid, src, tmp, mode)
                os.chmod(tmp, mode & 0o777)  # the umask may have narrowed it
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _copy_verified(self, oid: str, src: str, tmp: str, mode: int) -> None:
        try:
            s: io.RawIOBase = open(src, "rb", buffering=0)  # noqa: SIM115 - closed below
        except FileNotFoundError:
            s = self._open_chunked(oid)  # reassemble
        with s:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o777)
            with open(fd, "wb", buffering=0) as d:
                if isinstance(s, io.FileIO) and os.fstat(s.fileno()).st_size < SMALL_COPY:
                    data = s.read()  # small: hash in memory, one write
                    self._check(oid, hash_bytes(data))
                    d.write(data)
                    return
                if not _try_clone(s, d):
                    _copy_stream(s, d)
        self._check(oid, hash_file(tmp)[0])  # what landed, read back (from the page cache)

    def _packed_only(self, oid: str) -> PackEntry | None:
        key = key_for(OBJECTS, oid)
        entry = self.packs.entries.get(key)
        if entry is None and not self.is_loose(key):
            entry = self.packs.locate(key)
        return entry

    def verified_packed(self, oid: str, entry: PackEntry) -> bytes:
        data = self.packs.read(entry)
        self._check(oid, hash_bytes(data))
        return data

    def in_storage_order(self, entries: Iterable[E]) -> list[E]:
        """``entries`` sorted by where their content lies (pack, offset; loose ones last),
        so writing them out reads each pack front to back."""
        far = ("~", 0)

        def where(e: E) -> tuple[str, int]:
            entry = self.packs.entries.get(key_for(OBJECTS, e.oid))
            return (entry.pack, entry.offset) if entry is not None else far

        if not self.packs.entries:
            self.packs.refresh()
        return sorted(entries, key=where)

    def write_verified(self, oid: str, dest: str, mode: int) -> os.stat_result:
        """Create the new file ``dest`` (it must not exist) with the content ``oid``,
        verified first; large content through :meth:`copy_to`. Returns its stat."""
        entry = self._packed_only(oid)
        if entry is not None:
            data = self.verified_packed(oid, entry)
        else:
            try:
                size = os.stat(self._object_str(oid)).st_size
            except FileNotFoundError:
                size = SMALL_COPY  # chunked: reassembled by copy_to
            if size >= SMALL_COPY:
                self.copy_to(oid, dest, mode=mode)
                return os.stat(dest)
            data = self.read_verified(oid)
        write_new_file(dest, data, mode, exclusive=True)
        return os.stat(dest)

    def read_verified(self, oid: str) -> bytes:
        """The bytes of the whole object ``oid`` (loose or packed), hashed against the id."""
        data = self.read_object(oid)
        self._check(oid, hash_bytes(data))
        return data

    @staticmethod
    def _check(oid: str, actual: str) -> None:
        if actual != oid:
            raise CorruptObjectError(f"object {oid} in the local store is damaged "
                                     f"(its bytes hash to {actual})")

    # enumeration -------------------------------------------------------------
    def iter_keys(self) -> Iterator[str]:
        for kind in (OBJECTS, CHUNKED):
            base = self.root / kind
            if not base.is_dir():
                continue
            for fan in os.scandir(base):
                if not fan.is_dir() or len(fan.name) != 2:
                    continue
                for entry in os.scandir(fan.path):
                    if not entry.name.startswith("."):  # .*.incomplete: a write under way
                        key = f"{kind}/{fan.name}/{entry.name}"
                        if key not in self.packs.entries:
                            yield key
        yield from self.packs.keys()

    def keys_of(self, oid: str, kind: str, size: int | None = None) -> list[str]:
        """Every store key needed to reproduce artifact content ``oid`` (file or dir).

        Content under the chunking threshold is always stored whole, so a folder of 20,000
        small files costs no system call here; whether those keys are present is for the
        caller to ask when it matters."""
        if kind == "dir":
            keys = [key_for(OBJECTS, oid)]
            for e in self.read_tree(oid):
                keys.extend(self.keys_of(e.oid, "file", e.size))
            return keys
        if (size is not None and size < CHUNK_THRESHOLD) or self.has_object(oid):
            return [key_for(OBJECTS, oid)]
        _, chunks = self.read_chunklist(oid)
        return [key_for(CHUNKED, oid)] + [key_for(OBJECTS, c.oid) for c in chunks]

    def verify_key(self, key: str, *, whole: bool = True) -> str | None:
        """None when ``key`` is intact, else a description of the damage. A chunk list is
        checked by reassembling its file when ``whole``, else only for being well formed
        (its chunks are objects, checked on their own)."""
        parsed = parse_key(key)
        if parsed is None:
            return "not a gitml object name"
        kind, oid = parsed
        path = self.path_of_key(key)
        try:
            if kind == OBJECTS and not os.path.isfile(path):
                entry = self.packs.locate(key)
                if entry is None:
                    return "missing"
                actual = hash_bytes(self.packs.read(entry))
                return None if actual == oid else f"content hashes to {actual} (in pack {entry.pack})"
            if kind == OBJECTS:
                actual = hash_file(path)[0]
                return None if actual == oid else f"content hashes to {actual}"
            if not whole:
                return check_blob(key, path.read_bytes())
            with self._open_chunked(oid) as s:
                actual = hash_stream(s)[0]
        except ObjectMissingError:
            return "chunks missing"
        except CorruptObjectError as e:
            return e.message
        except FileNotFoundError:
            return "missing"
        except OSError as e:
            return f"cannot read it: {e.strerror}"
        return None if actual == oid else f"chunks reassemble to {actual}"

    def missing_chunks(self, oid: str) -> int:
        """How many chunks of the chunked content ``oid`` are absent (its list must be here
        and well formed)."""
        _, chunks = self.read_chunklist(oid)
        return sum(1 for c in dict.fromkeys(ch.oid for ch in chunks) if not self.has_object(c))


def _try_clone(src: object, dst: io.FileIO) -> bool:
    """Reflink ``src`` into ``dst`` where the file system can (btrfs, xfs, ...). The first
    failure is remembered, so ext4 pays for one failed ioctl per process, not per file."""
    if ObjectStore._reflink_works is False or not isinstance(src, io.FileIO):
        return False
    import fcntl

    from gitml.store.fsutil import FICLONE

    try:
        fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
    except OSError:
        ObjectStore._reflink_works = False
        return False
    ObjectStore._reflink_works = True
    return True


def _copy_stream(src: Readable, dst: io.FileIO) -> None:
    """Copy in the kernel (copy_file_range) where possible: no bytes through Python."""
    if isinstance(src, _ChunkReader):
        _copy_segments(src.remaining_segments(), dst)
        return
    if isinstance(src, io.FileIO) and kernel_copy(src.fileno(), dst.fileno()):
        return
    while block := src.read(8 << 20):
        dst.write(block)


def _copy_segments(segments: Iterable[tuple[str, int, int]], dst: io.FileIO) -> None:
    """Append slices of files (loose chunks, chunks inside packs) to ``dst``, in the kernel
    where it can (copy_file_range with a source offset), else through a buffer."""
    fds: dict[str, int] = {}
    kernel = True
    try:
        for path, offset, size in segments:
            fd = fds.get(path)
            if fd is None:
                fd = fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            left, at = size, offset
            while left and kernel:
                try:
                    n = os.copy_file_range(fd, dst.fileno(), left, at)
                except OSError:
                    kernel = False
                    break
                if not n:
                    raise CorruptObjectError(f"{path} is shorter than the store's index says")
                left, at = left - n, at + n
            while left:
                block = os.pread(fd, min(left, 8 << 20), at)
                if not block:
                    raise CorruptObjectError(f"{path} is shorter than the store's index says")
                dst.write(block)
                left, at = left - len(block), at + len(block)
    finally:
        for fd in fds.values():
            os.close(fd)


class _Prefixed(io.RawIOBase):
    """``data`` followed by the rest of ``stream``: lets a small read fall back to chunking."""

    def __init__(self, data: bytes, stream: Readable) -> None:
        self._data = memoryview(data)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._data:
            n = min(len(b), len(self._data))
            b[:n] = self._data[:n]
            self._data = self._data[n:]
            return n
        return self._stream.readinto(b) or 0


class _ChunkReader(io.RawIOBase):
    """Sequential reader over a chunked object's chunks."""

    def __init__(self, store: ObjectStore, chunks: list[ChunkRef], size: int) -> None:
        self._store = store
        self._chunks = iter(chunks)
        self._current: io.RawIOBase | io.BytesIO | None = None
        self.size = size

    def readable(self) -> bool:
        return True

    def remaining_segments(self) -> Iterator[tuple[str, int, int]]:
        """(file, offset, size) of the chunks not read yet: loose files or slices of packs
        (for copies in the kernel)."""
        if self._current is not None:
            raise RuntimeError("remaining_segments() after a partial read")
        for ref in self._chunks:
            yield self._store.segment_of(key_for(OBJECTS, ref.oid))

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while True:
            if self._current is None:
                ref = next(self._chunks, None)
                if ref is None:
                    return 0
                self._current = self._store.open_chunk(ref.oid)
            n = self._current.readinto(b)
            if n:
                return int(n)
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()
