"""Fault-injection scenarios shared by ``benchmarks/faults.py`` (the campaign) and
``tests/test_faults_quick.py`` (one quick case of each kind).

Every scenario builds its own repositories under a folder it is given, injects one fault
(a kill -9 at a random moment, concurrent processes, damaged objects, a full disk, an
unreadable path), runs the next command a user would, and counts what went wrong:
wrong bytes in a work tree or remote, internal errors, hangs, lost ignore lines and
temp files left behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.store import (
    chunk_paths,
    flip_byte,
    object_path,
    pointer_oid,
    temp_leftovers,
    tree_member_oid,
    truncate,
    where_object,
)
from tests.support.system import NO_DAC, can_drop_caps

TIMEOUT = 180.0


@dataclass
class Outcome:
    kind: str
    trials: int = 0
    wrong_bytes: int = 0
    internal_errors: int = 0
    hangs: int = 0
    lost_ignore_lines: int = 0
    leftovers: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return (self.wrong_bytes + self.internal_errors + self.hangs + self.lost_ignore_lines
                + self.leftovers)

    def merge(self, other: Outcome) -> None:
        for name in ("trials", "wrong_bytes", "internal_errors", "hangs", "lost_ignore_lines",
                     "leftovers"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.notes += other.notes


class Runner:
    """Runs git / git ml in one environment and counts internal errors and hangs."""

    def __init__(self, outcome: Outcome, env: dict[str, str] | None = None) -> None:
        self.outcome = outcome
        self.env = {**os.environ, **(env or {})}

    def git(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              env=self.env, check=True)

    def ml(self, cwd: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run([*prefix, "git", "ml", *args], cwd=cwd, capture_output=True,
                                  text=True, env=self.env, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.outcome.hangs += 1
            self.outcome.notes.append(f"hang: git ml {' '.join(args)}")
            return subprocess.CompletedProcess(args, -1, "", "")
        if proc.returncode == 3 or "internal error" in proc.stderr or "Traceback" in proc.stderr:
            self.outcome.internal_errors += 1
            self.outcome.notes.append(f"internal error: git ml {' '.join(args)}: {proc.stderr[-300:]}")
        return proc

    def start(self, cwd: Path, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["git", "ml", *args], cwd=cwd, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path, names: list[str]) -> dict[str, str]:
    """sha256 of every file below each of ``names`` (files or folders) under ``root``."""
    out: dict[str, str] = {}
    for name in names:
        p = root / name
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file():
                    out[f.relative_to(root).as_posix()] = _digest(f)
        elif p.exists():
            out[name] = _digest(p)
    return out


def count_wrong(expected: dict[str, str], root: Path) -> int:
    """Files whose bytes differ from what was added (a missing file is not wrong bytes)."""
    wrong = 0
    for rel, digest in expected.items():
        p = root / rel
        if p.is_file() and _digest(p) != digest:
            wrong += 1
    return wrong


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait until every process of the killed group has exited: ``git ml`` is git running
    git-ml as its child, and a child in the middle of a system call dies a moment after
    the git process the harness waited for (its temp files are then the next command's
    to sweep, not this one's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def leftovers(repo: Path) -> list[Path]:
    """Temp files in the work tree (outside .git) and in the store's tmp folder."""
    work = [p for p in temp_leftovers(repo) if ".git" not in p.relative_to(repo).parts]
    return work + temp_leftovers(repo / ".git/ml/store/tmp")


# --------------------------------------------------------------------------- data sets
ARTIFACTS = ["d", "big.bin", "f.bin"]


def make_data(repo: Path, rng: random.Random, *, small_files: int = 150, big_mib: int = 10) -> None:
    (repo / "d/sub").mkdir(parents=True, exist_ok=True)
    for i in range(small_files):
        folder = repo / ("d/sub" if i % 3 else "d")
        (folder / f"s{i}.bin").write_bytes(rng.randbytes(rng.randint(100, 4000)))
    (repo / "big.bin").write_bytes(rng.randbytes(big_mib << 20))  # chunked
    (repo / "f.bin").write_bytes(rng.randbytes(2 << 20))


def new_repo(r: Runner, path: Path) -> Path:
    path.mkdir(parents=True)
    r.git(path, "init", "-q")
    (path / "README.md").write_text("fault test\n")
    r.git(path, "add", "README.md")
    r.git(path, "commit", "-qm", "initial")
    r.ml(path, "init")
    return path


def git_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Fault\n\temail = fault@example.com\n[init]\n\tdefaultBranch = main\n"
        "[advice]\n\tdetachedHead = false\n")
    return {"HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1"}


# ---------------------------------------------------------------------------- kill -9
KILL_OPS = ("add", "push", "pull", "checkout")


