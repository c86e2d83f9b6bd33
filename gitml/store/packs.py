"""Pack files on a remote: many objects in one key, so a transfer costs one request per
~16 MiB instead of one per object (S3 charges and waits per request; a folder remote
pays a file creation per object).

Layout on the remote, beside the loose ``objects/`` and ``chunked/`` keys:

- ``packs/<pack id>.pack``: the objects' bytes, concatenated, nothing else. The pack id
  is the xxh3-128 of the index's entry lines, which name each object by its content id:
  the same batch always makes the same pack, and the id is known before reading a byte.
- ``packs/<pack id>.idx``: text, ``gitml-pack-index 1 <pack id> <pack bytes> <count>``
  then one ``<store key> <offset> <size>`` line per object.

The pack goes up before its index and a reader only trusts packs whose index it sees,
so nobody ever looks for an object in a pack that is not complete. Index files never
change once written (a repack writes a new pack), so each is downloaded once and
cached locally, one file per pack. Objects read from a pack are verified against their
id by the transfer layer exactly like loose ones.

This module knows nothing about Git or the CLI.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import os
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.errors import CorruptObjectError
from gitml.layout import temp_name
from gitml.store.ids import hash_bytes, is_valid_id
from gitml.store.keys import parse_key

if TYPE_CHECKING:
    from gitml.store.remote import Remote

MiB = 1024 * 1024
PACKS = "packs/"
INDEX_MAGIC = "gitml-pack-index"
INDEX_VERSION = "1"
#: ranged reads join neighbouring objects when the gap between them is at most this
RANGE_GAP = 256 * 1024
#: and stop growing at this many bytes, so one large pack is still read in parallel
RANGE_MAX = 16 * MiB


def pack_key(pack_id: str) -> str:
    return f"{PACKS}{pack_id}.pack"


def index_key(pack_id: str) -> str:
    return f"{PACKS}{pack_id}.idx"


def parse_pack_key(key: str) -> tuple[str, str] | None:
    """``packs/<id>.pack`` -> (id, "pack"); ``packs/<id>.idx`` -> (id, "idx"); else None."""
    if not key.startswith(PACKS):
        return None
    name = key[len(PACKS):]
    stem, dot, ext = name.rpartition(".")
    if not dot or ext not in ("pack", "idx") or not is_valid_id(stem):
        return None
    return stem, ext


@dataclass(frozen=True, slots=True)
class PackEntry:
    pack: str
    offset: int
    size: int


def plan_batches(sized: Sequence[tuple[str, int]], target: int) -> list[list[tuple[str, int]]]:
    """Cut ``(key, size)`` pairs, in their order, into batches of at most ``target`` bytes
    (an object bigger than that is a batch of its own)."""
    batches: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    total = 0
    for key, size in sized:
        if current and total + size > target:
            batches.append(current)
            current, total = [], 0
        current.append((key, size))
        total += size
    if current:
        batches.append(current)
    return batches


def index_bytes(sized: Sequence[tuple[str, int]]) -> tuple[str, bytes]:
    """(pack id, index) of a pack holding ``(store key, size)`` in order. The id is the
    xxh3-128 of the entry lines: they name every object by its content id, so they fix the
    pack's bytes, and the id is known without reading them."""
    lines = []
    offset = 0
    for key, size in sized:
        lines.append(f"{key} {offset} {size}\n")
        offset += size
    body = "".join(lines).encode()
    pack_id = hash_bytes(body)
    head = f"{INDEX_MAGIC} {INDEX_VERSION} {pack_id} {offset} {len(sized)}\n".encode()
    return pack_id, head + body


def build_pack(parts: Sequence[tuple[str, bytes | memoryview]]) -> tuple[str, bytes, bytes]:
    """(pack id, pack bytes, index bytes) for ``(store key, content)`` pairs."""
    pack_id, index = index_bytes([(key, len(blob)) for key, blob in parts])
    return pack_id, b"".join(blob for _, blob in parts), index


