"""Small file-system helpers: atomic writes, copies, temp names and locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from gitml.errors import GitMLError
from gitml.layout import temp_name

FICLONE = 0x40049409  # linux/fs.h: clone a whole file (reflink) where the fs supports it

_devices: dict[str, int] = {}
_devices_lock = threading.Lock()


def _device(folder: str) -> int | None:
    dev = _devices.get(folder)
    if dev is None:
        try:
            dev = os.stat(folder).st_dev
        except OSError:
            return None
        with _devices_lock:
            _devices[folder] = dev
    return dev


def temp_path_for(dest: Path | str, tmp_dir: Path | str | None = None) -> str:
    """Where to write ``dest`` before renaming it into place: in ``tmp_dir`` (gitml's own
    folder, where a killed process leaves nothing in the user's tree) when it is on the
    same file system as ``dest``, else beside ``dest`` under a name gitml sweeps."""
    dest = str(dest)
    folder, _, name = dest.rpartition("/")
    if tmp_dir is not None:
        tmp = str(tmp_dir)
        here = _device(folder or "/")
        if here is not None and here == _device(tmp):
            return f"{tmp}/{temp_name(name)}"
    return f"{folder}/{temp_name(name)}"


def atomic_write_bytes(dest: Path, data: bytes, *, readonly: bool = False,
                       tmp_dir: Path | None = None) -> None:
    """Write ``data`` to ``dest`` whole or not at all: a failed write (a full disk, a kill)
    leaves the old file. New files get the mode the umask gives (0644 under 022), like
    Git's; ``readonly`` makes them 0444."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest, tmp_dir)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444 if readonly else 0o666)
        with open(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(dest: Path, text: str, *, tmp_dir: Path | None = None) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"), tmp_dir=tmp_dir)


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False, blocking: bool = True) -> Iterator[None]:
    """An advisory ``flock`` on ``path``: shared for writers of new objects, exclusive for gc
    and for read-modify-writes of shared files."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise GitMLError(f"cannot open the lock file {path}: {e.strerror}",
                         "check the permissions of that folder") from e
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


def store_write_error(e: OSError, where: Path) -> GitMLError:
    if e.errno == errno.ENOSPC:
        return GitMLError(f"no space left on device while writing {where}",
                          "free some space and run the command again")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return GitMLError(f"the gitml store is not writable: {where}",
                          "check its permissions or mount")
    return GitMLError(f"cannot write to the gitml store at {where}: {e.strerror}")


def read_listed(path: str, size: int) -> bytes:
    """The content of the file at ``path``, which a listing saw at ``size`` bytes: one read
    when it still has that size (the usual case; open, read, close and nothing else), read
    to the end when it grew or shrank since."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, size + 1)
        if len(data) != size:
            parts = [data]
            while chunk := os.read(fd, 1 << 20):
                parts.append(chunk)
            data = b"".join(parts)
        return data
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


#: O_DIRECT wants buffer addresses, file offsets and lengths in whole logical blocks; a
#: page (what mmap hands out) is a whole number of them on every device in practice
DIRECT_ALIGN = 4096


def open_new_direct(path: str, mode: int) -> tuple[int, bool]:
    """Create ``path`` for writing with O_DIRECT (the bytes go to the disk without taking
    page-cache memory) where the file system allows it, else normally; (fd, direct)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    direct = getattr(os, "O_DIRECT", 0)
    if direct:
        try:
            return os.open(path, flags | direct, mode), True
        except OSError as e:
            if e.errno != errno.EINVAL:  # EINVAL: this file system has no O_DIRECT
                raise
    return os.open(path, flags, mode), False


def write_all_direct(fd: int, data: memoryview) -> None:
    """Write ``data`` (its start page-aligned) to ``fd`` opened by :func:`open_new_direct`
    with O_DIRECT: its whole blocks directly, the tail (or the rest, if the device refuses
    the alignment) through the page cache."""
    whole = len(data) & ~(DIRECT_ALIGN - 1)
    done = 0
    try:
        while done < whole and not done % DIRECT_ALIGN:  # a short write off a block boundary:
            done += os.write(fd, data[done:whole])       # the rest goes buffered
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    if done < len(data):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        write_all(fd, data[done:])


def kernel_copy(src_fd: int, dst_fd: int) -> bool:
    """Copy the rest of ``src_fd`` into ``dst_fd`` in the kernel (copy_file_range); False,
    with nothing copied, where the file systems do not support it."""
    copied = 0
    try:
        while n := os.copy_file_range(src_fd, dst_fd, 1 << 30):
            copied += n
    except OSError:
        if copied:
            raise
        return False
    return True
