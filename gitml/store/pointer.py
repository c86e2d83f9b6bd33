"""The pointer format: a small, stable, diff-friendly text file Git tracks.

Example (file artifact ``data/train.parquet`` → pointer ``data/train.parquet.gitml``)::

    # gitml pointer: the bytes live in the gitml store (`git ml checkout` restores them)
    version 1
    kind file
    oid 0f3c8a1e9b7d6c5a4b3c2d1e0f9a8b7c
    size 1048576

A directory adds ``files N`` (its oid is the id of its tree object). Keys are written in
this order; parsing is strict so a damaged pointer is reported, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gitml.errors import PointerError
from gitml.store.ids import is_valid_id

SUFFIX = ".gitml"
HEADER = "# gitml pointer: the bytes live in the gitml store (`git ml checkout` restores them)"
VERSION = "1"
MAX_POINTER_SIZE = 4096

Kind = Literal["file", "dir"]


@dataclass(frozen=True)
class Pointer:
    oid: str
    size: int
    kind: Kind = "file"
    files: int | None = None

    def dumps(self) -> str:
        lines = [HEADER, f"version {VERSION}", f"kind {self.kind}", f"oid {self.oid}",
                 f"size {self.size}"]
        if self.kind == "dir":
            lines.append(f"files {self.files or 0}")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"oid": self.oid, "size": self.size, "kind": self.kind}
        if self.kind == "dir":
            d["files"] = self.files
        return d


def parse(text: bytes | str, source: str = "pointer") -> Pointer:
    """Parse pointer text; raises :class:`PointerError` naming ``source`` on any damage."""
    if isinstance(text, bytes):
        if len(text) > MAX_POINTER_SIZE:
            raise PointerError(f"{source}: not a gitml pointer (too large)",
                               "restore it with `git checkout -- <pointer>`")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PointerError(f"{source}: not a gitml pointer (binary data)",
                               "restore it with `git checkout -- <pointer>`") from e
    fields: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if not value or key in fields:
            raise PointerError(f"{source}:{n}: malformed line {raw!r}",
                               "restore it with `git checkout -- <pointer>`")
        fields[key] = value.strip()
    bad = PointerError  # shorter lines below
    if fields.get("version") != VERSION:
        raise bad(f"{source}: unsupported or missing pointer version {fields.get('version')!r}",
                  "upgrade gitml or restore the pointer with `git checkout -- <pointer>`")
    unknown = set(fields) - {"version", "kind", "oid", "size", "files"}
    if unknown:
        raise bad(f"{source}: unknown pointer key(s) {', '.join(sorted(unknown))}")
    kind = fields.get("kind")
    if kind not in ("file", "dir"):
        raise bad(f"{source}: kind must be 'file' or 'dir', got {kind!r}")
    oid = fields.get("oid", "")
    if not is_valid_id(oid):
        raise bad(f"{source}: invalid oid {oid!r} (expected 32 hex digits)",
                  "restore it with `git checkout -- <pointer>`")
    try:
        size = int(fields.get("size", ""))
        files = int(fields["files"]) if "files" in fields else None
    except ValueError as e:
        raise bad(f"{source}: size/files must be integers") from e
    if size < 0 or (files is not None and files < 0):
        raise bad(f"{source}: negative size")
    if kind == "file" and files is not None:
        raise bad(f"{source}: 'files' is only valid for kind dir")
    if kind == "dir" and files is None:
        raise bad(f"{source}: a dir pointer needs 'files'")
    return Pointer(oid=oid, size=size, kind=kind, files=files)  # type: ignore[arg-type]


def pointer_path_for(artifact_path: str) -> str:
    return artifact_path.rstrip("/") + SUFFIX


def artifact_path_for(pointer_path: str) -> str:
    assert pointer_path.endswith(SUFFIX)
    return pointer_path[: -len(SUFFIX)]