def parse_index(data: bytes, pack_id: str, where: str = "remote") -> dict[str, PackEntry]:
    """The entries of a pack index; a damaged one raises :class:`CorruptObjectError`."""

    def bad(why: str) -> CorruptObjectError:
        return CorruptObjectError(
            f"pack index {pack_id} on {where} is damaged: {why}",
            "push the objects again, verifying the remote, from a clone that has them")

    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise bad("not ASCII text") from e
    lines = text.split("\n")
    if not lines or lines[-1] != "":
        raise bad("truncated")
    head = lines[0].split(" ")
    if len(head) != 5 or head[0] != INDEX_MAGIC or head[1] != INDEX_VERSION or head[2] != pack_id:
        raise bad("bad header")
    try:
        pack_size, count = int(head[3]), int(head[4])
    except ValueError as e:
        raise bad("bad header") from e
    body = lines[1:-1]
    if hash_bytes(text[len(lines[0]) + 1:].encode()) != pack_id:
        raise bad("its entries do not hash to the pack id")
    if len(body) != count:
        raise bad(f"{len(body)} entries where the header says {count}")
    entries: dict[str, PackEntry] = {}
    for line in body:
        fields = line.split(" ")
        if len(fields) != 3 or parse_key(fields[0]) is None:
            raise bad(f"bad entry {line[:80]!r}")
        try:
            offset, size = int(fields[1]), int(fields[2])
        except ValueError as e:
            raise bad(f"bad entry {line[:80]!r}") from e
        if offset < 0 or size < 0 or offset + size > pack_size:
            raise bad(f"entry {fields[0]} lies outside the pack")
        entries[fields[0]] = PackEntry(pack_id, offset, size)
    return entries


@dataclass(frozen=True, slots=True)
class ReadRange:
    """One ranged read of a pack and the objects it yields."""

    pack: str
    start: int
    length: int
    items: tuple[tuple[str, PackEntry], ...]


def plan_ranges(located: Iterable[tuple[str, PackEntry]], *, gap: int = RANGE_GAP,
                max_bytes: int = RANGE_MAX) -> list[ReadRange]:
    """Group wanted objects into as few ranged reads as possible: neighbours in a pack
    whose gap is small are read together, up to ``max_bytes`` per read."""
    by_pack: dict[str, list[tuple[str, PackEntry]]] = {}
    for key, entry in located:
        by_pack.setdefault(entry.pack, []).append((key, entry))
    ranges: list[ReadRange] = []
    for pack, items in by_pack.items():
        items.sort(key=lambda kv: kv[1].offset)
        group: list[tuple[str, PackEntry]] = []
        start = end = 0
        for key, e in items:
            if group and (e.offset - end > gap or e.offset + e.size - start > max_bytes):
                ranges.append(ReadRange(pack, start, end - start, tuple(group)))
                group = []
            if not group:
                start = e.offset
            group.append((key, e))
            end = max(end, e.offset + e.size)
        if group:
            ranges.append(ReadRange(pack, start, end - start, tuple(group)))
    return ranges


def slice_range(rng: ReadRange, data: bytes) -> Iterable[tuple[str, memoryview]]:
    """The objects of one ranged read, as views into ``data``."""
    if len(data) != rng.length:
        raise CorruptObjectError(
            f"pack {rng.pack}: asked for {rng.length} bytes at {rng.start}, got {len(data)}",
            "run the command again; if it persists the pack on the remote is damaged")
    view = memoryview(data)
    for key, e in rng.items:
        yield key, view[e.offset - rng.start: e.offset - rng.start + e.size]


