"""The watcher: a resident process that tells ``git ml status`` which artifact folders
changed since it last asked, so a no-op status of a folder of 100,000 files stats none of
them (what ``core.fsmonitor`` does for Git).

It holds inotify watches on every folder below each artifact folder a client has asked
about, and counts events: a folder's answer is "unchanged" only when no event touched it
since the token the client presents, "changed" otherwise, and "unknown" when it was not
watched then (first question, another watcher instance, lost events, no watches left).
Before answering it creates a cookie file in a folder it watches and reads events until
the cookie's own event arrives: the kernel queues events in order, so every change made
before the question is counted (Git's fsmonitor uses the same handshake).

Not seen, as with any inotify watcher: writes through a mapping (``mmap``) and writes
through a hard link that lives outside the folder. ``git ml status --no-watch`` walks.

Protocol: one request and one reply per connection over ``<ml dir>/watch.sock``, each
ended by closing the writing side (see :func:`gitml.artifacts.watch_client.ask`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import stat as stat_mod
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from gitml import inotify as ino
from gitml.artifacts.watch_client import COOKIE_DIR, LOCK_NAME, SOCKET_NAME

MASK = (ino.IN_MODIFY | ino.IN_ATTRIB | ino.IN_CREATE | ino.IN_DELETE | ino.IN_MOVED_FROM
        | ino.IN_MOVED_TO | ino.IN_DELETE_SELF | ino.IN_MOVE_SELF | ino.IN_ONLYDIR
        | ino.IN_DONT_FOLLOW)
COOKIE_MASK = ino.IN_CREATE | ino.IN_DELETE_SELF | ino.IN_MOVE_SELF | ino.IN_ONLYDIR
SYNC_TIMEOUT_S = 2.0
CHECK_EVERY_S = 30.0  # how often an idle watcher checks that its socket is still its own


@dataclass
class Root:
    path: str
    dev: int
    ino: int
    last: int  # sequence number of the last event below it
    wds: set[int] = field(default_factory=set)
    broken: str | None = None  # why it cannot be watched (it is then always "unknown")


class Watcher:
    def __init__(self, ml_dir: str) -> None:
        self.lib = ino.libc()
        self.fd = ino.init(self.lib)
        self.instance = f"{os.getpid()}-{time.time_ns()}"
        self.seq = 0
        self.roots: dict[str, Root] = {}
        self.by_wd: dict[int, tuple[Root, str]] = {}
        self.cookie_dir = os.path.join(ml_dir, COOKIE_DIR)
        os.makedirs(self.cookie_dir, exist_ok=True)
        for name in os.listdir(self.cookie_dir):  # left by a killed watcher
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.cookie_dir, name))
        self.cookie_wd = ino.add_watch(self.lib, self.fd, self.cookie_dir, COOKIE_MASK)
        self.cookies_seen: set[str] = set()
        self.cookie_n = 0
        self.overflowed = False
        self.gone = False  # our own folder was deleted: time to exit

    def bump(self) -> int:
        self.seq += 1
        return self.seq

    # ------------------------------------------------------------------ watches
    def watch_root(self, path: str) -> Root | None:
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat_mod.S_ISDIR(st.st_mode):
            return None
        root = Root(path, st.st_dev, st.st_ino, self.bump())
        self.roots[path] = root
        self._watch_tree(root, path)
        return root

    def _watch_tree(self, root: Root, top: str) -> None:
        stack = [top]
        while stack and root.broken is None:
            d = stack.pop()
            try:
                wd = ino.add_watch(self.lib, self.fd, d, MASK)
            except OSError as e:
                if d == top or e.errno == 28:  # ENOSPC: out of watches
                    root.broken = f"cannot watch {d}: {e.strerror}"
                    log(f"{root.broken}; `{root.path}` will be walked on every status")
                continue  # a folder gone meanwhile: its creation event already counted
            root.wds.add(wd)
            self.by_wd[wd] = (root, d)
            try:
                with os.scandir(d) as it:
                    stack += [e.path for e in it if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
        if root.broken is not None:
            self.forget(root, keep_entry=True)

    def forget(self, root: Root, *, keep_entry: bool = False) -> None:
        for wd in root.wds:
            self.by_wd.pop(wd, None)
            self.lib.inotify_rm_watch(self.fd, wd)
        root.wds.clear()
        if not keep_entry:
            self.roots.pop(root.path, None)

    # ------------------------------------------------------------------ events
    def read_events(self) -> None:
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            self.handle(ino.parse_events(buf))

    def handle(self, events: list[tuple[int, int, str]]) -> None:
        for wd, mask, name in events:
            if mask & ino.IN_Q_OVERFLOW:
                self.overflowed = True
                for root in self.roots.values():
                    root.last = self.bump()
                continue
            if wd == self.cookie_wd:
                if mask & ino.IN_CREATE:
                    self.cookies_seen.add(name)
                elif mask & (ino.IN_DELETE_SELF | ino.IN_MOVE_SELF | ino.IN_IGNORED):
                    self.gone = True
                continue
            entry = self.by_wd.get(wd)
            if entry is None:
                continue
            root, d = entry
            root.last = self.bump()
            if mask & ino.IN_IGNORED:
                self.by_wd.pop(wd, None)
                root.wds.discard(wd)
            if d == root.path and mask & (ino.IN_DELETE_SELF | ino.IN_MOVE_SELF | ino.IN_IGNORED):
                self.forget(root)  # the folder itself went: watch it anew when asked
            elif mask & ino.IN_ISDIR and mask & (ino.IN_CREATE | ino.IN_MOVED_TO):
                self._watch_tree(root, os.path.join(d, name))

    def sync(self) -> bool:
        """Read events until a cookie made now comes back: then every change made before
        this call has been counted. False when it did not come back in time."""
        self.cookie_n += 1
        name = f"c{self.cookie_n}"
        path = os.path.join(self.cookie_dir, name)
        self.overflowed = False
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        except OSError:
            return False
        try:
            deadline = time.monotonic() + SYNC_TIMEOUT_S
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            while name not in self.cookies_seen and not self.overflowed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if poller.poll(left * 1000):
                    self.read_events()
            return name in self.cookies_seen
        finally:
            self.cookies_seen.discard(name)
            with contextlib.suppress(OSError):
                os.unlink(path)

    # ------------------------------------------------------------------ questions
    def info(self) -> dict[str, Any]:
        return {"instance": self.instance, "pid": os.getpid(), "roots": {
            p: {"watches": len(r.wds), "broken": r.broken} for p, r in sorted(self.roots.items())}}

    def answer(self, asked: list[tuple[str, str]]) -> tuple[str, list[str]]:
        """The new token and, per (folder, token) asked, the folder's state since then."""
        synced = self.sync()
        states = [self._state(path, since, synced) for path, since in asked]
        return f"{self.instance}:{self.seq}", states

    def _state(self, path: str, since: str, synced: bool) -> str:
        if not os.path.isabs(path):
            return "unknown"
        root = self.roots.get(path)
        if root is not None:
            try:
                st = os.lstat(path)
                same = (st.st_dev, st.st_ino) == (root.dev, root.ino)
            except OSError:
                same = False
            if not same:  # replaced (say a parent renamed away and another put there)
                self.forget(root)
                root = None
        if root is None:
            self.watch_root(path)
            return "unknown"
        if root.broken is not None or not synced:
            return "unknown"
        instance, _, seq = since.rpartition(":")
        if instance != self.instance or not seq.isdigit():
            return "unknown"
        return "changed" if root.last > int(seq) else "unchanged"


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def serve(ml_dir: str) -> int:
    """Run until asked to stop, until the socket is no longer ours, or until the repository's
    folder is deleted. Exits 0 at once when another watcher holds the lock."""
    lock_fd = os.open(os.path.join(ml_dir, LOCK_NAME), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, f"{os.getpid()}\n".encode())  # who to signal if it stops answering
    os.chdir(ml_dir)  # bind a short relative name: a socket path is limited to ~107 bytes
    with contextlib.suppress(FileNotFoundError):
        os.unlink(SOCKET_NAME)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        server.bind(SOCKET_NAME)
    finally:
        os.umask(old_umask)
    server.listen(16)
    sock_ino = os.lstat(SOCKET_NAME).st_ino
    watcher = Watcher(ml_dir)
    stopping = False

    def on_term(_sig: int, _frame: object) -> None:
        raise SystemExit(0)  # out of poll() at once; the finally below removes the socket

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log(f"watching for {ml_dir} (pid {os.getpid()})")
    poller = select.poll()
    poller.register(server.fileno(), select.POLLIN)
    poller.register(watcher.fd, select.POLLIN)
    try:
        while not stopping and not watcher.gone:
            ready = {fd for fd, _ in poller.poll(CHECK_EVERY_S * 1000)}
            if watcher.fd in ready:
                watcher.read_events()
            if server.fileno() in ready:
                stopping = _serve_one(server, watcher)
            if not ready and not _still_ours(sock_ino):
                log("the socket was removed or replaced: exiting")
                return 0
    finally:
        if _still_ours(sock_ino):
            with contextlib.suppress(OSError):
                os.unlink(SOCKET_NAME)
        log("stopped")
    return 0


