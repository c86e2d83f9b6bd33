"""Writing the new chunks of a large file while it is being chunked.

The chunker hands over each new chunk; it is copied into one of a few page-aligned
buffers (the chunker reuses its own) and written by one of three threads, either with
O_DIRECT (:func:`gitml.store.fsutil.open_new_direct`) or through the page cache, whichever
has lately cost less per byte (:class:`WritePath`). Neither wins everywhere, nor on one
machine for long: a 512 MiB add takes 512 MiB of fresh page-cache memory, which on a VM
whose host hands memory out lazily (and on any machine under memory pressure) costs more
than the disk write, while a busy or slow disk (a spinning one, a network share) makes
O_DIRECT wait for it. Measured on one VM on two days: 0.3 s direct against 0.6–1.9 s
buffered, then 1.3 s direct against 0.75 s buffered. Several threads keep writes in
flight, so the disk stays busy while files are being created (an inode costs 0.3 ms and
more on an ext4 that recently deleted many files).

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
#: each way is measured on at least this many bytes before the cheaper one is preferred...
PROBE = 8 * 1024 * 1024
#: ...then one chunk in EXPLORE goes the other way, so a change of conditions is seen...
EXPLORE = 16
#: ...and a way's record is halved once it holds this many bytes: recent writes count most
WINDOW = 64 * 1024 * 1024


class WritePath:
    """Whether a large add's next chunk goes with O_DIRECT or through the page cache, for
    one store (files added side by side are judged together). Both ways are timed as the
    writers use them (same threads, same contention): the first chunks alternate until
    each way has :data:`PROBE` bytes, then the one with the lower seconds per byte carries
    the writes and one chunk in :data:`EXPLORE` (up to 8 times fewer, as the other way is
    dearer) takes the other."""

    def __init__(self) -> None:
        self._bytes = [0, 0]  # [through the page cache, direct]
        self._seconds = [0.0, 0.0]
        self._turn = 0
        self._lock = threading.Lock()

    def direct_now(self) -> bool:
        with self._lock:
            self._turn += 1
            if min(self._bytes) < PROBE:
                return self._turn % 2 == 1  # take turns until both are measured
            buffered, direct = self._costs()
            cheap, dear = sorted((buffered, direct))
            # the dearer way is tried less often the dearer it is (up to 8x less), so
            # checking it costs at most ~1/16 of the time whatever the gap
            period = EXPLORE * max(1, min(8, int(dear / max(cheap, 1e-12))))
            return (direct <= buffered) != (self._turn % period == 0)

    def _costs(self) -> tuple[float, float]:
        """Seconds per byte: (through the page cache, direct)."""
        return self._seconds[0] / max(self._bytes[0], 1), self._seconds[1] / max(self._bytes[1], 1)

    def prefers_direct(self) -> bool:
        """Whether O_DIRECT has cost less per byte (True until both ways are measured)."""
        buffered, direct = self._costs()
        return min(self._bytes) < PROBE or direct <= buffered

    def record(self, direct: bool, n: int, seconds: float) -> None:
        with self._lock:
            self._bytes[direct] += n
            self._seconds[direct] += seconds
            if self._bytes[direct] > WINDOW:
                self._bytes[direct] //= 2
                self._seconds[direct] /= 2


class ChunkWriters:
    """``put(oid, view, direct)`` on :data:`THREADS` threads, fed through a pool of aligned
    buffers; ``direct`` is what ``path`` says is the cheaper way now."""

    def __init__(self, put: Callable[[str, memoryview, bool], None], max_chunk: int,
                 path: WritePath) -> None:
        self._put = put
        self.path = path
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
        direct = self.path.direct_now()
        started = time.perf_counter()
        self._put(oid, data, direct)
        self.path.record(direct, len(data), time.perf_counter() - started)

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
