"""Talking to the watcher (:mod:`gitml.artifacts.watch_daemon`): ask which folders changed,
start it, stop it. Only ``os``, ``json`` and ``socket`` on the asking path: a no-op
``git ml status`` imports this and little else."""

from __future__ import annotations

import _socket  # the C module: the socket wrapper module costs ~3 ms of status's start-up
import json
import os

TYPE_CHECKING = False  # importing typing costs ~2 ms of each command's start-up
if TYPE_CHECKING:
    from typing import Any

SOCKET_NAME = "watch.sock"
LOCK_NAME = "watch.lock"
LOG_NAME = "watch.log"
COOKIE_DIR = "watch-cookies"
ASK_TIMEOUT_S = 5.0


def _request(ml_dir: str, req: dict[str, Any], timeout: float = ASK_TIMEOUT_S) -> dict[str, Any] | None:
    """The watcher's reply, or None when none runs (or it did not answer properly)."""
    path = os.path.join(ml_dir, SOCKET_NAME)
    if not os.path.exists(path):
        return None
    dir_fd = None
    if len(os.fsencode(path)) > 100:  # sockaddr_un holds ~107 bytes: go through /proc
        dir_fd = os.open(ml_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        path = f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}"
    try:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                part = s.recv(1 << 16)
                if not part:
                    break
                data += part
        finally:
            s.close()
        reply = json.loads(data)
    except (OSError, ValueError):
        return None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return reply if isinstance(reply, dict) else None


def running(ml_dir: str) -> bool:
    """Whether a watcher may be running (its socket exists); cheap, not a promise."""
    return os.path.exists(os.path.join(ml_dir, SOCKET_NAME))


def ask(ml_dir: str, roots: dict[str, str]) -> tuple[str, dict[str, str]] | None:
    """(new token, {folder: "unchanged" | "changed" | "unknown"}) for absolute folder paths
    each with the token of the last answer its state was recorded at; None when no watcher
    answers (the caller then walks the folders: never a guess)."""
    reply = _request(ml_dir, {"roots": roots})
    if reply is None or not isinstance(reply.get("token"), str) or not isinstance(reply.get("roots"), dict):
        return None
    states = {p: s for p, s in reply["roots"].items() if s in ("unchanged", "changed", "unknown")}
    return reply["token"], states


def info(ml_dir: str) -> dict[str, Any] | None:
    return _request(ml_dir, {"info": True})


def stop(ml_dir: str) -> bool:
    """Ask the watcher to exit; True when one was running and acknowledged."""
    reply = _request(ml_dir, {"stop": True})
    return bool(reply and reply.get("stopped"))


def start(ml_dir: str, wait_s: float = 10.0) -> dict[str, Any]:
    """Start a watcher in its own session (it outlives the command) and wait until it answers.
    Returns its :func:`info`; raises OSError with the end of its log when it does not come up."""
    import subprocess
    import sys
    import time

    running = info(ml_dir)
    if running is not None:
        return running
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
