"""The one stream type the store reads from: anything with ``read`` and ``readinto``
(a file, a chunk reader, an upload source), so no caller needs a ``BinaryIO`` cast."""

from __future__ import annotations

from typing import Protocol


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...
