"""Capture the environment a command ran in: Python, packages, platform and hardware.

This module is deliberately standard-library only and self-contained: ``git ml run``
copies its source next to the ``sitecustomize`` it injects into child Python processes,
so the environment is captured *inside the process that ran* (whatever interpreter or
virtualenv that is), even when gitml itself is not installed there.
"""

from __future__ import annotations

import json
import os
import sys

# Only what the cache-hit path needs is imported at the top: this module runs at the exit
# of every traced Python process. ``typing`` alone costs ~5 ms to import, ``hashlib`` ~3 ms
# (it sets up every OpenSSL algorithm); CPython's built-in SHA-256 module is the same hash.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    from _sha2 import sha256  # CPython >= 3.12
except ImportError:
    try:
        from _sha256 import sha256  # CPython 3.11
    except ImportError:
        from hashlib import sha256

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


def _cpuinfo_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    import platform
    import subprocess

    model = _cpuinfo_model()
    if model is not None:
        return model
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
    import subprocess

    exe = _which("nvidia-smi")
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
    return str(sha256(blob).hexdigest()[:32])


def capture() -> dict[str, Any]:
    """The environment of the running interpreter, with its ``id``."""
    import platform
    import time

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


def _which(name: str) -> str | None:
    """``shutil.which`` without importing shutil (and the compression modules it loads)."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _stat_key(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:-"
    return f"{path}:{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def _read_small(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(4096)
    except OSError:
        return "-"


def _fingerprint_parts() -> tuple[list[str], int]:
    """What the cache key hashes, and the newest folder mtime among them (ns)."""
    u = os.uname()
    parts = [sys.executable, _stat_key(os.path.realpath(sys.executable)), sys.version,
             u.sysname, u.nodename, u.release, u.machine, str(os.cpu_count()),
             str(_cpuinfo_model()), str(_memory_bytes()),
             _read_small("/proc/driver/nvidia/version"), str(_which("nvidia-smi"))]
    gpus = "/proc/driver/nvidia/gpus"
    if os.path.isdir(gpus):
        parts.append(",".join(sorted(os.listdir(gpus))))
    here = os.path.dirname(os.path.abspath(__file__))
    cwd = os.getcwd()
    newest = 0
    for i, p in enumerate(sys.path):
        # the script's folder and gitml's injected folder change with every run
        if i == 0 or not p or os.path.abspath(p) in (here, cwd):
            continue
        try:
            mtime = os.stat(p).st_mtime_ns
        except OSError:
            parts.append(f"{p}:-")
            continue
        parts.append(f"{p}:{mtime}")
        newest = max(newest, mtime)
    return parts, newest


def fingerprint() -> str:
    """Cheap key that changes whenever the environment could have: the interpreter (path,
    file, version), the machine (name, kernel, CPU, memory, NVIDIA driver and GPUs), and
    the modification times of every folder on ``sys.path`` (installing, removing or
    upgrading a distribution adds or removes its ``.dist-info`` folder there)."""
    return _key(_fingerprint_parts()[0])


def _key(parts: list[str]) -> str:
    return str(sha256("\n".join(parts).encode("utf-8", "replace")).hexdigest()[:32])


#: a folder modified this recently may still be changing (Git's "racy" rule): not cached
RACY_NS = 2_000_000_000


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _cached(path: str) -> str | None:
    """The text of a cached capture, if it is one (a damaged file is not)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        env = json.loads(text)
    except (OSError, ValueError):
        return None
    if isinstance(env, dict) and isinstance(env.get("packages"), dict) and env.get("id") == environment_id(env):
        return text
    return None


def write(path: str, cache_dir: str | None = None) -> None:
    """Write the captured environment as JSON to ``path`` (through a temp file + rename).
    With ``cache_dir``, reuse a capture whose :func:`fingerprint` still matches; a new
    capture is cached only if nothing it depends on changed while it ran."""
    import time

    key = fingerprint() if cache_dir else None
    cached = os.path.join(cache_dir, f"env-{key}.json") if cache_dir and key else None
    if cached:
        text = _cached(cached)
        if text is not None:
            _write_text(path, text)
            return
    env = capture()
    text = json.dumps(env, sort_keys=True, indent=1)
    _write_text(path, text)
    if not cached:
        return
    parts, newest = _fingerprint_parts()
    if _key(parts) != key or time.time_ns() - newest < RACY_NS:
        return
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        _write_text(cached, text)
    except OSError:
        pass


if __name__ == "__main__":  # used by `git ml run` when no Python process dumped one itself
    if len(sys.argv) not in (2, 3):
        print("usage: environment.py OUT.json [CACHE_DIR]", file=sys.stderr)
        sys.exit(2)
    write(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
