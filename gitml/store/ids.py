"""Content ids: xxh3-128 as 32 lowercase hex digits."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import xxhash

from gitml.store.readable import Readable

ID_RE = re.compile(r"^[0-9a-f]{32}$")
READ_BLOCK = 8 * 1024 * 1024


def is_valid_id(oid: str) -> bool:
    return bool(ID_RE.match(oid))


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def new_hasher() -> xxhash.xxh3_128:
    return xxhash.xxh3_128()


_local = threading.local()


def _buffer() -> memoryview:
    """One read buffer per thread (allocating 8 MiB per call costs more than hashing)."""
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(READ_BLOCK))
    return view


def hash_stream(stream: Readable) -> tuple[str, int]:
    """Hash a binary stream in fixed-size blocks; returns (id, size)."""
    hasher = xxhash.xxh3_128()
    size = 0
    view = _buffer()
    while True:
        n = stream.readinto(view)
        if not n:
            break
        hasher.update(view[:n])
        size += n
    return hasher.hexdigest(), size


def hash_file(path: Path | str) -> tuple[str, int]:
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size < READ_BLOCK:
            data = f.read()
            if len(data) < READ_BLOCK:
                return xxhash.xxh3_128_hexdigest(data), len(data)
            f.seek(0)
        return hash_stream(f)
