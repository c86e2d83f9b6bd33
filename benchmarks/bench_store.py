"""Store benchmark: gitml vs DVC vs git-lfs on the same generated data, in one run.

    .venv/bin/python benchmarks/bench_store.py                  # full size (~35 GB of disk churn)
    .venv/bin/python benchmarks/bench_store.py --scale 0.1      # quick run
    .venv/bin/python benchmarks/bench_store.py --tools gitml,dvc --repeats 5

The competitors are installed outside the project (never in pyproject.toml):
    python3 -m venv /tmp/dvcenv && /tmp/dvcenv/bin/pip install dvc      (or --dvc PATH)
    apt-get install -y git-lfs

Everything happens in a temporary folder (``--workdir``, default /tmp) that is removed at
the end; the only file written into the repository is ``benchmarks/results/store-<date>.json``.
Git runs with a private HOME and no system config, so the user's settings cannot skew it.

Steps, per tool, on identical data:
 1. add a 1 GiB file of random bytes (max RSS recorded too);
 2. add 20,000 files of 1-8 KiB in one folder tree;
 3. no-op status of that repo (first run after the add, then the median of ``--repeats``);
 4. re-add after rewriting 1% of the small files (median of ``--repeats`` rounds);
 5. add a 500 MB CSV, append 1% rows, re-add: growth of the local store in bytes;
 6. push to a folder remote; ``git clone`` + pull into a fresh clone (bytes verified);
 7. max RSS of ``add`` on a 256 MiB file (with step 1: memory must stay flat with size).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 1 << 30
MIB = 1 << 20
BLOCK = 8 * MIB
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ALL_TOOLS = ("gitml", "dvc", "lfs")
TOOL_LABEL = {"gitml": "gitml", "dvc": "DVC", "lfs": "git-lfs"}
CMD_TIMEOUT = 3600


# ------------------------------------------------------------------------ running commands
@dataclass
class Run:
    cmd: list[str]
    seconds: float
    max_rss_kib: int
    rc: int
    out: str
    err: str
    user_s: float = 0.0  # CPU time of the command and everything it waited for
    sys_s: float = 0.0


class CommandFailed(RuntimeError):
    pass


GNU_TIME = "/usr/bin/time"


def run(cmd: Sequence[str], cwd: Path, env: dict[str, str], *, check: bool = True,
        extra_env: dict[str, str] | None = None) -> Run:
    """Run ``cmd``; wall time, and the max RSS of the command (and what it waited for).

    The RSS comes from GNU time when it is installed: ``wait4`` on our own child would
    report at least this Python's RSS, because Linux keeps the high-water mark of the
    forked (or vforked) image across ``exec``. A 1 ms fork from the tiny ``time`` process
    is the price, the same for every tool.
    """
    full_env = dict(env, **(extra_env or {}))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".rss") as rss_file:
        argv = list(cmd)
        use_time = os.access(GNU_TIME, os.X_OK)
        if use_time:
            argv = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        deadline = t0 + CMD_TIMEOUT
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        rss = int(usage.ru_maxrss)
        if use_time:
            with contextlib.suppress(ValueError, IndexError):
                rss = int(Path(rss_file.name).read_text().split()[-1])
        res = Run(list(cmd), seconds, rss, proc.returncode,
                  out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                  usage.ru_utime, usage.ru_stime)
    if check and res.rc != 0:
        raise CommandFailed(f"{' '.join(cmd)} (in {cwd}) exited {res.rc}:\n{res.err[-3000:]}\n{res.out[-2000:]}")
    return res


def sync() -> None:
    """Flush dirty pages so one step's write-back does not land in the next step's timing."""
    os.sync()


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if root.is_file():
        return {"": file_digest(root)}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = file_digest(p)
    return out


# ------------------------------------------------------------------------------- data
@dataclass
class Sizes:
    big: int
    mid: int
    n_small: int
    csv: int

    @classmethod
    def scaled(cls, scale: float) -> Sizes:
        return cls(big=int(GIB * scale), mid=int(256 * MIB * scale), n_small=max(100, int(20_000 * scale)),
                   csv=int(500_000_000 * scale))


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(os.urandom(n))
            left -= n


def small_name(i: int) -> str:
    return f"d{i // 200:03d}/s{(i // 20) % 10}/f{i:05d}.bin"


def write_small_tree(root: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for i in range(n):
        p = root / small_name(i)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randint(1024, 8192)))


_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo")


def csv_rows(rng: random.Random, start: int, target_bytes: int) -> Iterator[str]:
    """Blocks of CSV rows (id, 3 floats, an int, two words) adding up to ``target_bytes``."""
    written = 0
    i = start
    while written < target_bytes:
        lines = []
        for _ in range(20_000):
            lines.append(f"{i},{rng.random():.6f},{rng.gauss(0, 100):.4f},{rng.random() * 1e4:.2f},"
                         f"{rng.randint(0, 10**6)},{rng.choice(_WORDS)},{rng.choice(_WORDS)}\n")
            i += 1
        block = "".join(lines)
        written += len(block)
        yield block


def write_csv(path: Path, size: int) -> int:
    rng = random.Random(7)
    rows = 0
    with open(path, "w") as f:
        f.write("id,x,y,z,n,a,b\n")
        for block in csv_rows(rng, 0, size):
            f.write(block)
            rows += block.count("\n")
    return rows


def append_csv(path: Path, fraction: float, first_id: int) -> int:
    size = path.stat().st_size
    rng = random.Random(11)
    added = 0
    with open(path, "a") as f:
        for block in csv_rows(rng, first_id, int(size * fraction)):
            # trim the last block so the append is ~fraction of the file, on a row boundary
            left = int(size * fraction) - added
            if len(block) > left:
                cut = block.rfind("\n", 0, max(left, 1)) + 1
                block = block[:cut] if cut else block[: block.find("\n") + 1]
            f.write(block)
            added += len(block)
            if added >= int(size * fraction):
                break
    return added


def modify_small(root: Path, n: int, fraction: float, round_no: int) -> int:
    """Rewrite a distinct ``fraction`` of the small files (a different set each round)."""
    k = max(1, int(n * fraction))
    rng = random.Random(1000 + round_no)
    start = (round_no * k) % n
    for j in range(k):
        p = root / small_name((start + j * 7919) % n)
        p.write_bytes(rng.randbytes(rng.randint(1024, 8192)))
    return k


@dataclass
class Dataset:
    root: Path
    sizes: Sizes
    csv_rows: int = 0

    @property
    def big(self) -> Path:
        return self.root / "big.bin"

    @property
    def mid(self) -> Path:
        return self.root / "mid.bin"

    @property
    def small(self) -> Path:
        return self.root / "small"

    @property
    def csv(self) -> Path:
        return self.root / "table.csv"

    def generate(self, log: Callable[[str], None]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        write_random(self.big, self.sizes.big)
        write_random(self.mid, self.sizes.mid)
        write_small_tree(self.small, self.sizes.n_small)
        self.csv_rows = write_csv(self.csv, self.sizes.csv)
        log(f"generated data in {time.perf_counter() - t0:.1f} s: {self.sizes.big / MIB:.0f} MiB + "
            f"{self.sizes.mid / MIB:.0f} MiB random, {self.sizes.n_small} small files, "
            f"{self.csv.stat().st_size / 1e6:.0f} MB CSV ({self.csv_rows} rows)")


# ------------------------------------------------------------------------------- tools
class Tool:
    name = ""
    store_rel = ""

    def __init__(self, env: dict[str, str], base: Path) -> None:
        self.env = env
        self.base = base
        self.repo = base / "repo"

    def git(self, *args: str, cwd: Path | None = None, **kw: Any) -> Run:
        return run(["git", *args], cwd or self.repo, self.env, **kw)

    def commit(self, msg: str, cwd: Path | None = None) -> None:
        self.git("add", "-A", cwd=cwd)
        self.git("commit", "-q", "--allow-empty", "-m", msg, cwd=cwd)

    def init(self) -> None:
        self.repo.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.setup()
        self.commit("init")

    def setup(self) -> None:
        raise NotImplementedError

    def add(self, rel: str) -> Run:
        raise NotImplementedError

    def status(self) -> Run:
        raise NotImplementedError

    def store_bytes(self) -> int:
        return dir_bytes(self.repo / self.store_rel)

    def setup_remote(self) -> None:
        raise NotImplementedError

    def push(self) -> Run:
        raise NotImplementedError

    def clone_and_pull(self, dest: Path) -> tuple[Run, Run]:
        raise NotImplementedError

    # git remote shared by gitml and DVC: the code goes through Git, the data through the tool
    def make_git_remote(self) -> str:
        bare = self.base / "remote.git"
        run(["git", "init", "-q", "--bare", str(bare)], self.base, self.env)
        self.git("remote", "add", "origin", f"file://{bare}")
        return f"file://{bare}"


class GitML(Tool):
    name = "gitml"
    store_rel = ".git/ml/store"

    def setup(self) -> None:
        run(["git", "ml", "init", "--no-hooks", "-q"], self.repo, self.env)

    def add(self, rel: str) -> Run:
        return run(["git", "ml", "add", "-q", rel], self.repo, self.env)

    def status(self) -> Run:
        return run(["git", "ml", "status"], self.repo, self.env)

    def watch(self, action: str) -> Run:
        return run(["git", "ml", "watch", action, "-q"], self.repo, self.env)

    def setup_remote(self) -> None:
        run(["git", "ml", "remote", "add", "origin", str(self.base / "store-remote"), "--default"],
            self.repo, self.env)
        self.commit("remote")
        self.make_git_remote()
        self.git("push", "-q", "origin", "main")

    def push(self) -> Run:
        return run(["git", "ml", "push", "-q"], self.repo, self.env)

    def clone_and_pull(self, dest: Path) -> tuple[Run, Run]:
        clone = run(["git", "clone", "-q", f"file://{self.base / 'remote.git'}", str(dest)], self.base, self.env)
        inst = run(["git", "ml", "install", "-q"], dest, self.env)
        pull = run(["git", "ml", "pull", "-q"], dest, self.env)
        pull.seconds += inst.seconds
        pull.sys_s += inst.sys_s
        pull.user_s += inst.user_s
        return clone, pull


class DVC(Tool):
    name = "dvc"
    store_rel = ".dvc/cache"

    def __init__(self, env: dict[str, str], base: Path, dvc: str) -> None:
        super().__init__(env, base)
        self.dvc = dvc

    def setup(self) -> None:
        run([self.dvc, "init", "-q"], self.repo, self.env)
        run([self.dvc, "config", "core.analytics", "false"], self.repo, self.env)

    def add(self, rel: str) -> Run:
        return run([self.dvc, "add", "-q", rel], self.repo, self.env)

    def status(self) -> Run:
        return run([self.dvc, "status"], self.repo, self.env)

    def setup_remote(self) -> None:
        run([self.dvc, "remote", "add", "-d", "origin", str(self.base / "store-remote")], self.repo, self.env)
        self.commit("remote")
        self.make_git_remote()
        self.git("push", "-q", "origin", "main")

    def push(self) -> Run:
        return run([self.dvc, "push", "-q"], self.repo, self.env)

    def clone_and_pull(self, dest: Path) -> tuple[Run, Run]:
        clone = run(["git", "clone", "-q", f"file://{self.base / 'remote.git'}", str(dest)], self.base, self.env)
        pull = run([self.dvc, "pull", "-q"], dest, self.env)
        return clone, pull


class LFS(Tool):
    name = "lfs"
    store_rel = ".git/lfs/objects"

    def setup(self) -> None:
        self.git("lfs", "install", "--local")
        self.git("lfs", "track", "*.bin", "*.csv")

    def add(self, rel: str) -> Run:
        return self.git("add", rel)

    def status(self) -> Run:
        return self.git("status")

    def setup_remote(self) -> None:
        self.make_git_remote()

    def push(self) -> Run:
        # the bare repo is a file:// remote: git-lfs moves the objects with its standalone
        # file transfer agent (lfs-standalone-file), no server involved
        return self.git("push", "-q", "origin", "main")

    def clone_and_pull(self, dest: Path) -> tuple[Run, Run]:
        clone = run(["git", "clone", "-q", f"file://{self.base / 'remote.git'}", str(dest)], self.base,
                    self.env, extra_env={"GIT_LFS_SKIP_SMUDGE": "1"})
        pull = run(["git", "lfs", "pull"], dest, self.env)
        return clone, pull


# --------------------------------------------------------------------------- the steps
@dataclass
class ToolResult:
    tool: str
    figures: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def disk_bytes(root: Path) -> int:
    """Bytes the files below ``root`` take on disk (allocated blocks, not their length)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def copy_in(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copyfile(src, dest)


class Bench:
    """One tool's run. The steps are methods so that the driver can interleave the tools step
    by step (and repeat by repeat): the machine is shared, and load drifting over a
    tool-after-tool run would favour whichever tool ran in the quiet minutes."""

    def __init__(self, tool: Tool, data: Dataset, log: Callable[[str], None]) -> None:
        self.tool = tool
        self.data = data
        self.log = log
        self.res = ToolResult(tool.name)
        self.f = self.res.figures
        self.lbl = TOOL_LABEL[tool.name]
        self.failed = False
        self._files_before: int | None = None

    def timed(self, key: str, r: Run) -> Run:
        self.f[key] = r.seconds
        self.f[key.removesuffix("_s") + "_sys_s"] = r.sys_s
        self.f[key.removesuffix("_s") + "_user_s"] = r.user_s
        made = ""
        if self._files_before is not None:
            self.f[key.removesuffix("_s") + "_files"] = count_files(self.tool.base) - self._files_before
            self._files_before = None
            made = f"   files created {self.f[key.removesuffix('_s') + '_files']:>7,.0f}"
        self.log(f"  {self.lbl:7} {key:24} {r.seconds:8.3f} s   sys {r.sys_s:6.2f} s   user "
                 f"{r.user_s:6.2f} s   max RSS {r.max_rss_kib / 1024:7.1f} MiB{made}")
        return r

    def count_from_here(self) -> None:
        """Count the files the next timed step creates (in the tool's repo, store, remote
        and clone): on most file systems creating files is what small-file work costs."""
        self._files_before = count_files(self.tool.base)

    def sample(self, key: str, seconds: float) -> None:
        runs = self.res.samples.setdefault(key, [])
        runs.append(seconds)
        self.f[key] = statistics.median(runs)

    def summary(self, key: str) -> None:
        runs = self.res.samples.get(key, [])
        if runs:
            self.log(f"  {self.lbl:7} {key + ' (median)':24} {self.f[key]:8.3f} s   "
                     f"{[round(x, 3) for x in runs]}")

    # 1. a 1 GiB file
    def add_big(self) -> None:
        self.tool.init()
        copy_in(self.data.big, self.tool.repo / "data" / "big.bin")
        sync()
        self.count_from_here()
        r = self.timed("add_big_s", self.tool.add("data/big.bin"))
        self.f["add_big_rss_mib"] = r.max_rss_kib / 1024
        self.res.samples.setdefault("add_big_s", []).append(r.seconds)
        self.tool.commit("big")

    # 1b. the same add again, each time into a fresh repository and store (one sample per
    # call; the steps interleave the tools, so a busy disk falls on all of them alike)
    def add_big_again(self) -> None:
        scratch = copy.copy(self.tool)
        scratch.repo = self.tool.base / "bigrepo"
        shutil.rmtree(scratch.repo, ignore_errors=True)
        scratch.init()
        copy_in(self.data.big, scratch.repo / "data" / "big.bin")
        sync()
        self.sample("add_big_s", scratch.add("data/big.bin").seconds)
        shutil.rmtree(scratch.repo, ignore_errors=True)
        sync()

    # 2. 20k small files
    def add_small(self) -> None:
        copy_in(self.data.small, self.tool.repo / "data" / "small")
        sync()
        self.count_from_here()
        self.timed("add_small_s", self.tool.add("data/small"))
        self.tool.commit("small")
        sync()
        self.timed("status_first_s", self.tool.status())

    # 3. no-op status, one sample per call
    def status(self) -> None:
        if "status_s" not in self.res.samples:
            # a stat taken in the clock tick of a write is not trusted (Git's "racy" rule,
            # with a 1 s margin): measure the steady state, not the commit's echo
            time.sleep(1.1)
            self.tool.status()
        self.sample("status_s", self.tool.status().seconds)

    # 3b. no-op status with the watcher on (`git ml watch start`), one sample per call
    def status_watch(self) -> None:
        if not isinstance(self.tool, GitML):
            return
        if "status_watch_s" not in self.res.samples:
            self.tool.watch("start")
            self.tool.status()  # the first question starts the watch and records a token
            self.tool.status()
        self.sample("status_watch_s", self.tool.status().seconds)

    def watch_stop(self) -> None:
        if isinstance(self.tool, GitML):
            self.tool.watch("stop")

    # 4. re-add after changing 1% of the small files, one sample per call
    def readd_small(self, round_no: int) -> None:
        modify_small(self.tool.repo / "data" / "small", self.data.sizes.n_small, 0.01, round_no)
        sync()
        self.sample("readd_small_s", self.tool.add("data/small").seconds)
        self.tool.commit(f"small {round_no}")

    # 5. CSV + 1% append: store growth
    def csv(self) -> None:
        tool, f = self.tool, self.f
        copy_in(self.data.csv, tool.repo / "data" / "table.csv")
        sync()
        self.timed("add_csv_s", tool.add("data/table.csv"))
        tool.commit("csv")
        before = tool.store_bytes()
        appended = append_csv(tool.repo / "data" / "table.csv", 0.01, self.data.csv_rows + 1)
        sync()
        self.timed("readd_csv_s", tool.add("data/table.csv"))
        tool.commit("csv +1%")
        f["csv_bytes"] = (tool.repo / "data" / "table.csv").stat().st_size
        f["csv_appended_bytes"] = appended
        f["csv_growth_bytes"] = tool.store_bytes() - before
        f["csv_growth_pct"] = 100 * f["csv_growth_bytes"] / f["csv_bytes"]
        f["store_bytes"] = tool.store_bytes()
        self.log(f"  {self.lbl:7} csv store growth         {f['csv_growth_bytes'] / MIB:8.1f} MiB "
                 f"({f['csv_growth_pct']:.2f}% of the file; {appended / MIB:.1f} MiB appended)")

    # 6. push, fresh clone + pull, verify the bytes
    def push(self) -> None:
        self.tool.setup_remote()
        sync()
        self.count_from_here()
        self.timed("push_s", self.tool.push())

    def clone_pull(self) -> None:
        tool, f = self.tool, self.f
        clone_dir = tool.base / "clone"
        sync()
        before = count_files(tool.base)
        try:
            c, p = tool.clone_and_pull(clone_dir)
        except CommandFailed as e:  # keep going: the memory step still tells something
            self.res.notes.append(f"clone + pull FAILED: {e}")
            self.log(f"  {self.lbl:7} !! clone + pull failed: {e}")
        else:
            f["clone_s"] = c.seconds
            f["pull_only_s"] = p.seconds
            f["clone_pull_s"] = c.seconds + p.seconds
            f["clone_pull_sys_s"] = c.sys_s + p.sys_s
            f["clone_pull_user_s"] = c.user_s + p.user_s
            f["clone_pull_files"] = count_files(tool.base) - before
            self.log(f"  {self.lbl:7} clone_pull_s             {f['clone_pull_s']:8.3f} s   "
                     f"(clone {c.seconds:.2f} + pull {p.seconds:.2f}; sys {f['clone_pull_sys_s']:.2f} s, "
                     f"files created {f['clone_pull_files']:,.0f})")
            bad = []
            for rel in ("data/big.bin", "data/small", "data/table.csv"):
                want = tree_digests(tool.repo / rel)
                got = tree_digests(clone_dir / rel) if (clone_dir / rel).exists() else {}
                if want != got:
                    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
                    bad.append(f"{rel}: {len(diff)} differing files, e.g. {diff[:3]}")
            f["pulled_bytes_ok"] = 0.0 if bad else 1.0
            if bad:
                self.res.notes.append("WRONG BYTES AFTER PULL: " + "; ".join(bad))
                self.log(f"  {self.lbl:7} !! wrong bytes after pull: {bad}")
        shutil.rmtree(clone_dir, ignore_errors=True)

    # 7. memory on a 256 MiB file (in a scratch repo, so the pull above stays 1.6 GiB)
    def memory(self) -> None:
        scratch = copy.copy(self.tool)
        scratch.repo = self.tool.base / "memrepo"
        scratch.init()
        copy_in(self.data.mid, scratch.repo / "data" / "mid.bin")
        sync()
        r = scratch.add("data/mid.bin")
        self.f["add_mid_s"] = r.seconds
        self.f["add_mid_rss_mib"] = r.max_rss_kib / 1024
        self.log(f"  {self.lbl:7} add 256 MiB: {r.seconds:.3f} s, max RSS {self.f['add_mid_rss_mib']:.1f} MiB "
                 f"(1 GiB: {self.f.get('add_big_rss_mib', float('nan')):.1f} MiB)")
        shutil.rmtree(scratch.repo, ignore_errors=True)


def run_all(benches: list[Bench], repeats: int, log: Callable[[str], None]) -> None:
    """Every step for every tool before the next step; the order rotates from step to step."""
    steps: list[tuple[str, Callable[[Bench], None]]] = [
        ("add a large random file", Bench.add_big),
    ]
    steps += [(f"add the large file again {i + 2}/{max(repeats, 3)}", Bench.add_big_again)
              for i in range(max(repeats, 3) - 1)]
    steps += [
        ("add the small files, first status", Bench.add_small),
    ]
    steps += [(f"no-op status {i + 1}/{repeats}", Bench.status) for i in range(repeats)]
    steps += [(f"no-op status, gitml's watcher on {i + 1}/{repeats}", Bench.status_watch)
              for i in range(repeats)]
    steps += [("stop the watcher", Bench.watch_stop)]
    steps += [(f"re-add after 1% changed {i + 1}/{repeats}",
               (lambda b, i=i: b.readd_small(i))) for i in range(repeats)]
    steps += [("CSV, append 1%, re-add", Bench.csv), ("push", Bench.push),
              ("fresh clone + pull", Bench.clone_pull), ("memory", Bench.memory)]
    for n, (title, step) in enumerate(steps):
        log(f"-- {title}")
        k = n % len(benches)
        for b in benches[k:] + benches[:k]:
            if b.failed:
                continue
            try:
                step(b)
            except CommandFailed as e:
                log(f"  {b.lbl} FAILED: {e}")
                b.res.error = str(e)
                b.failed = True
    for b in benches:
        b.summary("add_big_s")
        b.summary("status_s")
        b.summary("status_watch_s")
        b.summary("readd_small_s")


# ------------------------------------------------------------ many small files (gitml vs Git)
def write_many(root: Path, n: int, seed: int = 5) -> int:
    """``n`` files of 0.2-2 KiB, 100 per folder; returns their bytes."""
    rng = random.Random(seed)
    total = 0
    for i in range(n):
        p = root / f"d{i // 1000:03d}/s{(i // 100) % 10}/f{i:06d}.bin"
        if i % 100 == 0:
            p.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(rng.randint(200, 2048))
        p.write_bytes(data)
        total += len(data)
    return total


def run_many(n: int, env: dict[str, str], gitml_env: dict[str, str], base: Path, repeats: int,
             log: Callable[[str], None]) -> dict[str, float]:
    """Issue #15's many-files case: add ``n`` small files with gitml, no-op status beside
    ``git status`` of the same tree tracked by Git, and the store's size on disk."""
    f: dict[str, float] = {"files": n}
    data = base / "many-data"
    f["data_bytes"] = write_many(data, n)
    f["data_disk_bytes"] = disk_bytes(data)
    log(f"-- {n:,} small files ({f['data_bytes'] / MIB:.1f} MiB, {f['data_disk_bytes'] / MIB:.1f} MiB on disk)")
    g = GitML(gitml_env, base / "many-gitml")
    g.init()
    copy_in(data, g.repo / "data")
    sync()
    before = count_files(g.base)
    r = run(["git", "ml", "add", "-q", "data"], g.repo, g.env)
    f.update(add_s=r.seconds, add_sys_s=r.sys_s, add_user_s=r.user_s, add_files=count_files(g.base) - before)
    g.commit("data")
    f["store_disk_bytes"] = disk_bytes(g.repo / g.store_rel)
    f["store_ratio"] = f["store_disk_bytes"] / f["data_bytes"]
    log(f"  gitml   add {r.seconds:.2f} s (sys {r.sys_s:.2f} s, {f['add_files']:,.0f} files created); "
        f"store {f['store_disk_bytes'] / MIB:.1f} MiB on disk = {f['store_ratio']:.2f}x the data")
    time.sleep(1.1)  # out of the racy window of the add (see Bench.status)
    run(["git", "ml", "status"], g.repo, g.env)  # the first one after add may record stats
    plain = base / "many-git"
    plain.mkdir()
    run(["git", "init", "-q", "-b", "main"], plain, env)
    copy_in(data, plain / "data")
    run(["git", "add", "-A"], plain, env)
    run(["git", "commit", "-q", "-m", "data"], plain, env)
    run(["git", "status"], plain, env)
    ours, theirs = [], []
    for _ in range(max(3, repeats)):
        ours.append(run(["git", "ml", "status"], g.repo, g.env).seconds)
        theirs.append(run(["git", "status"], plain, env).seconds)
    f["status_s"] = statistics.median(ours)
    f["git_status_s"] = statistics.median(theirs)
    g.watch("start")
    run(["git", "ml", "status"], g.repo, g.env)  # starts the watch, records a token
    run(["git", "ml", "status"], g.repo, g.env)
    watched = [run(["git", "ml", "status"], g.repo, g.env).seconds for _ in range(max(3, repeats))]
    g.watch("stop")
    f["status_watch_s"] = statistics.median(watched)
    log(f"  no-op status: gitml {f['status_s']:.3f} s, with its watcher {f['status_watch_s']:.3f} s, "
        f"git status {f['git_status_s']:.3f} s (medians)")
    shutil.rmtree(data, ignore_errors=True)
    return f


def many_targets(m: dict[str, float]) -> dict[str, tuple[str, bool]]:
    return {"add_s": ("<= 8 s", m["add_s"] <= 8.0),
            "status_s": ("<= git status", m["status_s"] <= m["git_status_s"]),
            "status_watch_s": ("<= git status", m.get("status_watch_s", 1e9) <= m["git_status_s"]),
            "store_ratio": ("<= 1.2x the data", m["store_ratio"] <= 1.2)}


# --------------------------------------------------------------------------- the report
ROWS: list[tuple[str, str, str]] = [
    # key, label, unit
    ("add_big_s", "add the large file (median)", "s"),
    ("add_small_s", "add the small files", "s"),
    ("add_small_sys_s", "  system time", "s"),
    ("add_small_files", "  files created", "n"),
    ("status_first_s", "status, first after add", "s"),
    ("status_s", "no-op status (median)", "s"),
    ("status_watch_s", "  with gitml's watcher on", "s"),
    ("readd_small_s", "re-add after 1% changed (median)", "s"),
    ("add_csv_s", "add the CSV", "s"),
    ("readd_csv_s", "re-add CSV after 1% append", "s"),
    ("csv_growth_bytes", "store growth after CSV append", "MiB"),
    ("push_s", "push to folder remote", "s"),
    ("push_files", "  files created", "n"),
    ("clone_pull_s", "fresh clone + pull", "s"),
    ("clone_pull_sys_s", "  system time", "s"),
    ("clone_pull_files", "  files created", "n"),
    ("add_mid_rss_mib", "add 256 MiB: max RSS", "MiB"),
    ("add_big_rss_mib", "add 1 GiB: max RSS", "MiB"),
]


def targets(g: dict[str, float], d: dict[str, float] | None,
            lfs: dict[str, float] | None = None) -> dict[str, tuple[str, bool | None]]:
    """Issue #15's targets: key -> (description, met; None when the other tool was not run)."""
    def vs_dvc(key: str, frac: float) -> bool | None:
        return None if d is None or key not in d or key not in g else g[key] <= frac * d[key]

    out: dict[str, tuple[str, bool | None]] = {
        "add_big_s": ("<= 0.2 DVC", vs_dvc("add_big_s", 0.2)),
        "add_small_s": ("<= 0.15 DVC", vs_dvc("add_small_s", 0.15)),
        "clone_pull_s": ("<= 0.25 DVC", vs_dvc("clone_pull_s", 0.25)),
        "csv_growth_bytes": ("<= 1.5% of file", g["csv_growth_pct"] <= 1.5 if "csv_growth_pct" in g else None),
    }
    for key in ("status_s", "status_watch_s"):
        if key in g:
            out[key] = ("<= git-lfs", None if lfs is None or "status_s" not in lfs
                        else g[key] <= lfs["status_s"])
    if "add_big_rss_mib" in g and "add_mid_rss_mib" in g:
        flat = g["add_big_rss_mib"] <= max(1.25 * g["add_mid_rss_mib"], g["add_mid_rss_mib"] + 32)
        out["add_big_rss_mib"] = ("flat with size", flat)
    return out


def fmt(key: str, value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MiB" and key.endswith("_bytes"):
        return f"{value / MIB:,.1f} MiB"
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    if unit == "n":
        return f"{value:,.0f}"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.3f}"


def table(results: dict[str, ToolResult]) -> str:
    g = results.get("gitml")
    gf = g.figures if g else {}
    df = results["dvc"].figures if "dvc" in results else None
    lf = results["lfs"].figures if "lfs" in results else None
    tg = targets(gf, df, lf) if g else {}
    head = ["operation", "gitml", "DVC", "git-lfs", "gitml/DVC", "gitml/git-lfs", "target", "met"]
    rows = [head]
    for key, label, unit in ROWS:
        vals = [r.figures.get(key) if r else None for r in (g, results.get("dvc"), results.get("lfs"))]
        t = tg.get(key)
        met = "-" if t is None or t[1] is None else ("yes" if t[1] else "NO")
        rows.append([label, fmt(key, vals[0], unit), fmt(key, vals[1], unit), fmt(key, vals[2], unit),
                     ratio(vals[0], df.get(key) if df else None), ratio(vals[0], lf.get(key) if lf else None),
                     t[0] if t else "", met])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def tool_versions(env: dict[str, str], dvc: str, tools: Sequence[str]) -> dict[str, str]:
    out = {"git": run(["git", "--version"], Path.cwd(), env).out.strip()}
    if "dvc" in tools:
        out["dvc"] = run([dvc, "--version"], Path.cwd(), env).out.strip()
    if "lfs" in tools:
        out["git-lfs"] = run(["git", "lfs", "version"], Path.cwd(), env).out.strip()
    if "gitml" in tools:
        r = run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('gitml'))"],
                Path.cwd(), env, check=False)
        out["gitml"] = r.out.strip()
        head = run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], Path.cwd(), env, check=False)
        out["gitml_commit"] = head.out.strip()
    return out


