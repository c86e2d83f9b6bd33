"""Capture the environment a command ran in: Python, packages, platform and hardware.

This module is deliberately standard-library only and self-contained: ``git ml run``
copies its source next to the ``sitecustomize`` it injects into child Python processes,
so the environment is captured *inside the process that ran* (whatever interpreter or
virtualenv that is), even when gitml itself is not installed there.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any

FORMAT = 1
# Fields that identify an environment; the id is a hash over exactly these.
_ID_FIELDS = ("python", "packages", "platform", "cpu", "memory_bytes", "gpus")


def _packages() -> dict[str, str]:
    from importlib import metadata

    out: dict[str, str] = {}
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            continue
        if not name:
            continue
        key = name.lower().replace("_", "-").replace(".", "-")
        # The first one found on sys.path wins, as it does for imports.
        out.setdefault(key, str(dist.version))
    return dict(sorted(out.items()))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[dict[str, str]]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        proc = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    gpus = []
    for line in proc.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0]:
            gpus.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return gpus


def environment_id(env: dict[str, Any]) -> str:
    """A stable 32-hex-digit id over the identifying fields (not paths or capture time)."""
    ident = {k: env.get(k) for k in _ID_FIELDS}
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:32]


def capture() -> dict[str, Any]:
    """The environment of the running interpreter, with its ``id``."""
    libc = platform.libc_ver()
    env: dict[str, Any] = {
        "format": FORMAT,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "packages": _packages(),
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "libc": "-".join(x for x in libc if x) or None,
        },
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "memory_bytes": _memory_bytes(),
        "gpus": _gpus(),
        # Informational: not part of the id.
        "executable": sys.executable,
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    env["id"] = environment_id(env)
    return env


def fingerprint() -> str:
    """Cheap key that changes whenever the environment could have: the interpreter, the
    machine, and the modification times of every folder on ``sys.path`` (installing,
    removing or upgrading a distribution adds or removes entries in its site folder)."""
    parts = [sys.executable, sys.version, platform.node(), str(os.cpu_count())]
    here = os.path.dirname(os.path.abspath(__file__))
    for i, p in enumerate(sys.path):
        # the script's folder and gitml's injected folder change with every run
        if i == 0 or not p or os.path.abspath(p) in (here, os.getcwd()):
            continue
        try:
            parts.append(f"{p}:{os.stat(p or '.').st_mtime_ns}")
        except OSError:
            continue
    return hashlib.sha256("\n".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def _dump(env: dict[str, Any], path: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(env, f, sort_keys=True, indent=1)
    os.replace(tmp, path)


def write(path: str, cache_dir: str | None = None) -> None:
    """Write the captured environment as JSON to ``path`` (through a temp file + rename).
    With ``cache_dir``, reuse a capture whose :func:`fingerprint` still matches."""
    cached = os.path.join(cache_dir, f"env-{fingerprint()}.json") if cache_dir else None
    if cached:
        try:
            with open(cached, encoding="utf-8") as f:
                env = json.load(f)
            if isinstance(env, dict) and env.get("id") == environment_id(env):
                _dump(env, path)
                return
        except (OSError, ValueError):
            pass
    env = capture()
    _dump(env, path)
    if cached:
        try:
            os.makedirs(os.path.dirname(cached), exist_ok=True)
            _dump(env, cached)
        except OSError:
            pass


if __name__ == "__main__":  # used by `git ml run` when no Python process dumped one itself
    if len(sys.argv) not in (2, 3):
        print("usage: environment.py OUT.json [CACHE_DIR]", file=sys.stderr)
        sys.exit(2)
    write(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
