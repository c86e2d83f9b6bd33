"""Listing a folder artifact's files and fingerprinting their state.

A folder's fingerprint hashes every member's path, size, mtime and ctime: when it equals
the one recorded for the folder's last known content id, nothing changed and no byte is
read. The members are folders in sorted order, each folder's files in the order the file
system lists them (stable while the folder is unchanged; another order only costs a full
scan, never a wrong answer). Any rewrite, rename-over or chmod moves ctime, so
size/mtime/ctime identify a file's state without its inode.

On a folder of 100,000 files a no-op status is 100,000 ``lstat`` calls and little else,
so :func:`quick_fingerprint` shares them between this process and a forked one (a stat
holds the GIL long enough that threads only contend).
"""

from __future__ import annotations

import contextlib
import os
import stat as stat_mod
import threading
from array import array
from pathlib import Path

from gitml.errors import GitMLError
from gitml.layout import TMP_PREFIX, owner_is_gone
from gitml.store.fsutil import write_all
from gitml.store.ids import new_hasher

Walked = tuple[str, str, os.stat_result]  # (path relative to the folder, path, stat)
#: below this many files a no-op status stats them all in this process
FORK_FILES = 20_000


def walk(root: Path, repo_root: Path) -> list[Walked]:
    """Every regular file below ``root`` (and links to files inside the repository); any
    other kind of entry, a name Git cannot hold or a link out of the repository is a
    :class:`GitMLError`. Temp files of killed gitml processes are removed on the way."""
    results: dict[str, list[Walked]] = {}
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        files, subdirs = _list_folder(folder, prefix, repo_root)
        results[prefix] = files
        stack += subdirs
    out: list[Walked] = []
    for prefix in sorted(results):
        out += results[prefix]
    return out


def _list_folder(folder: str, prefix: str, repo_root: Path) -> tuple[list[Walked], list[tuple[str, str]]]:
    """The files of one folder and its subfolders (path, relative prefix)."""
    try:
        entries = list(os.scandir(folder))
    except PermissionError as e:
        raise GitMLError(f"cannot read folder {folder}: permission denied",
                         "check the folder's permissions") from e
    out: list[Walked] = []
    subdirs: list[tuple[str, str]] = []
    for entry in entries:
        name = entry.name
        if name.startswith(TMP_PREFIX):
            if owner_is_gone(name):  # left by a killed gitml: never content
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            continue
        check_name(entry.path)
        if entry.is_dir(follow_symlinks=False):
            subdirs.append((entry.path, prefix + name + "/"))
        elif entry.is_file(follow_symlinks=False):
            out.append((prefix + name, entry.path, entry.stat(follow_symlinks=False)))
        else:
            out.append((prefix + name, entry.path, _link_target_stat(entry, repo_root)))
    return out, subdirs


def _link_target_stat(entry: os.DirEntry[str], repo_root: Path) -> os.stat_result:
    """The stat of a link's target inside the repository; anything else is refused."""
    if entry.is_symlink():
        target = Path(os.path.realpath(entry.path))
        if not target.is_relative_to(repo_root):
            raise GitMLError(f"{entry.path} is a link to {target}, outside the repository",
                             "copy the file in or remove the link")
        st = os.stat(entry.path)
        if stat_mod.S_ISDIR(st.st_mode):
            raise GitMLError(f"{entry.path} is a link to a folder; gitml does not follow "
                             "folder links", "replace it with the folder's content")
        return st
    raise GitMLError(f"{entry.path} is {special_kind(entry.stat(follow_symlinks=False))}; "
                     "gitml versions regular files only", "move it out of the folder")