class PackIndex:
    """What the packs of one remote hold, with their index files cached in ``cache_dir``.

    :meth:`refresh` lists ``packs/`` on the remote (one request per 1,000 packs),
    downloads only the indexes not cached yet and forgets packs the remote no longer has.
    """

    def __init__(self, remote: Remote, cache_dir: Path) -> None:
        self.remote = remote
        self.cache_dir = cache_dir
        self.entries: dict[str, PackEntry] = {}
        self.by_pack: dict[str, dict[str, PackEntry]] = {}
        self.orphans: set[str] = set()
        self.dangling: set[str] = set()
        self.refreshed = False
        self._lock = threading.Lock()

    def locate(self, key: str) -> PackEntry | None:
        return self.entries.get(key)

    def refresh(self, jobs: int = 8, listing: Iterable[str] | None = None) -> None:
        """``listing``: the remote's keys when the caller has just listed them (remote gc)."""
        listed: set[str] = set()
        packs_seen: set[str] = set()
        for key in self.remote.iter_keys(PACKS) if listing is None else listing:
            parsed = parse_pack_key(key)
            if parsed is None:
                continue
            (listed if parsed[1] == "idx" else packs_seen).add(parsed[0])
        complete = listed & packs_seen  # an index whose pack is gone is useless
        self.orphans = packs_seen - listed  # packs whose upload stopped before the index
        self.dangling = listed - packs_seen  # indexes whose pack is gone (a gc cut short)
        cached = set()
        if self.cache_dir.is_dir():
            cached = {p.stem for p in self.cache_dir.glob("*.idx") if is_valid_id(p.stem)}
        for stale in cached - complete:
            with contextlib.suppress(FileNotFoundError):
                (self.cache_dir / f"{stale}.idx").unlink()
        todo = sorted(complete - cached)
        where = f"remote '{self.remote.name}'"
        loaded: dict[str, dict[str, PackEntry]] = {}

        def download(pack_id: str) -> None:
            data = self.remote.get_range(index_key(pack_id))
            loaded[pack_id] = parse_index(data, pack_id, where)
            self._cache(pack_id, data)

        if todo:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo)))) as pool:
                list(pool.map(download, todo))
        for pack_id in sorted(complete & cached):
            path = self.cache_dir / f"{pack_id}.idx"
            try:
                loaded[pack_id] = parse_index(path.read_bytes(), pack_id, f"{where} (cached)")
            except (OSError, CorruptObjectError):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                download(pack_id)
        with self._lock:
            self.by_pack = loaded
            self.entries = {k: e for entries in loaded.values() for k, e in entries.items()}
            self.refreshed = True

    def add(self, pack_id: str, index: bytes) -> None:
        """Record a pack this process just uploaded (no need to download its index)."""
        entries = parse_index(index, pack_id)
        self._cache(pack_id, index)
        with self._lock:
            self.by_pack[pack_id] = entries
            self.entries.update(entries)

    def drop(self, pack_id: str) -> None:
        """Forget a pack deleted from the remote."""
        with self._lock:
            for key in self.by_pack.pop(pack_id, {}):
                if self.entries.get(key, PackEntry("", 0, 0)).pack == pack_id:
                    del self.entries[key]
        with contextlib.suppress(FileNotFoundError):
            (self.cache_dir / f"{pack_id}.idx").unlink()

    def _cache(self, pack_id: str, data: bytes) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        dest = self.cache_dir / f"{pack_id}.idx"
        tmp = self.cache_dir / temp_name(pack_id)
        tmp.write_bytes(data)
        os.replace(tmp, dest)


Segment = tuple[str, int] | tuple[str, int, int]  # (file, size) or (file, offset, size)


class ConcatReader(io.RawIOBase):
    """A seekable, read-only stream over files (or slices of files: objects inside a local
    pack) laid end to end: a pack read straight from the store, never built in memory."""

    def __init__(self, parts: Sequence[Segment]) -> None:
        super().__init__()
        self._paths = [part[0] for part in parts]
        self._bases = [part[1] if len(part) == 3 else 0 for part in parts]
        self._starts: list[int] = []
        total = 0
        for part in parts:
            self._starts.append(total)
            total += part[-1]
        self.size = total
        self._pos = 0
        self._index = -1
        self._file: io.FileIO | None = None
        self._file_pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        """Exactly ``size`` bytes unless the end comes first (a raw read may stop at a file
        boundary; multipart uploaders expect whole parts)."""
        left = self.size - self._pos
        want = left if size is None or size < 0 else min(size, left)
        buf = bytearray(max(0, want))
        view = memoryview(buf)
        got = 0
        while got < want and (n := self.readinto(view[got:])):
            got += n
        return bytes(view[:got])

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._pos >= self.size or not len(b):
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        end = self._starts[i + 1] if i + 1 < len(self._starts) else self.size
        if i != self._index or self._file is None:
            if self._file is not None:
                self._file.close()
            self._file = io.FileIO(self._paths[i], "r")
            self._index = i
            self._file_pos = -1  # not positioned yet
        if self._file_pos != self._pos - self._starts[i]:
            self._file_pos = self._file.seek(self._bases[i] + self._pos - self._starts[i]) - self._bases[i]
        want = min(len(b), end - self._pos)
        n = self._file.readinto(memoryview(b)[:want])
        if not n:  # the file is shorter than the index says: the store changed under us
            raise CorruptObjectError(f"{self._paths[i]} is shorter than recorded")
        self._pos += n
        self._file_pos += n
        return n

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


