"""Content-defined chunking of large files (FastCDC) and the chunk-list format.

A file of at least ``CHUNK_THRESHOLD`` bytes is stored as chunks of about 1.25 MiB
(FastCDC with a 1 MiB target, 256 KiB minimum, 4 MiB maximum): a 1 GiB file becomes
~850 chunk objects, and an edit only changes the chunks around it. The file's id stays
the xxh3-128 of its whole content; its chunk list is stored under ``chunked/``::

    gitml-chunks 1
    size 1073741824
    0f3c8a1e9b7d6c5a4b3c2d1e0f9a8b7c 1310720
    ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gitml.errors import CorruptObjectError
from gitml.store.ids import is_valid_id
from gitml.store.readable import Readable

CHUNK_THRESHOLD = 8 * 1024 * 1024
AVG_CHUNK = 1024 * 1024
MIN_CHUNK = AVG_CHUNK // 4
MAX_CHUNK = AVG_CHUNK * 4  # pyfastcdc's defaults for this target, spelled out
HEADER = "gitml-chunks 1"


@dataclass(frozen=True)
class ChunkRef:
    oid: str
    size: int


def iter_chunks(stream: Readable) -> Iterator[memoryview]:
    """Yield the content-defined chunks of ``stream``; each view is valid until the next."""
    from pyfastcdc import FastCDC

    cdc = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    for chunk in cdc.cut_stream(stream):
        yield chunk.data


def dumps(size: int, chunks: list[ChunkRef]) -> bytes:
    lines = [HEADER, f"size {size}"] + [f"{c.oid} {c.size}" for c in chunks]
    return ("\n".join(lines) + "\n").encode("ascii")


def loads(data: bytes, oid: str = "?") -> tuple[int, list[ChunkRef]]:
    try:
        lines = data.decode("ascii").split("\n")
        if lines[0] != HEADER or not lines[1].startswith("size ") or lines[-1] != "":
            raise ValueError("bad header")
        size = int(lines[1][5:])
        chunks = []
        for line in lines[2:-1]:
            coid, csize = line.split(" ")
            if not is_valid_id(coid):
                raise ValueError(f"bad chunk id {coid!r}")
            chunks.append(ChunkRef(coid, int(csize)))
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise CorruptObjectError(f"chunk list of {oid} is damaged ({e})") from e
    if sum(c.size for c in chunks) != size:
        raise CorruptObjectError(f"chunk list of {oid} does not add up to {size} bytes")
    return size, chunks
