"""What a remote holds, read the way a fresh reader would: loose keys plus the objects
listed by each pack's index (packs whose index is missing are ignored, like gitml does)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from gitml.store import packs


def remote_objects(keys: Iterable[str], read: Callable[[str], bytes]) -> dict[str, bytes]:
    """store key -> bytes, for every gitml object on a remote."""
    keys = list(keys)
    out = {k: read(k) for k in keys if k.startswith(("objects/", "chunked/"))}
    for key in keys:
        parsed = packs.parse_pack_key(key)
        if parsed is None or parsed[1] != "idx" or packs.pack_key(parsed[0]) not in keys:
            continue
        entries = packs.parse_index(read(key), parsed[0])
        data = read(packs.pack_key(parsed[0]))
        for k, e in entries.items():
            out[k] = data[e.offset: e.offset + e.size]
    return out


def folder_remote_objects(root: Path) -> dict[str, bytes]:
    keys = [p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")]
    return remote_objects(keys, lambda k: (root / k).read_bytes())


def pack_location(keys: Iterable[str], read: Callable[[str], bytes], want: str
                  ) -> tuple[str, packs.PackEntry]:
    """(pack key, entry) of the store key ``want`` inside a pack."""
    for key in keys:
        parsed = packs.parse_pack_key(key)
        if parsed is not None and parsed[1] == "idx":
            entries = packs.parse_index(read(key), parsed[0])
            if want in entries:
                return packs.pack_key(parsed[0]), entries[want]
    raise AssertionError(f"{want} is in no pack")
