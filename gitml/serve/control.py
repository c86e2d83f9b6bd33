"""Starting, watching and stopping a model server; writing what it serves.

What a server serves is a deploy-state file (``write_state``), written atomically by
whoever deploys; the server's workers pick up every change by themselves::

    {"model": "credit", "active": "1.3.0",
     "versions": {"1.3.0": "/abs/bundle-1.3.0", "1.2.0": "/abs/bundle-1.2.0"}}

A switch: add the new version (active unchanged), ``wait_ready(url, "1.4.0")`` (every
worker loaded and verified it), send smoke requests to
``/v2/models/{name}/versions/1.4.0/infer``, then write the state with ``active`` = 1.4.0 and
``wait_ready(url, "1.4.0", active=True)``. No request fails at any point of this.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitml.errors import GitMLError
from gitml.serve.supervisor import Paths
from gitml.serve.worker import TOKEN_ENV


@dataclass(frozen=True)
class ServerProcess:
    pid: int
    url: str
    host: str
    port: int
    state_file: Path
    log_file: Path
    pid_file: Path


def write_state(path: Path | str, state: dict[str, Any]) -> None:
    """Validate and write a deploy state atomically (bundle folders made absolute)."""
    from gitml.serve.loaded import read_state
    from gitml.store.fsutil import atomic_write_text

    p = Path(path)
    versions = state.get("versions")
    if not isinstance(versions, dict):
        raise GitMLError("deploy state needs a 'versions' object", "map version -> bundle folder")
    full = {"model": state.get("model"),
            "active": state.get("active"),
            "versions": {str(k): str(Path(v).absolute()) for k, v in versions.items()}}
    atomic_write_text(p, json.dumps(full, indent=2) + "\n")
    try:
        read_state(p)
    except GitMLError:
        p.unlink(missing_ok=True)
        raise


def read_state(path: Path | str) -> dict[str, Any]:
    from gitml.serve.loaded import read_state as _read

    return _read(Path(path))


def start(state_file: Path | str, *, host: str = "127.0.0.1", port: int = 0, workers: int = 1,
          token: str | None = None, traffic_dir: Path | str | None = None, sample: float = 1.0,
          flush_seconds: float = 1.0, allow_pickle: bool = False,
          timeout: float = 60.0) -> ServerProcess:
    """Start a detached server (its own session) and return once its port is bound.

    ``port=0`` picks a free port (see ``ServerProcess.url``). The models load in the
    workers afterwards: use :func:`wait_ready` before sending traffic.
    """
    paths = Paths.of(state_file)
    paths.info.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "gitml.serve.supervisor", "--state", str(paths.state),
           "--host", host, "--port", str(port), "--workers", str(workers),
           "--sample", str(sample), "--flush-seconds", str(flush_seconds)]
    if traffic_dir is not None:
        cmd += ["--traffic-dir", str(Path(traffic_dir).absolute())]
    if allow_pickle:
        cmd.append("--allow-pickle")
    env = dict(os.environ)
    env.pop(TOKEN_ENV, None)
    if token:
        env[TOKEN_ENV] = token
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GitMLError(f"the model server exited at start ({proc.returncode}): "
                             f"{_tail(paths.log)}", f"see {paths.log}")
        try:
            info = json.loads(paths.info.read_bytes())
            if info.get("pid") == proc.pid:
                return ServerProcess(pid=proc.pid, url=info["url"], host=info["host"],
                                     port=int(info["port"]), state_file=paths.state,
                                     log_file=paths.log, pid_file=paths.pid)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    stop(proc.pid)
    raise GitMLError(f"the model server did not bind its port within {timeout:.0f}s", f"see {paths.log}")


def _tail(path: Path, n: int = 400) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return text[-n:].replace("\n", " | ")


def _get(url: str, token: str | None, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read() or b"{}")
        except ValueError:
            body = {}
        return e.code, body


def wait_ready(url: str, version: str, timeout: float = 60.0, *, active: bool = False,
               token: str | None = None, model: str | None = None) -> dict[str, Any]:
    """Wait until every worker has ``version`` loaded (and, with ``active``, serves it as
    the active version). Raises at once when the version failed to load, and at the timeout."""
    base = url.rstrip("/")
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            if model is None:
                code, meta = _get(f"{base}/v2", token)
                models = meta.get("models") or []
                if code != 200 or not models:
                    last = f"server not up yet ({code})"
                    time.sleep(0.1)
                    continue
                model = str(models[0])
            code, body = _get(f"{base}/v2/models/{model}/versions/{version}/ready", token)
            if code == 200 and (not active or body.get("active_on_all_workers")):
                return body
            err = str(body.get("error", ""))
            if code == 404 and "failed to load" in err:
                raise GitMLError(f"{model} {version}: {err}", "check the bundle and the server log")
            last = err or f"{code} {body}"
        except (urllib.error.URLError, OSError, ValueError) as e:
            last = str(e)
        time.sleep(0.1)
    raise GitMLError(f"version {version} not {'active' if active else 'ready'} within "
                     f"{timeout:.0f}s (last answer: {last})", "see the server log")


def stop(pid: int, timeout: float = 15.0) -> bool:
    """Stop a server started by :func:`start` (SIGTERM, then SIGKILL). True if it was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of a process we did not start counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
