"""Writing the new chunks of a large file while it is being chunked.

The chunker hands over each new chunk; it is copied into one of a few page-aligned
buffers (the chunker reuses its own) and written by one of three threads with O_DIRECT where
the file system allows (:func:`gitml.store.fsutil.open_new_direct`). Going around the
page cache matters: a 512 MiB add otherwise takes 512 MiB of fresh page-cache memory,
which on a VM whose host hands out memory lazily (and on any machine under memory
pressure) costs more than the disk write itself; the store copy is not read again soon.
Several threads keep writes in flight, so the disk stays busy while files are being created
(an inode costs 0.3 ms and more on an ext4 that recently deleted many files).

Memory stays flat: ``BUFFERS`` buffers of the largest chunk, whatever the file size. The
first failure stops the writers; :meth:`ChunkWriters.close` raises it. Each chunk is
written to a temp file and renamed into place (:meth:`ObjectStore.put_bytes`), so a
failure leaves no partial object under a real name.
"""

from __future__ import annotations

import mmap
import queue
import threading
from collections.abc import Callable

#: buffers in flight: three being written, the rest queued
BUFFERS = 10
THREADS = 3


class ChunkWriters:
    """``put(oid, view)`` on :data:`THREADS` threads, fed through a pool of aligned buffers."""

    def __init__(self, put: Callable[[str, memoryview], None], max_chunk: int) -> None:
        self._put = put
        self._free: queue.Queue[memoryview] = queue.Queue()
        for _ in range(BUFFERS):  # anonymous mmaps are page-aligned, as O_DIRECT needs
            self._free.put(memoryview(mmap.mmap(-1, max_chunk)))
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
                    self._put(oid, buf[:n])
            except BaseException as e:
                self.failures.append(e)
            finally:
                self._free.put(buf)

    def submit(self, oid: str, data: memoryview) -> None:
        """Queue a copy of ``data`` (waits for a free buffer while both threads are busy)."""
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
