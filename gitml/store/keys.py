"""Names of objects in a store: ``objects/ab/cdef…`` (bytes) and ``chunked/ab/cdef…``
(chunk lists), the same in the local store, on remotes and in pack indexes."""

from __future__ import annotations

from gitml.layout import STORE_CHUNKED, STORE_OBJECTS
from gitml.store.ids import is_valid_id

OBJECTS = STORE_OBJECTS
CHUNKED = STORE_CHUNKED


def key_for(kind: str, oid: str) -> str:
    return f"{kind}/{oid[:2]}/{oid[2:]}"


def parse_key(key: str) -> tuple[str, str] | None:
    parts = key.split("/")
    if len(parts) != 3 or parts[0] not in (OBJECTS, CHUNKED):
        return None
    oid = parts[1] + parts[2]
    return (parts[0], oid) if is_valid_id(oid) and len(parts[1]) == 2 else None
