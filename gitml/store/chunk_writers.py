"""Writing the new chunks of a large file while it is being chunked.

The chunker hands over each new chunk; it is copied into one of a few page-aligned
buffers (the chunker reuses its own) and written by one of three threads, with O_DIRECT
where the file system allows (:func:`gitml.store.fsutil.open_new_direct`). Going around the
page cache matters: a 512 MiB add otherwise takes 512 MiB of fresh page-cache memory,
which on a VM whose host hands out memory lazily (and on any machine under memory
pressure) costs more than the disk write itself; the store copy is not read again soon.
Several threads keep writes in flight, so the disk stays busy while files are being created
(an inode costs 0.3 ms and more on an ext4 that recently deleted many files).

A slow disk (a spinning one, a network share) would make the add wait for it, where the
page cache would have let it return at memory speed: when the store's first ``PROBE``
bytes went out slower than ``MIN_DIRECT_RATE`` (:class:`DirectProbe`, one per store, so
files added side by side are judged together), the rest go through the page cache.

Memory stays flat: at most ``BUFFERS`` buffers of the largest chunk, whatever the file
size, and only as many as the writers fall behind. The first failure stops the writers;
:meth:`ChunkWriters.close` raises it. Each chunk is written to a temp file and renamed
into place (:meth:`ObjectStore.put_bytes`), so a failure leaves no partial object under a
real name.
"""

from __future__ import annotations

import mmap
import queue
import threading
import time
from collections.abc import Callable

#: buffers in flight: three being written, the rest queued
BUFFERS = 10
THREADS = 3
#: direct writes are judged once this many bytes went out that way...
PROBE = 32 * 1024 * 1024
#: ...and kept only when the disk took them at least this fast (bytes per second)
MIN_DIRECT_RATE = 400 * 1024 * 1024


class DirectProbe:
    """Whether O_DIRECT still pays for one store: judged once, on the disk's throughput
    over the first :data:`PROBE` bytes, counting only the time some direct write was under
    way (a slow chunker is not a slow disk; several writers share one disk)."""

    def __init__(self) -> None:
        self.direct = True
        self._bytes = 0
        self._active = 0.0  # seconds during which at least one direct write was under way
        self._running = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def begin(self) -> None:
        with self._lock:
            if not self._running:
                self._since = time.monotonic()
            self._running += 1

    def end(self, n: int) -> None:
        with self._lock:
            self._running -= 1
            now = time.monotonic()
            if not self._running:
                self._active += now - self._since
            elif self._bytes < PROBE:
                self._active += now - self._since  # the span so far counts once
                self._since = now
            before = self._bytes
            self._bytes += n
            if before < PROBE <= self._bytes:
                self.direct = self._bytes / max(self._active, 1e-9) >= MIN_DIRECT_RATE


class ChunkWriters:
    """``put(oid, view, direct)`` on :data:`THREADS` threads, fed through a pool of aligned
    buffers; ``direct`` is what ``probe`` says: whether O_DIRECT is still worth trying."""

    def __init__(self, put: Callable[[str, memoryview, bool], None], max_chunk: int,
                 probe: DirectProbe) -> None:
        self._put = put
        self.probe = probe
        self._max_chunk = max_chunk
        self._free: queue.Queue[memoryview] = queue.Queue()
        self._buffers = 0  # made when needed: adding several files at once keeps memory low
        self._pending: queue.Queue[tuple[str, memoryview, int] | None] = queue.Queue()
        self.failures: list[BaseException] = []
        self._threads = [threading.Thread(target=self._run, name=f"gitml-chunk-writer-{i}", daemon=True)
                         for i in range(THREADS)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while (item := self._pending.get()) is not None:
            oid, buf, n = item
            try:
                if not self.failures:
                    self._write(oid, buf[:n])
            except BaseException as e:
                self.failures.append(e)
            finally:
                self._free.put(buf)

    def _write(self, oid: str, data: memoryview) -> None:
        if not self.probe.direct:
            self._put(oid, data, False)
            return
        self.probe.begin()
        n = 0
        try:
            self._put(oid, data, True)
            n = len(data)
        finally:
            self.probe.end(n)

    def submit(self, oid: str, data: memoryview) -> None:
        """Queue a copy of ``data`` (waits for a free buffer while every thread is busy)."""
        try:
            buf = self._free.get_nowait()
        except queue.Empty:
            if self._buffers < BUFFERS:  # anonymous mmaps are page-aligned, as O_DIRECT needs
                self._buffers += 1
                buf = memoryview(mmap.mmap(-1, self._max_chunk))
            else:
                buf = self._free.get()
        buf[:len(data)] = data
        self._pending.put((oid, buf, len(data)))

    def close(self) -> None:
        """Wait for every queued chunk; raise the first failure."""
        for _ in self._threads:
            self._pending.put(None)
        for t in self._threads:
            t.join()
        if self.failures:
            raise self.failures[0]

    def abort(self) -> None:
        """Stop after the writes under way (their temp files are renamed or removed)."""
        self.failures.append(RuntimeError("aborted"))
        for _ in self._threads:
            self._pending.put(None)
        for t in self._threads:
            t.join()
