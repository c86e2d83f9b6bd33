"""Pack files in the local store: many small objects in one file, so adding or pulling a
folder of 100,000 small files creates a handful of store files, not 100,000 (creating a
file is the expensive part on most file systems, and each object would take at least a
4 KiB block on disk).

Layout under the store root, in the remote's pack format (:mod:`gitml.store.packs`)::

    packs/<pack id>.pack   the objects' bytes, concatenated
    packs/<pack id>.idx    ``gitml-pack-index 1 <id> <bytes> <count>`` + ``<key> <offset> <size>``

A pack is written to ``tmp/``, renamed into ``packs/``, and only then is its index renamed
beside it: a reader trusts only packs whose index it sees, so a killed writer leaves at
worst an unindexed pack (ignored, and removed by gc) and a reader never sees a partial
one. Both files are read-only and never change; gc rewrites a pack as a new one. Objects
read from a pack are hashed against their id by the store before anyone uses them, like
loose objects.

This module knows nothing about Git or the CLI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from gitml.errors import CorruptObjectError, ObjectMissingError
from gitml.layout import temp_name
from gitml.store.fsutil import kernel_copy, write_all
from gitml.store.fsutil import store_write_error as _write_error
from gitml.store.packs import PackEntry, index_bytes, parse_index

PACKS_DIR = "packs"
#: a pack being written is closed and a new one started past this many bytes
PACK_LIMIT = 64 * 1024 * 1024
#: a pack writer gathers small objects into writes of about this size
WRITE_BLOCK = 1024 * 1024
#: a folder's mtime comes from a coarse clock (a tick is 1-10 ms): a listing taken this soon
#: after the last change may have missed a rename made in the same tick
RACY_NS = 50_000_000


class LocalPacks:
    """The packs of one local store: which object lies where, and reading it.

    Indexes are loaded on first use and again whenever the ``packs/`` folder changes
    (another process wrote or removed a pack), so lookups cost no system call while
    nothing changes."""

    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.dir = root / PACKS_DIR
        self.tmp_dir = tmp_dir
        self.entries: dict[str, PackEntry] = {}
        self.by_pack: dict[str, dict[str, PackEntry]] = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, when we looked) of packs/
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()
        #: packs whose index does not parse: their objects count as absent (a fetch brings
        #: them back, replacing the pack), and fsck reports them
        self.damaged: dict[str, str] = {}

    # index -------------------------------------------------------------------------
    def locate(self, key: str) -> PackEntry | None:
        entry = self.entries.get(key)
        if entry is None and self._changed():
            self.refresh()
            entry = self.entries.get(key)
        return entry

    def _changed(self) -> bool:
        try:
            mtime = os.stat(self.dir).st_mtime_ns
        except FileNotFoundError:
            return self._seen is None or bool(self.by_pack)
        if self._seen is None or self._seen[0] != mtime:
            return True
        # a change within the same clock tick as our last look would not move the mtime
        return self._seen[1] - mtime < RACY_NS

    def refresh(self) -> None:
        import time

        with self._lock:
            now = time.time_ns()  # before listing: what the listing is sure to include
            try:
                mtime = os.stat(self.dir).st_mtime_ns
                names = os.listdir(self.dir)
            except FileNotFoundError:
                mtime, names = 0, []
            present = set(names)
            complete = {n[:-4] for n in names if n.endswith(".idx") and n[:-4] + ".pack" in present}
            gone = set(self.by_pack) - complete
            for pack_id in sorted(complete - set(self.by_pack) - set(self.damaged)):
                path = self.dir / f"{pack_id}.idx"
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue  # removed by gc since we listed
                try:
                    entries = parse_index(data, pack_id, "the local store")
                except CorruptObjectError as e:
                    self.damaged[pack_id] = e.message
                    continue
                self.by_pack[pack_id] = entries
                self.entries.update(entries)
            if gone:  # rare (gc ran): rebuild the lookup table
                for pack_id in gone:
                    del self.by_pack[pack_id]
                    with contextlib.suppress(KeyError, OSError):
                        os.close(self._fds.pop(pack_id))
                self.entries = {k: e for entries in self.by_pack.values() for k, e in entries.items()}
            self._seen = (mtime, now)

    def keys(self) -> Iterator[str]:
        if self._changed():
            self.refresh()
        return iter(list(self.entries))

    def pack_size(self, pack_id: str) -> int:
        try:
            return os.stat(self.dir / f"{pack_id}.pack").st_size
        except FileNotFoundError:  # deleted under us: nothing left to free
            return 0

    # reading ---------------------------------------------------------------------------
    def read(self, entry: PackEntry) -> bytes:
        """The bytes of one packed object (not verified: the store hashes them)."""
        fd = self._fd(entry.pack)
        data = os.pread(fd, entry.size, entry.offset)
        if len(data) != entry.size:
            raise CorruptObjectError(
                f"pack {entry.pack} in the local store is shorter than its index says",
                "run `git ml fsck`, then `git ml fetch --repair`")
        return data

    def _fd(self, pack_id: str) -> int:
        fd = self._fds.get(pack_id)
        if fd is None:
            with self._lock:
                fd = self._fds.get(pack_id)
                if fd is None:
                    try:
                        fd = os.open(self.dir / f"{pack_id}.pack", os.O_RDONLY | os.O_CLOEXEC)
                    except FileNotFoundError:  # rewritten by a repair or gc since we looked
                        raise ObjectMissingError(f"pack {pack_id} left the local store",
                                                 "run the command again") from None
                    self._fds[pack_id] = fd
        return fd

    def segment(self, key: str) -> tuple[str, int, int] | None:
        """(file, offset, size) of a packed object, for uploads streamed from the pack."""
        entry = self.locate(key)
        if entry is None:
            return None
        return str(self.dir / f"{entry.pack}.pack"), entry.offset, entry.size

    # writing ---------------------------------------------------------------------------
    def writer(self, limit: int = PACK_LIMIT) -> PackWriter:
        return PackWriter(self, limit)

    def adopt(self, src: str, pack_id: str, entries: dict[str, PackEntry],
              check: Callable[[str, bytes], str | None]) -> bool:
        """Take a whole pack from a folder remote: hard-linked where the file system allows
        (like ``git clone`` of a local path; pack files never change once written),
        copied in the kernel elsewhere. Every object in it is verified before its index
        is written; False (nothing kept) when one does not hash to its id, or the pack is
        not what its index says."""
        ordered = sorted(entries.items(), key=lambda kv: kv[1].offset)
        my_id, index = index_bytes([(k, e.size) for k, e in ordered])
        if my_id != pack_id:
            return False
        if pack_id in self.by_pack:
            return True
        os.makedirs(self.tmp_dir, exist_ok=True)
        tmp = str(self.tmp_dir / temp_name(pack_id + ".pack"))
        try:
            try:
                os.link(src, tmp)
            except FileNotFoundError:
                return False  # gone from the remote (its gc): read by ranges, or report it
            except OSError:  # another file system, or links not allowed
                try:
                    _kernel_copy_file(src, tmp)
                except FileNotFoundError:
                    return False
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
            try:
                total = sum(e.size for _, e in ordered)
                if os.fstat(fd).st_size != total:
                    return False
                for key, e in ordered:
                    if check(key, os.pread(fd, e.size, e.offset)) is not None:
                        return False
            finally:
                os.close(fd)
            self._install_verified(tmp, pack_id, index)
            tmp = ""
        except OSError as e:
            raise _write_error(e, self.dir) from e
        finally:
            if tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return True

    def _install_verified(self, tmp_pack: str, pack_id: str, index: bytes,
                          entries: dict[str, PackEntry] | None = None) -> None:
        os.makedirs(self.dir, exist_ok=True)
        dest = self.dir / f"{pack_id}.pack"
        idx = self.dir / f"{pack_id}.idx"
        if dest.exists() and idx.exists() and pack_id not in self.damaged:
            os.unlink(tmp_pack)
        else:
            if os.stat(tmp_pack).st_nlink == 1:  # a linked remote file is already read-only
                os.chmod(tmp_pack, 0o444)
            os.replace(tmp_pack, dest)
            tmp_idx = self.tmp_dir / temp_name(pack_id + ".idx")
            with open(tmp_idx, "wb") as f:
                f.write(index)
            os.chmod(tmp_idx, 0o444)
            os.replace(tmp_idx, idx)
        if entries is None:
            entries = parse_index(index, pack_id, "the local store")
        self.damaged.pop(pack_id, None)
        with self._lock:
            self.by_pack[pack_id] = entries
            self.entries.update(entries)

    def install(self, tmp_pack: str, sized: list[tuple[str, int]]) -> str:
        """Move a whole written pack into place, then its index; returns its id."""
        pack_id, index = index_bytes(sized)
        entries: dict[str, PackEntry] = {}
        offset = 0
        for key, size in sized:  # what parse_index would read back, without reading it
            entries[key] = PackEntry(pack_id, offset, size)
            offset += size
        self._install_verified(tmp_pack, pack_id, index, entries)  # the writer hashed every object
        return pack_id

    def delete(self, pack_id: str) -> None:
        """Index first: a pack without an index is ignored by every reader. The caller
        holds the store's exclusive lock (gc)."""
        for name in (f"{pack_id}.idx", f"{pack_id}.pack"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.dir / name)
        self.damaged.pop(pack_id, None)
        with self._lock:
            for key in self.by_pack.pop(pack_id, {}):
                if (e := self.entries.get(key)) is not None and e.pack == pack_id:
                    del self.entries[key]
            fd = self._fds.pop(pack_id, None)
        if fd is not None:
            os.close(fd)

    def unindexed(self) -> list[Path]:
        """Packs whose index never landed (a writer killed between the two renames) and
        index files without their pack."""
        try:
            names = set(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            stem, _, ext = name.rpartition(".")
            other = f"{stem}.idx" if ext == "pack" else f"{stem}.pack"
            if ext in ("pack", "idx") and other not in names:
                out.append(self.dir / name)
        return out

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()


def _kernel_copy_file(src: str, dest: str) -> None:
    with open(src, "rb", buffering=0) as s, open(dest, "wb", buffering=0) as d:
        if not kernel_copy(s.fileno(), d.fileno()):
            shutil.copyfileobj(s, d, 8 << 20)


class PackWriter:
    """Collects objects into packs of at most ``limit`` bytes, written to ``tmp/`` as they
    come (memory stays flat) and installed on :meth:`close`. Objects are visible to
    readers only once their pack is installed: close before writing anything that names
    them (a tree, a pointer)."""

    def __init__(self, packs: LocalPacks, limit: int) -> None:
        self.packs = packs
        self.limit = limit
        self.written: set[str] = set()
        self.pack_ids: list[str] = []
        self.bytes = 0
        self._fd = -1
        self._tmp = ""
        self._sized: list[tuple[str, int]] = []
        self._size = 0
        # small objects go out in blocks, one write per ~1 MiB, gathered in one buffer that
        # is never resized (fresh memory is what costs on a VM: 56 ms against 7 for 44 MiB)
        self._block: bytearray | None = None
        self._fill = 0

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __contains__(self, key: str) -> bool:
        return key in self.written

    def add(self, key: str, data: bytes | memoryview) -> None:
        if key in self.written:
            return
        if self._fd < 0:
            self._open()
        n = len(data)
        if n >= WRITE_BLOCK:
            self._flush()
            self._write(data)
        else:
            if self._block is None:
                self._block = bytearray(2 * WRITE_BLOCK)  # room for one more below a block
            self._block[self._fill:self._fill + n] = data
            self._fill += n
            if self._fill >= WRITE_BLOCK:
                self._flush()
        self.written.add(key)
        self._sized.append((key, n))
        self._size += n
        self.bytes += n
        if self._size >= self.limit:
            self._finish()

    def _write(self, data: bytes | memoryview) -> None:
        try:
            write_all(self._fd, data)
        except OSError as e:
            self.abort()
            raise _write_error(e, self.packs.tmp_dir) from e

    def _flush(self) -> None:
        if self._fill and self._block is not None:
            self._write(memoryview(self._block)[:self._fill])
            self._fill = 0

    def _open(self) -> None:
        try:
            os.makedirs(self.packs.tmp_dir, exist_ok=True)
            self._tmp = str(self.packs.tmp_dir / temp_name("pack"))
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise _write_error(e, self.packs.tmp_dir) from e

    def _finish(self) -> None:
        if self._fd < 0:
            return
        self._flush()
        os.close(self._fd)
        self._fd = -1
        try:
            self.pack_ids.append(self.packs.install(self._tmp, self._sized))
        except OSError as e:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            raise _write_error(e, self.packs.dir) from e
        self._sized, self._size = [], 0

    def close(self) -> list[str]:
        self._finish()
        return self.pack_ids

    def abort(self) -> None:
        self._fill = 0
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if self._tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
        self._sized, self._size = [], 0


def sweep_unindexed(packs: LocalPacks, older_than_ns: int) -> int:
    """Remove packs without an index (and indexes without a pack) older than the given
    age: what a writer killed between its two renames left. Returns how many."""
    import time

    now = time.time_ns()
    removed = 0
    for path in packs.unindexed():
        try:
            if now - path.stat().st_mtime_ns < older_than_ns:
                continue
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed
