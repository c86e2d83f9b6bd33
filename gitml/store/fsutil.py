"""Small file-system helpers: atomic writes, copies and locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

FICLONE = 0x40049409  # linux/fs.h: clone a whole file (reflink) where the fs supports it


def _tmp_path(dest: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=".incomplete", dir=dest.parent)
    os.close(fd)
    return Path(name)


def atomic_write_bytes(dest: Path, data: bytes, *, readonly: bool = False) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(dest)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        if readonly:
            os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(dest: Path, text: str) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"))


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False, blocking: bool = True) -> Iterator[None]:
    """An advisory ``flock`` on ``path``: shared for writers of new objects, exclusive for gc."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            flags |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, flags)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise BlockingIOError(f"{path} is locked by another gitml process") from e
            raise
        yield
    finally:
        os.close(fd)