def _template(r: Runner, base: Path, rng: random.Random, small_files: int, big_mib: int) -> Path:
    """origin repo with data added, committed and pushed; a clone without content."""
    t = base / "template"
    if t.exists():
        return t
    repo = new_repo(r, t / "repo")
    make_data(repo, rng, small_files=small_files, big_mib=big_mib)
    r.ml(repo, "remote", "add", "origin", str(t / "remote"), "--default")
    return t


def _fresh(template: Path, trial: Path) -> Path:
    if trial.exists():
        shutil.rmtree(trial)
    shutil.copytree(template, trial, symlinks=True)
    return trial


def kill_trial(op: str, base: Path, rng: random.Random, *, small_files: int = 150,
               big_mib: int = 10, max_delay: float = 2.0) -> Outcome:
    """Kill ``git ml <op>`` after a random delay, run it again, and check the result."""
    out = Outcome(f"kill -9 {op}", trials=1)
    r = Runner(out, git_env(base / "home"))
    template = _template(r, base, random.Random(7), small_files, big_mib)
    # every trial works at the same absolute paths as the template (configs hold them)
    work = _fresh(template, template.parent / "trial-src")
    repo = work / "repo"
    r.ml(repo, "remote", "modify", "origin", "url", str(work / "remote"))
    expected = snapshot(repo, ARTIFACTS)
    target = repo
    args: tuple[str, ...] = (op,)
    if op == "add":
        args = ("add", *ARTIFACTS)
    else:
        r.ml(repo, "add", *ARTIFACTS)
        r.git(repo, "commit", "-qam", "data")
        if op in ("pull", "checkout"):
            r.ml(repo, "push")
        if op == "pull":
            target = work / "clone"
            r.git(work, "clone", "-q", str(repo), str(target))
        if op == "checkout":
            for name in ARTIFACTS:
                p = repo / name
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            args = ("checkout", "--force")
    proc = r.start(target, *args)
    time.sleep(rng.uniform(0.0, max_delay))
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_group_gone(proc.pid)
    again = r.ml(target, *args)
    if again.returncode != 0:
        out.notes.append(f"re-run of {op} failed: {again.stderr.strip()[-300:]}")
        out.wrong_bytes += 0 if "error:" in again.stderr else 1
    out.wrong_bytes += count_wrong(expected, target)
    if op in ("add", "checkout", "pull"):
        missing = [k for k in expected if not (target / k).is_file()]
        if missing and again.returncode == 0:
            out.wrong_bytes += len(missing)
            out.notes.append(f"{op}: {len(missing)} files missing after a successful re-run")
    if op == "push":
        check = r.ml(repo, "fsck", "--remote")
        if check.returncode != 0:
            out.wrong_bytes += 1
            out.notes.append(f"push: remote damaged: {check.stderr.strip()[-300:]}")
        clone = work / "clone"
        r.git(work, "clone", "-q", str(repo), str(clone))
        if r.ml(clone, "pull").returncode != 0:
            out.wrong_bytes += 1
        out.wrong_bytes += count_wrong(expected, clone)
    fsck = r.ml(target, "fsck")
    if fsck.returncode != 0:
        out.wrong_bytes += 1
        out.notes.append(f"{op}: fsck after re-run: {fsck.stderr.strip()[-300:]}")
    left = leftovers(target)
    if left:
        out.leftovers += len(left)
        out.notes.append(f"{op}: left {[str(p.relative_to(work)) for p in left][:3]}")
    if op in ("add",):
        ignored = (repo / ".gitignore").read_text().splitlines() if (repo / ".gitignore").exists() else []
        out.lost_ignore_lines += sum(1 for n in ARTIFACTS if f"/{n}" not in ignored)
    return out


# ------------------------------------------------------------------------- concurrency
def concurrent_adds(base: Path, rng: random.Random, n: int = 6) -> Outcome:
    out = Outcome("concurrent add", trials=1)
    r = Runner(out, git_env(base / "home"))
    repo = new_repo(r, base / f"cadd-{rng.randrange(1 << 30)}")
    names = [f"f{i}.bin" for i in range(n)]
    for name in names:
        (repo / name).write_bytes(rng.randbytes(rng.randint(1000, 300_000)))
    procs = [r.start(repo, "add", name) for name in names]
    for p in procs:
        _wait(p, out)
    ignored = (repo / ".gitignore").read_text().splitlines()
    out.lost_ignore_lines += sum(1 for name in names if f"/{name}" not in ignored)
    staged = r.git(repo, "ls-files").stdout.split()
    out.lost_ignore_lines += sum(1 for name in names if f"{name}.gitml" not in staged)
    if r.ml(repo, "fsck").returncode != 0:
        out.wrong_bytes += 1
    return out