def upload_pack(remote: Remote, files: Sequence[tuple[str, str, int, int]],
                uploaded: Collection[str] = ()) -> tuple[str, bytes]:
    """Upload ``(store key, file, offset, size)`` objects as one pack streamed from where
    they lie (their own files or slices of local packs), then
    its index (readers trust only packs whose index they see); (pack id, index bytes).
    A pack in ``uploaded`` (an interrupted push got it up, not its index) is not sent again:
    its id fixes its bytes and uploads are atomic."""
    pack_id, index = index_bytes([(key, size) for key, _, _, size in files])
    if pack_id not in uploaded:
        with ConcatReader([(path, offset, size) for _, path, offset, size in files]) as reader:
            remote.put_stream(pack_key(pack_id), reader, reader.size)
    remote.put_bytes(index_key(pack_id), index)
    return pack_id, index


def read_entries(remote: Remote, pack_id: str, entries: Sequence[tuple[str, PackEntry]]
                 ) -> Iterable[tuple[str, memoryview]]:
    """Download the given objects of one pack with as few ranged reads as possible."""
    for rng in plan_ranges(entries):
        yield from slice_range(rng, remote.get_range(pack_key(pack_id), rng.start, rng.length))


@dataclass
class PackVerdict:
    """What remote gc does with one pack: keep it, delete it, or rewrite it with only its
    live objects."""

    pack: str
    action: str  # "keep" | "delete" | "repack"
    dead: list[str]
    live: list[tuple[str, PackEntry]]
    freed: int  # bytes the action frees


def judge_pack(pack_id: str, entries: dict[str, PackEntry], pack_size: int, index_size: int,
               reachable: set[str] | frozenset[str], *, old: bool,
               repack_ratio: float = 0.5) -> PackVerdict:
    """A pack with no live object goes; one whose dead bytes are at least ``repack_ratio``
    of it is rewritten; the rest stay (rewriting costs a download and an upload). Packs
    newer than the grace period (not ``old``) always stay."""
    live = [(k, e) for k, e in entries.items() if k in reachable]
    dead = [k for k in entries if k not in reachable]
    if not dead or not old:
        return PackVerdict(pack_id, "keep", dead, live, 0)
    if not live:
        return PackVerdict(pack_id, "delete", dead, live, pack_size + index_size)
    dead_bytes = sum(entries[k].size for k in dead)
    if dead_bytes >= repack_ratio * pack_size:
        return PackVerdict(pack_id, "repack", dead, live, dead_bytes)
    return PackVerdict(pack_id, "keep", dead, live, 0)


def repack(remote: Remote, index: PackIndex, pack_id: str,
           live: Sequence[tuple[str, PackEntry]]) -> str:
    """Rewrite a pack with only ``live`` objects (each verified on the way), then delete
    the old one. The new pack is complete before the old goes, so the live objects are
    on the remote at every moment. Returns the new pack's id."""
    from gitml.store.objects import check_blob

    parts: list[tuple[str, bytes]] = []
    for key, blob in read_entries(remote, pack_id, live):
        problem = check_blob(key, blob)
        if problem:
            raise CorruptObjectError(
                f"{key} in pack {pack_id} on remote '{remote.name}' is damaged ({problem}); "
                "the pack was left as it is", "push it again from a clone that has it")
        parts.append((key, bytes(blob)))
    new_id, data, new_index = build_pack(parts)
    remote.put_bytes(pack_key(new_id), data)
    remote.put_bytes(index_key(new_id), new_index)
    index.add(new_id, new_index)
    delete_pack(remote, index, pack_id)
    return new_id


def delete_pack(remote: Remote, index: PackIndex, pack_id: str) -> None:
    """Index first: a pack without an index is ignored by every reader."""
    remote.delete_many([index_key(pack_id)])
    remote.delete_many([pack_key(pack_id)])
    index.drop(pack_id)
