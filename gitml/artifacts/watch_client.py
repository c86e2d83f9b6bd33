"""Talking to the watcher (:mod:`gitml.artifacts.watch_daemon`): ask which folders changed,
start it, stop it. Only ``os`` and ``_socket`` on the asking path: a no-op
``git ml status`` imports this and little else."""

from __future__ import annotations

import _socket  # the C module: the socket wrapper module costs ~3 ms of status's start-up
import os

TYPE_CHECKING = False  # importing typing costs ~2 ms of each command's start-up
if TYPE_CHECKING:
    from typing import Any

SOCKET_NAME = "watch.sock"
LOCK_NAME = "watch.lock"
LOG_NAME = "watch.log"
COOKIE_DIR = "watch-cookies"
STATES = ("unchanged", "changed", "unknown")
ASK_TIMEOUT_S = 5.0


def _exchange(ml_dir: str, request: bytes, timeout: float = ASK_TIMEOUT_S) -> bytes | None:
    """Send ``request``, read the reply to its end; None when no watcher answers."""
    path = os.path.join(ml_dir, SOCKET_NAME)
    if not os.path.exists(path):
        return None
    dir_fd = None
    if len(os.fsencode(path)) > 100:  # sockaddr_un holds ~107 bytes: go through /proc
        dir_fd = os.open(ml_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        path = f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}"
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(request)
        s.shutdown(_socket.SHUT_WR)
        parts = []
        while part := s.recv(1 << 16):
            parts.append(part)
        return b"".join(parts)
    except OSError:
        return None
    finally:
        s.close()
        if dir_fd is not None:
            os.close(dir_fd)


def running(ml_dir: str) -> bool:
    """Whether a watcher may be running (its socket exists); cheap, not a promise."""
    return os.path.exists(os.path.join(ml_dir, SOCKET_NAME))


# The question is NUL-separated (a path may hold any other byte, and no JSON parser need be
# imported on this path): b"roots\0" then token NUL path NUL per folder. The answer is the
# new token then one state per folder, in the order asked, each followed by NUL.
def ask(ml_dir: str, roots: dict[str, str]) -> tuple[str, dict[str, str]] | None:
    """(new token, {folder: "unchanged" | "changed" | "unknown"}) for absolute folder paths
    each with the token of the last answer its state was recorded at; None when no watcher
    answers (the caller then walks the folders: never a guess)."""
    paths = list(roots)
    request = b"roots\0" + b"".join(roots[p].encode() + b"\0" + os.fsencode(p) + b"\0" for p in paths)
    reply = _exchange(ml_dir, request)
    if not reply or not reply.endswith(b"\0"):
        return None
    fields = reply[:-1].split(b"\0")
    if len(fields) != len(paths) + 1:
        return None
    states = {p: f.decode("ascii", "replace") for p, f in zip(paths, fields[1:], strict=True)}
    if any(v not in STATES for v in states.values()):
        return None
    return fields[0].decode("ascii", "replace"), states


def info(ml_dir: str) -> dict[str, Any] | None:
    import json

    reply = _exchange(ml_dir, b"info\0")
    try:
        data = json.loads(reply) if reply else None
    except ValueError:
        return None
    ok = isinstance(data, dict) and isinstance(data.get("pid"), int) and isinstance(data.get("roots"), dict)
    return data if ok else None


def stop(ml_dir: str) -> bool:
    """Ask the watcher to exit (or, when it does not answer, say from another gitml
    version, signal the one holding the lock); True when one was running."""
    if _exchange(ml_dir, b"stop\0") == b"stopped":
        return True
    pid = lock_holder(ml_dir)
    if pid is None:
        return False
    import signal

    os.kill(pid, signal.SIGTERM)
    return True


def lock_holder(ml_dir: str) -> int | None:
    """The pid of a live watcher holding the lock, or None."""
    import fcntl

    try:
        fd = os.open(os.path.join(ml_dir, LOCK_NAME), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it
        except BlockingIOError:
            pass
        pid = int(os.read(fd, 32).strip() or 0)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            is_watcher = b"gitml.artifacts.watch_daemon" in f.read()
    except OSError:
        return None
    return pid if pid > 0 and is_watcher else None


def start(ml_dir: str, wait_s: float = 10.0) -> dict[str, Any]:
    """Start a watcher in its own session (it outlives the command) and wait until it answers.
    Returns its :func:`info`; raises OSError with the end of its log when it does not come up."""
    import subprocess
    import sys
    import time

    running = info(ml_dir)
    if running is not None:
        return running
    holder = lock_holder(ml_dir)
    if holder is not None:
        raise OSError(f"a watcher (pid {holder}, perhaps of another gitml version) holds the lock "
                      "but does not answer; run `git ml watch stop`, then start again")
    os.makedirs(ml_dir, exist_ok=True)
    log_path = os.path.join(ml_dir, LOG_NAME)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as null:
        subprocess.Popen([sys.executable, "-m", "gitml.artifacts.watch_daemon", ml_dir],
                         stdin=null, stdout=log, stderr=log, start_new_session=True,
                         close_fds=True, cwd="/")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        running = info(ml_dir)
        if running is not None:
            return running
        time.sleep(0.02)
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.read().strip().splitlines()[-1:]
    except OSError:
        tail = []
    raise OSError(f"the watcher did not start{': ' + tail[0] if tail else ''} (log: {log_path})")