def concurrent_push_and_gc(base: Path, rng: random.Random) -> Outcome:
    """Two clones push to one remote while a third adds and the store is collected."""
    out = Outcome("concurrent push/gc", trials=1)
    r = Runner(out, git_env(base / "home"))
    root = base / f"cpush-{rng.randrange(1 << 30)}"
    remote = root / "remote"
    repos = []
    for i in range(2):
        repo = new_repo(r, root / f"r{i}")
        make_data(repo, random.Random(rng.randrange(1 << 30)), small_files=60, big_mib=9)
        r.ml(repo, "remote", "add", "origin", str(remote), "--default")
        r.ml(repo, "add", *ARTIFACTS)
        r.git(repo, "commit", "-qam", "data")
        repos.append(repo)
    expected = snapshot(repos[0], ARTIFACTS)
    (repos[0] / "late.bin").write_bytes(rng.randbytes(500_000))
    procs = [r.start(repos[0], "push"), r.start(repos[1], "push"),
             r.start(repos[0], "add", "late.bin"), r.start(repos[0], "gc")]
    for p in procs:
        _wait(p, out)
    for repo in repos:
        if r.ml(repo, "push").returncode != 0:
            out.wrong_bytes += 1
    if r.ml(repos[0], "fsck", "--remote").returncode != 0:
        out.wrong_bytes += 1
    status = r.ml(repos[0], "status", "--json").stdout
    if '"not-in-store"' in status:
        out.wrong_bytes += 1
        out.notes.append("gc removed content an add was writing")
    clone = root / "clone"
    r.git(root, "clone", "-q", str(repos[0]), str(clone))
    r.ml(clone, "pull")
    out.wrong_bytes += count_wrong(expected, clone)
    return out


def _wait(p: subprocess.Popen[bytes], out: Outcome) -> None:
    try:
        p.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        out.hangs += 1
        os.killpg(p.pid, signal.SIGKILL)
        return
    err = p.stderr.read().decode() if p.stderr else ""
    if p.returncode == 3 or "internal error" in err:
        out.internal_errors += 1
        out.notes.append(err[-300:])


# ---------------------------------------------------------------------- damaged objects
DAMAGES = ("flip", "truncate", "delete")
TARGETS = ("loose", "chunk", "tree", "pack member", "local pack member")