def special_kind(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat_mod.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat_mod.S_ISSOCK(mode):
        return "a socket"
    if stat_mod.S_ISCHR(mode) or stat_mod.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_name(path: str) -> None:
    """Refuse names Git or the store cannot hold faithfully: bytes that are not UTF-8
    (they cannot be written to Git's index or a tree object) and line breaks (a
    ``.gitignore`` pattern and the tree format are line-based)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise GitMLError(f"{shown!r}: the file name is not valid UTF-8",
                         "rename the file (e.g. with `convmv`)") from None
    if "\n" in path or "\r" in path:
        raise GitMLError(f"{path!r}: file names with line breaks are not supported",
                         "rename the file")


# ------------------------------------------------------------------------- fingerprints
def fingerprint(walked: list[Walked]) -> tuple[str, int]:
    """(hash of every member's path, size, mtime and ctime; newest mtime)."""
    return _digest([w[0] for w in walked], array("q", [w[2].st_mtime_ns for w in walked]),
                   array("q", [w[2].st_ctime_ns for w in walked]),
                   array("q", [w[2].st_size for w in walked]))


def _digest(names: list[str], mtimes: array[int], ctimes: array[int], sizes: array[int]) -> tuple[str, int]:
    hasher = new_hasher()
    hasher.update("\0".join(names).encode("utf-8", "surrogateescape"))
    hasher.update(mtimes.tobytes())
    hasher.update(ctimes.tobytes())
    hasher.update(sizes.tobytes())
    return hasher.hexdigest(), max(mtimes, default=0)


def may_fork() -> bool:
    """Fork only from a single-threaded process (the CLI): a child forked beside other
    threads may find a lock one of them held (malloc's, the import lock) taken forever."""
    return hasattr(os, "fork") and threading.active_count() == 1


Listing = list[tuple[str, str, list[str]]]  # (folder path, relative prefix, file names)
Stats = tuple["array[int]", "array[int]", "array[int]"]  # mtimes, ctimes, sizes
Part = tuple[list[str], "array[int]", "array[int]", "array[int]"]  # names, mtimes, ctimes, sizes


def quick_fingerprint(root: Path | str, expected_files: int = 0) -> tuple[str, int] | None:
    """What ``fingerprint(walk(root))`` gives when the folder holds only plain files and
    folders (else None: the full walk decides, and reports what is wrong), at the cost of
    a listing and one ``lstat`` per file. With many files (``expected_files``: what the
    pointer says), half of the subtrees are walked by a forked process."""
    parts: dict[str, Part] = {}
    frontier: list[tuple[str, str]] = [(str(root), "")]
    if expected_files >= FORK_FILES and may_fork():
        # list the first levels here until there are subtrees to share out
        while 0 < len(frontier) < 8:
            nxt: list[tuple[str, str]] = []
            for folder, prefix in frontier:
                listed = _list_and_stat(folder, prefix, nxt)
                if listed is None:
                    return None
                parts[prefix] = listed
            frontier = nxt
        child = _fork_walk(frontier[1::2]) if len(frontier) > 1 else None
        mine = _walk_parts(frontier[0::2])
        theirs = _collect(*child) if child is not None else {}
        if mine is None or theirs is None:
            return None
        parts.update(theirs)
        parts.update(mine)
    else:
        walked = _walk_parts(frontier)
        if walked is None:
            return None
        parts = walked
    names: list[str] = []
    mtimes, ctimes, sizes = array("q"), array("q"), array("q")
    for prefix in sorted(parts):
        files, m, c, z = parts[prefix]
        names += [prefix + name for name in files]
        mtimes += m
        ctimes += c
        sizes += z
    return _digest(names, mtimes, ctimes, sizes)


def _walk_parts(tops: list[tuple[str, str]]) -> dict[str, Part] | None:
    parts: dict[str, Part] = {}
    stack = list(tops)
    while stack:
        folder, prefix = stack.pop()
        listed = _list_and_stat(folder, prefix, stack)
        if listed is None:
            return None
        parts[prefix] = listed
    return parts


def _list_and_stat(folder: str, prefix: str, subdirs: list[tuple[str, str]]) -> Part | None:
    """One folder's files with their stats (subfolders go onto ``subdirs``); None on
    anything but plain files and folders (a link, a special file, a gitml temp file)."""
    names: list[str] = []
    mtimes, ctimes, sizes = array("q"), array("q"), array("q")
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    lstat, isreg = os.lstat, stat_mod.S_ISREG
    try:
        with os.scandir(fd) as it:
            for entry in it:
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append((f"{folder}/{name}", f"{prefix}{name}/"))
                    continue
                st = lstat(name, dir_fd=fd)
                if not isreg(st.st_mode) or name.startswith(TMP_PREFIX):
                    return None
                names.append(name)
                mtimes.append(st.st_mtime_ns)
                ctimes.append(st.st_ctime_ns)
                sizes.append(st.st_size)
    except OSError:
        return None  # changed under us: the full walk will say how
    finally:
        os.close(fd)
    return names, mtimes, ctimes, sizes


def _fork_walk(tops: list[tuple[str, str]]) -> tuple[int, int]:
    """Start a child that walks ``tops`` and sends its parts down a pipe: (pid, read end)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: walk, send, exit at once (no cleanup of the parent's state)
        code = 1
        try:
            os.close(read_end)
            parts = _walk_parts(tops)
            if parts is not None:
                import marshal

                write_all(write_end, marshal.dumps(
                    [(p, n, m.tobytes(), c.tobytes(), z.tobytes()) for p, (n, m, c, z) in parts.items()]))
                code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _collect(pid: int, read_end: int) -> dict[str, Part] | None:
    import marshal

    try:
        data = _read_all(read_end)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return None
    parts: dict[str, Part] = {}
    for prefix, names, m, c, z in marshal.loads(data):
        parts[prefix] = (names, array("q", m), array("q", c), array("q", z))
    return parts


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
