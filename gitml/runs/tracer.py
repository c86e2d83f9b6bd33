"""Find out which files a command (and every process it starts) read and wrote.

Three sources, combined:

* the kernel (Linux): inotify watches on every folder of the work tree for IN_OPEN,
  IN_CLOSE_WRITE and IN_MOVED_TO (plus create/delete/move-away to follow temporary
  files), with new folders watched as they appear. It sees every process in any
  language, including native readers like pyarrow's;
* a Python audit hook injected through ``sitecustomize`` (:mod:`gitml.runs.audit_site`)
  that says which Python process opened what, which processes were spawned, and dumps
  the environment from inside the process that ran;
* a before/after stat snapshot of the work tree, which catches writes on systems
  without inotify (and writes inotify cannot see, such as through a still-open mmap).

Reads on systems without inotify come from the audit hook only; ``-d`` adds the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitml.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_ISDIR,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_OPEN,
    IN_Q_OVERFLOW,
    add_watch,
    init,
    libc,
    parse_events,
)
from gitml.inotify import available as inotify_available

# Folders never traced: Git's, caches and virtualenvs (a folder holding pyvenv.cfg).
SKIP_DIRS = frozenset({".git", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                       ".tox", ".nox", "node_modules", ".ipynb_checkpoints", ".gitml", ".hg", ".svn"})
SKIP_SUFFIXES = (".gitml", ".pyc", ".swp", ".incomplete")
SKIP_NAMES = frozenset({".gitignore", ".gitattributes", ".DS_Store"})


def _skip_dir(path: str, name: str) -> bool:
    return name in SKIP_DIRS or os.path.exists(os.path.join(path, name, "pyvenv.cfg"))


def skip_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    if name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES) or name.startswith(".tmp-"):
        return True
    parts = rel.split("/")
    return any(p in SKIP_DIRS for p in parts[:-1])


@dataclass
class TraceResult:
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    processes: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] | None = None
    python_executables: list[str] = field(default_factory=list)
    new_dirs: set[str] = field(default_factory=set)
    mode: str = ""
    warnings: list[str] = field(default_factory=list)


Snapshot = dict[str, tuple[int, int, int]]


def snapshot(workdir: Path, dirs: set[str] | None = None) -> Snapshot:
    """relpath -> (size, mtime_ns, inode) of every traced file under ``workdir``; the
    traced folders go into ``dirs`` when given."""
    out: Snapshot = {}
    root = str(workdir)
    n = len(root) + 1
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        if not _skip_dir(d, e.name):
                            stack.append(e.path)
                            if dirs is not None:
                                dirs.add(e.path[n:].replace(os.sep, "/"))
                    elif e.is_file(follow_symlinks=False):
                        rel = e.path[n:].replace(os.sep, "/")
                        if not skip_file(rel):
                            st = e.stat(follow_symlinks=False)
                            out[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
                except OSError:
                    continue
    return out


class _Inotify:
    """Recursive inotify watches on a folder tree, read by a background thread that a pipe
    wakes when the command is over (no polling interval to wait out)."""

    MASK = IN_OPEN | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE

    def __init__(self, workdir: Path) -> None:
        self.libc = libc()
        self.fd: int = init(self.libc)
        self.root = str(workdir)
        self.n = len(self.root) + 1
        self.dirs: dict[int, str] = {}
        self.opened: set[str] = set()
        self.written: set[str] = set()
        self.created: set[str] = set()
        self.overflow = False
        self.error: str | None = None
        self.stopped = False
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self.watch_tree(self.root, new=False)
        self._thread = threading.Thread(target=self._loop, name="gitml-inotify", daemon=True)
        self._thread.start()

    def _rel(self, path: str) -> str:
        return path[self.n:].replace(os.sep, "/")

    def _add_watch(self, d: str) -> int:
        return add_watch(self.libc, self.fd, d, self.MASK)

    def watch_tree(self, top: str, new: bool) -> None:
        for d, dirs, files in os.walk(top):
            dirs[:] = [x for x in dirs if not _skip_dir(d, x)]
            try:
                wd = self._add_watch(d)
            except OSError as e:  # ENOSPC: out of watches; the snapshot still sees writes
                self.error = f"inotify: cannot watch {d}: {e.strerror}"
                continue
            self.dirs[wd] = d
            if new:  # files created before the watch existed
                for f in files:
                    rel = self._rel(os.path.join(d, f))
                    self.written.add(rel)
                    self.created.add(rel)

    def _handle(self, events: list[tuple[int, int, str]]) -> None:
        for wd, mask, name in events:
            if mask & IN_Q_OVERFLOW:
                self.overflow = True
                continue
            d = self.dirs.get(wd)
            if d is None or not name:
                continue
            path = os.path.join(d, name)
            if mask & IN_ISDIR:
                if mask & (IN_CREATE | IN_MOVED_TO) and not _skip_dir(d, name):
                    self.watch_tree(path, new=True)
                continue
            rel = self._rel(path)
            if mask & IN_OPEN:
                self.opened.add(rel)
            if mask & (IN_CLOSE_WRITE | IN_MOVED_TO):
                self.written.add(rel)
            if mask & IN_CREATE:
                self.created.add(rel)

    def _read(self) -> list[tuple[int, int, str]]:
        try:
            return parse_events(os.read(self.fd, 65536))
        except BlockingIOError:
            return []

    def _loop(self) -> None:
        import select

        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            try:
                ready = {fd for fd, _ in poller.poll()}
                if self.fd in ready:
                    with self._lock:
                        self._handle(self._read())
            except OSError:
                return
            if self._wake_r in ready:
                return

    def stop(self) -> None:
        self.stopped = True
        os.write(self._wake_w, b"x")
        self._thread.join()
        while True:  # drain what the kernel still holds
            events = self._read()
            if not events:
                break
            self._handle(events)
        for fd in (self.fd, self._wake_r, self._wake_w):
            os.close(fd)


class Tracer:
    """Use as a context manager around the command; pass :meth:`child_env` to it."""

    def __init__(self, workdir: Path, *, kernel: bool = True, audit: bool = True,
                 env_cache: Path | None = None) -> None:
        self.workdir = workdir.resolve()
        self.env_cache = env_cache
        self.kernel = kernel and inotify_available()
        self.audit = audit
        self.tmp = Path(tempfile.mkdtemp(prefix="gitml-run-"))
        self.site_dir = self.tmp / "site"
        self.trace_dir = self.tmp / "trace"
        self.tracking_file = self.tmp / "tracking.jsonl"
        self._ino: _Inotify | None = None
        self._before: Snapshot = {}
        self._before_dirs: set[str] = set()
        self.result = TraceResult()

    # -- set-up --------------------------------------------------------------------
    def __enter__(self) -> Tracer:
        self.site_dir.mkdir()
        self.trace_dir.mkdir()
        here = Path(__file__).parent
        shutil.copyfile(here / "audit_site.py", self.site_dir / "sitecustomize.py")
        shutil.copyfile(here / "environment.py", self.site_dir / "_gitml_environment.py")
        self._before = snapshot(self.workdir, self._before_dirs)
        if self.kernel:
            try:
                self._ino = _Inotify(self.workdir)
            except OSError as e:
                self.result.warnings.append(f"inotify unavailable ({e.strerror}); using snapshots")
                self._ino = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ino is not None and not self._ino.stopped:  # the command never ran
            self._ino.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def child_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        from gitml.runs.tracking import ENV_VAR

        env[ENV_VAR] = str(self.tracking_file)
        if self.audit:
            old = env.get("PYTHONPATH")
            env["PYTHONPATH"] = str(self.site_dir) + (os.pathsep + old if old else "")
            env["GITML_TRACE_DIR"] = str(self.trace_dir)
            env["GITML_WORKTREE"] = str(self.workdir)
            if self.env_cache is not None:
                env["GITML_ENV_CACHE"] = str(self.env_cache)
        return env

    # -- results -------------------------------------------------------------------
    def finish(self) -> TraceResult:
        """Stop watching and combine the three sources. Call once, after the command exits."""
        res = self.result
        opened: set[str] = set()
        written: set[str] = set()
        created: set[str] = set()
        modes = []
        if self._ino is not None:
            self._ino.stop()
            opened, written, created = self._ino.opened, self._ino.written, self._ino.created
            modes.append("inotify")
            if self._ino.overflow:
                res.warnings.append("inotify queue overflowed: some reads may be missing (declare them with -d)")
            if self._ino.error:
                res.warnings.append(self._ino.error)
        after_dirs: set[str] = set()
        after = snapshot(self.workdir, after_dirs)
        res.new_dirs = after_dirs - self._before_dirs
        modes.append("snapshot")
        changed = {p for p, st in after.items() if self._before.get(p) != st}
        a_reads, a_writes = self._read_audit(res)
        if self.audit:
            modes.append("audit")
        written = written | changed | a_writes
        res.writes = {p for p in written if p in after and not skip_file(p)}
        existed = set(self._before)
        res.reads = {p for p in (opened | a_reads)
                     if p in after and p in existed and p not in res.writes and p not in created
                     and not skip_file(p)}
        res.mode = "+".join(modes)
        env_file = self.trace_dir / "env.json"
        if env_file.exists():
            try:
                res.environment = json.loads(env_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                res.environment = None
        return res

    def _read_audit(self, res: TraceResult) -> tuple[set[str], set[str]]:
        reads: set[str] = set()
        writes: set[str] = set()
        if not self.trace_dir.is_dir():
            return reads, writes
        procs: dict[int, dict[str, Any]] = {}
        for f in sorted(self.trace_dir.glob("trace-*.jsonl")):
            proc: dict[str, Any] | None = None
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed process
                t = ev.get("t")
                if t == "proc":
                    proc = {"pid": ev.get("pid"), "ppid": ev.get("ppid"), "argv": ev.get("argv", []),
                            "executable": ev.get("exe"), "reads": [], "writes": [], "spawned": []}
                    procs[int(ev.get("pid", 0))] = proc
                    exe = ev.get("exe")
                    if exe and exe not in res.python_executables:
                        res.python_executables.append(exe)
                elif proc is None:
                    continue
                elif t == "open":
                    rel = str(ev.get("p", "")).replace(os.sep, "/")
                    if not rel or skip_file(rel):
                        continue
                    (writes if ev.get("w") else reads).add(rel)
                    key = "writes" if ev.get("w") else "reads"
                    if len(proc[key]) < 200:
                        proc[key].append(rel)
                elif t == "spawn" and len(proc["spawned"]) < 50:
                    proc["spawned"].append(ev.get("argv", []))
        res.processes = [procs[k] for k in sorted(procs)]
        return reads, writes


def read_tracking(path: Path) -> tuple[dict[str, Any], dict[str, float], dict[str, list[Any]]]:
    """(params, metrics, metric history) from the file ``gitml.log_*`` appended to."""
    params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    history: dict[str, list[Any]] = {}
    if not path.exists():
        return params, metrics, history
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    rows.sort(key=lambda r: r.get("time", 0))
    for r in rows:
        name = r.get("name")
        if not isinstance(name, str):
            continue
        if r.get("kind") == "param":
            params[name] = r.get("value")
        elif r.get("kind") == "metric" and isinstance(r.get("value"), (int, float)):
            metrics[name] = r["value"]
            if "step" in r:
                history.setdefault(name, []).append([r["step"], r["value"]])
    return params, metrics, history
