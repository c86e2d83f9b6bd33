"""Tree objects: the content of a directory artifact.

Format (UTF-8 text, one entry per line, sorted by path, ``/`` separators)::

    gitml-tree 1
    100644 1234 0f3c8a1e9b7d6c5a4b3c2d1e0f9a8b7c images/cat.png

Fields: octal mode (100644 or 100755), size, oid, path. The tree's id is the xxh3-128 of
these bytes, so equal directories have equal ids whatever order they were walked in.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitml.errors import CorruptObjectError, GitMLError
from gitml.store.ids import is_valid_id

HEADER = "gitml-tree 1"
MODES = (0o100644, 0o100755)


@dataclass(frozen=True, order=True)
class TreeEntry:
    path: str
    oid: str
    size: int
    mode: int = 0o100644


def validate_relpath(path: str) -> str:
    """Reject paths that could escape the artifact folder or confuse the format."""
    if (not path or path[0] == "/" or "\\" in path or "\n" in path or "\r" in path
            or "//" in path or path[-1] == "/"
            or any(part in (".", "..") for part in path.split("/"))):
        raise GitMLError(f"unsafe path in directory artifact: {path!r}",
                         "paths must be relative, without '..', and without newlines")
    return path


def dumps(entries: list[TreeEntry]) -> bytes:
    lines = [HEADER]
    seen: set[str] = set()
    for e in sorted(entries, key=lambda e: e.path):
        validate_relpath(e.path)
        if e.path in seen:
            raise GitMLError(f"duplicate path in tree: {e.path!r}")
        seen.add(e.path)
        lines.append(f"{e.mode:o} {e.size} {e.oid} {e.path}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def loads(data: bytes, oid: str = "?") -> list[TreeEntry]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptObjectError(f"tree {oid} is not valid UTF-8") from e
    lines = text.split("\n")
    if not lines or lines[0] != HEADER or lines[-1] != "":
        raise CorruptObjectError(f"object {oid} is not a gitml tree")
    out: list[TreeEntry] = []
    for line in lines[1:-1]:
        parts = line.split(" ", 3)
        if len(parts) != 4:
            raise CorruptObjectError(f"tree {oid}: malformed entry {line!r}")
        mode_s, size_s, eoid, path = parts
        try:
            mode, size = int(mode_s, 8), int(size_s)
        except ValueError as e:
            raise CorruptObjectError(f"tree {oid}: malformed entry {line!r}") from e
        if mode not in MODES or size < 0 or not is_valid_id(eoid):
            raise CorruptObjectError(f"tree {oid}: malformed entry {line!r}")
        try:
            validate_relpath(path)
        except GitMLError as e:
            raise CorruptObjectError(f"tree {oid}: {e.message}") from e
        out.append(TreeEntry(path, eoid, size, mode))
    return out
