"""A minimal inotify(7) binding through the C library already loaded in the process (no
``ldconfig`` run, which ``ctypes.util.find_library`` would start). Linux only; callers
check :func:`available` first."""

from __future__ import annotations

import os
import struct
import sys
from typing import Any

# linux/inotify.h
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_OPEN = 0x2, 0x4, 0x8, 0x20
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x01000000, 0x02000000, 0x40000000
IN_CLOEXEC, IN_NONBLOCK = os.O_CLOEXEC, os.O_NONBLOCK
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name


def libc() -> Any:
    import ctypes

    lib = ctypes.CDLL(None, use_errno=True)
    lib.inotify_init1.argtypes = [ctypes.c_int]
    lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return lib


def available() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("GITML_NO_INOTIFY") == "1":
        return False
    try:
        lib = libc()
        return hasattr(lib, "inotify_init1") and hasattr(lib, "inotify_add_watch")
    except (OSError, AttributeError):
        return False


def errno_error() -> OSError:
    import ctypes

    err = ctypes.get_errno()
    return OSError(err, os.strerror(err))


def init(lib: Any, flags: int = IN_CLOEXEC | IN_NONBLOCK) -> int:
    fd: int = lib.inotify_init1(flags)
    if fd < 0:
        raise errno_error()
    return fd


def add_watch(lib: Any, fd: int, path: str, mask: int) -> int:
    wd: int = lib.inotify_add_watch(fd, os.fsencode(path), mask)
    if wd < 0:
        raise errno_error()
    return wd


def parse_events(buf: bytes) -> list[tuple[int, int, str]]:
    """(wd, mask, name) of each ``struct inotify_event`` in what one read returned."""
    out = []
    pos, n = 0, len(buf)
    while pos + _EVENT.size <= n:
        wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
        pos += _EVENT.size
        name = buf[pos:pos + length].split(b"\0", 1)[0]
        pos += length
        out.append((wd, mask, os.fsdecode(name)))
    return out