def install_gitml(src: Path, venv: Path) -> Path:
    """A regular (not editable) install of gitml from ``src``, as users have it, in a venv
    that borrows this environment's libraries; returns its bin folder (with ``git-ml``)."""
    import sysconfig

    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], src, os.environ.copy())
    site = Path(run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                    src, os.environ.copy()).out.strip())
    (site / "_bench_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
         "--target", str(site), str(src)], src, os.environ.copy())
    # the script the wheel ships (bin/git-ml), its `#!python` line made this venv's, as pip
    # does on a regular install (pip --target points it at the installing interpreter)
    shipped = (src / "bin" / "git-ml").read_text().split("\n", 1)[1]
    script = venv / "bin" / "git-ml"
    script.write_text(f"#!{venv / 'bin' / 'python'}\n{shipped}")
    script.chmod(0o755)
    return venv / "bin"


def make_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DVC_", "GITML_"))}
    bindir = Path(sys.executable).parent
    if (bindir / "git-ml").exists():
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env.update({
        "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
        "DVC_NO_ANALYTICS": "1", "LC_ALL": "C.UTF-8",
        # users run with cached bytecode; keep it out of the source tree
        "PYTHONPYCACHEPREFIX": str(home.parent / "pycache"),
    })
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    return env


def report(results: dict[str, ToolResult], many: dict[str, float]) -> dict[str, Any]:
    """Print the tables; the figures and targets for the results file."""
    print()
    if results:
        print(table(results))
    if many:
        print(f"\n{many['files']:,.0f} small files: add {many['add_s']:.2f} s (sys {many['add_sys_s']:.2f} s, "
              f"{many['add_files']:,.0f} files created), no-op status {many['status_s']:.3f} s vs git status "
              f"{many['git_status_s']:.3f} s, store {many['store_ratio']:.2f}x the data on disk")
        for key, (want, met) in many_targets(many).items():
            print(f"  {key}: {want}: {'yes' if met else 'NO'}")
    for r in results.values():
        for n in r.notes:
            print(f"{r.tool}: {n}")
        if r.error:
            print(f"{r.tool}: failed: {r.error.splitlines()[0]}")
    g = results.get("gitml")
    tg = targets(g.figures, results["dvc"].figures if "dvc" in results else None,
                 results["lfs"].figures if "lfs" in results else None) if g else {}
    return {
        "results": {n: {"figures": r.figures, "samples": r.samples, "notes": r.notes, "error": r.error}
                    for n, r in results.items()},
        "targets": {k: {"target": v[0], "met": v[1]} for k, v in tg.items()},
        "many": many,
        "many_targets": {k: {"target": v[0], "met": v[1]} for k, v in many_targets(many).items()} if many else {},
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="data size factor (0.1 for a quick run)")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS), help="comma list of gitml,dvc,lfs")
    ap.add_argument("--repeats", type=int, default=5, help="runs of the short measurements (median)")
    ap.add_argument("--workdir", default="/tmp", help="where the temporary folder goes")
    ap.add_argument("--dvc", default="/tmp/dvcenv/bin/dvc", help="the dvc executable")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--gitml-src", default=None, metavar="DIR",
                    help="run gitml from this source folder (PYTHONPATH) to measure a patch")
    ap.add_argument("--json", default=None, help="results file (default benchmarks/results/store-<date>.json)")
    ap.add_argument("--editable", action="store_true",
                    help="run the gitml of this environment (an editable install costs every command "
                         "~12 ms of start-up in its import hook) instead of a regular install of it")
    ap.add_argument("--many", type=int, default=0, metavar="N",
                    help="also add N files of 0.2-2 KiB with gitml (issue #15: 100000), beside git status")
    ap.add_argument("--many-only", action="store_true", help="only the --many step")
    args = ap.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(ALL_TOOLS)
    if unknown:
        ap.error(f"unknown tools: {', '.join(sorted(unknown))}")
    if "dvc" in tools and not shutil.which(args.dvc):
        ap.error(f"no dvc at {args.dvc}: python3 -m venv /tmp/dvcenv && /tmp/dvcenv/bin/pip install dvc")
    if "lfs" in tools and not shutil.which("git-lfs"):
        ap.error("git-lfs is not installed: apt-get install -y git-lfs")

    sizes = Sizes.scaled(args.scale)
    # per tool: work tree + store + remote (+ a clone while it is verified); plus the data
    need = len(tools) * 5 * (sizes.big + sizes.csv) + 2 * (sizes.big + sizes.mid + sizes.csv)
    free = shutil.disk_usage(args.workdir).free
    if free < need:
        print(f"only {free / GIB:.1f} GiB free in {args.workdir}; this run needs ~{need / GIB:.1f} GiB",
              file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="gitml-bench-store-", dir=args.workdir))
    started = dt.datetime.now(dt.UTC)
    load_at_start = os.getloadavg()
    results: dict[str, ToolResult] = {}
    many: dict[str, float] = {}
    try:
        env = make_env(tmp / "home")
        src = Path(args.gitml_src).resolve() if args.gitml_src else HERE.parent
        gitml_env = env if args.editable else dict(
            env, PATH=f"{install_gitml(src, tmp / 'gitml-venv')}{os.pathsep}{env['PATH']}")
        if args.editable and args.gitml_src:
            gitml_env = dict(env, PYTHONPATH=str(src))
        if "lfs" in tools:
            run(["git", "lfs", "install", "--skip-repo"], tmp, env)
        versions = tool_versions(env, args.dvc, tools)
        if args.gitml_src:
            versions["gitml_src"] = str(Path(args.gitml_src).resolve())
        log(f"scale {args.scale}, tools {','.join(tools)}, repeats {args.repeats}, in {tmp}")
        log(f"load average at start: {os.getloadavg()}")
        data = Dataset(tmp / "data", sizes)
        if not args.many_only:
            data.generate(log)
        benches = []
        for name in tools:
            base = tmp / name
            base.mkdir()
            tool: Tool = (GitML(gitml_env, base) if name == "gitml" else DVC(env, base, args.dvc)
                          if name == "dvc" else LFS(env, base))
            benches.append(Bench(tool, data, log))
        if not args.many_only:
            run_all(benches, args.repeats, log)
            results = {b.tool.name: b.res for b in benches}
        if args.many:
            many = run_many(args.many, env, gitml_env, tmp, args.repeats, log)
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    out = report(results, many)
    out.update({
        "date": started.isoformat(timespec="seconds"),
        "scale": args.scale, "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_at_start": load_at_start, "load_at_end": os.getloadavg()},
        "versions": versions,
        "sizes": {"big": sizes.big, "mid": sizes.mid, "n_small": sizes.n_small, "csv": sizes.csv},
    })
    path = Path(args.json) if args.json else RESULTS / f"store-{started:%Y-%m-%d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nresults: {path}")
    return 0 if all(r.error is None and not r.notes for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