def _still_ours(sock_ino: int) -> bool:
    try:
        return os.lstat(SOCKET_NAME).st_ino == sock_ino
    except OSError:
        return False


def _serve_one(server: socket.socket, watcher: Watcher) -> bool:
    """Answer one client (see :mod:`gitml.artifacts.watch_client` for the format); True
    when it asked the watcher to stop."""
    conn, _ = server.accept()
    with conn:
        conn.settimeout(2.0)
        try:
            parts = []
            size = 0
            while size < 1 << 26 and (part := conn.recv(1 << 16)):
                parts.append(part)
                size += len(part)
            verb, _, rest = b"".join(parts).partition(b"\0")
            if verb == b"stop":
                conn.sendall(b"stopped")
                return True
            if verb == b"info":
                conn.sendall(json.dumps(watcher.info()).encode())
            elif verb == b"roots":
                fields = rest.split(b"\0")[:-1]
                asked = [(os.fsdecode(fields[i + 1]), fields[i].decode("ascii", "replace"))
                         for i in range(0, len(fields) - 1, 2)]
                token, states = watcher.answer(asked)
                conn.sendall(b"".join(x.encode() + b"\0" for x in [token, *states]))
        except OSError:
            pass
    return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gitml.artifacts.watch_daemon <ml dir>", file=sys.stderr)
        return 2
    return serve(args[0])


if __name__ == "__main__":
    sys.exit(main())