def _damage(path: Path, how: str, start: int | None, size: int) -> None:
    """Flip, truncate or delete ``path``; with ``start``, the object at that offset of a
    local pack (truncating cuts it and every one after it; delete takes the whole pack)."""
    if start is not None and how == "flip":
        flip_byte(path, start + min(50, size - 1))
    elif start is not None and how == "truncate":
        truncate(path, start + size // 2)
    elif how == "flip":
        flip_byte(path, min(50, path.stat().st_size - 1))
    elif how == "truncate":
        truncate(path, path.stat().st_size // 2)
    else:
        path.unlink()


def damage_trial(how: str, target: str, base: Path, rng: random.Random) -> Outcome:
    """Damage one object, then do what a user does: checkout (must refuse or be right),
    fsck (must notice), repair from the remote and check out good bytes."""
    out = Outcome(f"damage: {how} {target}", trials=1)
    r = Runner(out, git_env(base / "home"))
    root = base / f"dmg-{rng.randrange(1 << 30)}"
    repo = new_repo(r, root / "repo")
    make_data(repo, random.Random(rng.randrange(1 << 30)), small_files=20, big_mib=9)
    r.ml(repo, "remote", "add", "origin", str(root / "remote"), "--default")
    r.ml(repo, "add", *ARTIFACTS)
    r.git(repo, "commit", "-qam", "data")
    r.ml(repo, "push")
    expected = snapshot(repo, ARTIFACTS)
    where = repo
    start = size = 0
    if target == "pack member":
        where = root / "clone"
        r.git(root, "clone", "-q", str(repo), str(where))
        path = next((root / "remote/packs").glob("*.pack"))
    elif target == "local pack member":  # a small file of the folder, inside a local pack
        name = sorted(p.relative_to(repo / "d").as_posix() for p in (repo / "d").rglob("*")
                      if p.is_file())[0]
        member = tree_member_oid(repo, pointer_oid(repo, "d"), name)
        path, start, size = where_object(repo, member)
    elif target == "loose":
        path = object_path(repo, pointer_oid(repo, "f.bin"))
    elif target == "chunk":
        path = chunk_paths(repo, pointer_oid(repo, "big.bin"))[0]
    else:
        path = object_path(repo, pointer_oid(repo, "d"))
    _damage(path, how, start if target == "local pack member" else None, size)
    for name in ARTIFACTS:
        p = where / name
        if p.exists():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    first = r.ml(where, "pull" if where != repo else "checkout", "--force")
    out.wrong_bytes += count_wrong(expected, where)
    if target != "pack member":
        if r.ml(repo, "fsck").returncode == 0 and how != "delete":
            out.wrong_bytes += 1
            out.notes.append(f"{how} {target}: fsck saw nothing")
        r.ml(repo, "fetch", "--repair")
        fixed = r.ml(repo, "checkout", "--force")
    else:
        if first.returncode == 0:
            out.notes.append("pull from a damaged pack succeeded")
        r.ml(repo, "push", "--verify-remote")
        fixed = r.ml(where, "pull", "--force")
    out.wrong_bytes += count_wrong(expected, where)
    missing = [k for k in expected if not (where / k).is_file()]
    if fixed.returncode != 0 or missing:
        out.wrong_bytes += max(1, len(missing))
        out.notes.append(f"{how} {target}: not repaired: {fixed.stderr.strip()[-300:]}")
    return out


# ---------------------------------------------------------------------------- full disk
def full_disk_trial(base: Path, rng: random.Random) -> Outcome:
    """A work tree and store on a 16 MiB tmpfs: add and checkout run out of space."""
    out = Outcome("full disk", trials=1)
    if os.geteuid() != 0:
        out.notes.append("skipped: needs root")
        return out
    r = Runner(out, git_env(base / "home"))
    mnt = base / f"tiny-{rng.randrange(1 << 30)}"
    mnt.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        repo = new_repo(r, mnt / "repo")
        (repo / "a.bin").write_bytes(rng.randbytes(4 << 20))
        r.ml(repo, "add", "a.bin")
        expected = snapshot(repo, ["a.bin"])
        (repo / "b.bin").write_bytes(rng.randbytes(5 << 20))
        too_big = r.ml(repo, "add", "b.bin")  # 4 + 4 + 5 + 5 > 16 MiB
        if too_big.returncode == 0:
            out.notes.append("add on a full disk succeeded")
        (repo / "a.bin").unlink()
        filler = repo / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            f.write(b"\0" * (16 << 20))
        full = r.ml(repo, "checkout")
        if (repo / "a.bin").exists():
            out.wrong_bytes += count_wrong(expected, repo)
        if full.returncode == 0:
            out.notes.append("checkout on a full disk succeeded")
        elif "no space" not in full.stderr.lower():
            out.notes.append(f"checkout on a full disk: {full.stderr.strip()[-200:]}")
        filler.unlink()
        (repo / "b.bin").unlink(missing_ok=True)
        r.ml(repo, "checkout")
        out.wrong_bytes += count_wrong(expected, repo) + (0 if (repo / "a.bin").exists() else 1)
        left = leftovers(repo)
        out.leftovers += len(left)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    return out


# ----------------------------------------------------------------------- unreadable paths
UNREADABLE = ("store", "fan-out folder", ".git/ml", "stat cache", "pointer", "added file",
              "store.lock")


def unreadable_trial(what: str, base: Path, rng: random.Random) -> Outcome:
    """chmod 000 one path, run status/add/checkout with root's bypass dropped: each must
    end in a one-line error or succeed, never an internal error or a hang."""
    out = Outcome(f"unreadable {what}", trials=1)
    if os.geteuid() == 0 and not can_drop_caps():
        out.notes.append("skipped: cannot drop root's capabilities")
        return out
    r = Runner(out, git_env(base / "home"))
    repo = new_repo(r, base / f"unr-{rng.randrange(1 << 30)}")
    (repo / "a.bin").write_bytes(rng.randbytes(3000))
    (repo / "b.bin").write_bytes(rng.randbytes(3000))
    r.ml(repo, "add", "a.bin")
    ml = repo / ".git/ml"
    paths = {"store": ml / "store", ".git/ml": ml, "stat cache": ml / "stat-cache.sqlite",
             "pointer": repo / "a.bin.gitml", "added file": repo / "b.bin",
             "store.lock": ml / "store.lock",
             "fan-out folder": object_path(repo, pointer_oid(repo, "a.bin")).parent}
    path = paths[what]
    (repo / "a.bin").unlink()
    mode = path.stat().st_mode
    os.chmod(path, 0)
    prefix = tuple(NO_DAC) if os.geteuid() == 0 else ()
    try:
        for args in (("status",), ("add", "b.bin"), ("checkout",), ("fsck",)):
            proc = r.ml(repo, *args, prefix=prefix)
            if proc.returncode not in (0, 1):
                out.notes.append(f"{what}: git ml {' '.join(args)} exited {proc.returncode}")
            if proc.returncode == 1 and not proc.stderr.strip():
                out.notes.append(f"{what}: {' '.join(args)} failed without saying why")
    finally:
        os.chmod(path, mode)
    return out


@contextlib.contextmanager
def scratch(root: Path) -> Iterator[Path]:
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
