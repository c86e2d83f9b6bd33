"""What keeps `git ml run` / `git ml exp run` cheap stays correct: the cached environment
capture follows installs, upgrades and removals; HEAD and the dirty flag come from Git
without pygit2; the inotify reader parses what the kernel sends; a trial imports nothing
it does not need."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitml.git.repo import GitRepo
from gitml.runs import environment
from gitml.runs.tracer import IN_CREATE, IN_ISDIR, IN_OPEN, Tracer, parse_events
from tests.conftest import git, gitml
from tests.support.exp import make_project


def _install(site: Path, name: str, version: str | None, mtime_s: float) -> None:
    """Install (or with ``version`` None remove) a distribution the way pip leaves it:
    one ``NAME-VERSION.dist-info`` folder in the site folder, whose mtime changes."""
    for old in site.glob(f"{name}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    if version is not None:
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    os.utime(site, (mtime_s, mtime_s))


def _write(tmp_path: Path, cache: Path, n: int) -> tuple[dict, str]:
    out = tmp_path / f"env{n}.json"
    environment.write(str(out), str(cache))
    text = out.read_text()
    return json.loads(text), text


def test_environment_cache_follows_installs_upgrades_and_removals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    cache = tmp_path / "cache"
    old = time.time() - 60  # older than the racy window: captures may be cached
    _install(site, "gitml-probe", None, old)

    first, first_text = _write(tmp_path, cache, 1)
    assert "gitml-probe" not in first["packages"]
    assert len(list(cache.iterdir())) == 1
    time.sleep(1.1)
    _, again_text = _write(tmp_path, cache, 2)
    assert again_text == first_text              # a hit: the cached capture, byte for byte

    _install(site, "gitml-probe", "1.0", old + 1)
    installed, _ = _write(tmp_path, cache, 3)
    assert installed["packages"]["gitml-probe"] == "1.0"
    assert installed["id"] != first["id"]
    assert len(list(cache.iterdir())) == 2

    _install(site, "gitml-probe", "2.0", old + 2)
    upgraded, _ = _write(tmp_path, cache, 4)
    assert upgraded["packages"]["gitml-probe"] == "2.0"
    assert len({first["id"], installed["id"], upgraded["id"]}) == 3

    _install(site, "gitml-probe", None, old + 3)
    removed, _ = _write(tmp_path, cache, 5)
    assert removed["id"] == first["id"] and "gitml-probe" not in removed["packages"]

    # a site folder changed within the racy window: captured fresh, but not cached
    _install(site, "gitml-probe", "3.0", time.time())
    before = set(cache.iterdir())
    racy, _ = _write(tmp_path, cache, 6)
    assert racy["packages"]["gitml-probe"] == "3.0"
    assert set(cache.iterdir()) == before

    # a damaged cache entry is never used: the environment is captured again
    _install(site, "gitml-probe", "3.0", old + 4)
    _write(tmp_path, cache, 7)
    entry = cache / f"env-{environment.fingerprint()}.json"
    entry.write_text(entry.read_text().replace('"3.0"', '"9.9"'))  # id no longer matches
    fixed, _ = _write(tmp_path, cache, 8)
    assert fixed["packages"]["gitml-probe"] == "3.0"
    assert fixed["id"] == environment.environment_id(fixed)


def test_fingerprint_covers_machine_and_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    base = environment.fingerprint()
    assert environment.fingerprint() == base
    real = os.uname()
    kernel = os.uname_result((real.sysname, real.nodename, real.release + "+new", real.version,
                              real.machine))
    monkeypatch.setattr(os, "uname", lambda: kernel)
    assert environment.fingerprint() != base      # a kernel upgrade changes platform.release
    monkeypatch.undo()
    monkeypatch.setattr(environment, "_memory_bytes", lambda: 1)
    assert environment.fingerprint() != base      # memory is part of the id
    monkeypatch.undo()
    monkeypatch.setattr(sys, "executable", sys.executable + "-other")
    assert environment.fingerprint() != base


def test_a_run_records_a_new_environment_when_a_package_changes(repo: Path, tmp_path: Path) -> None:
    site = tmp_path / "extra-site"
    site.mkdir()
    old = time.time() - 60
    _install(site, "gitml-probe", None, old)
    (repo / "step.py").write_text("open('out.txt', 'w').write('x')\n")
    env = {"PYTHONPATH": str(site)}

    def run() -> dict:
        out = gitml(repo, "run", "-n", "step", "--json", "--", sys.executable, "step.py", env=env)
        rec = json.loads(out.stdout)
        return json.loads((repo / ".gitml" / "env" / f"{rec['env']}.json").read_text())

    a = run()
    cache = repo / ".git" / "ml" / "cache" / "environments"
    cached = set(cache.iterdir())
    assert cached
    assert run()["id"] == a["id"] and set(cache.iterdir()) == cached   # reused, not re-made
    _install(site, "gitml-probe", "1.0", old + 1)
    b = run()
    assert b["id"] != a["id"] and b["packages"]["gitml-probe"] == "1.0"
    _install(site, "gitml-probe", "1.1", old + 2)
    c = run()
    assert c["packages"]["gitml-probe"] == "1.1" and c["id"] not in (a["id"], b["id"])


def test_head_and_dirty_from_git(tmp_path: Path) -> None:
    path = tmp_path / "r"
    path.mkdir()
    git(path, "init", "-q")
    g = GitRepo.discover(path)
    assert g.head() is None and g.head_and_dirty() == (None, False)
    (path / "a.txt").write_text("1\n")
    git(path, "add", "a.txt")
    git(path, "commit", "-q", "-m", "one")
    sha = git(path, "rev-parse", "HEAD").stdout.strip()
    g = GitRepo.discover(path)
    assert g.head() == sha and "raw" not in g.__dict__           # no pygit2 needed
    assert g.head_and_dirty() == (sha, False)
    (path / "untracked.txt").write_text("u\n")
    assert g.head_and_dirty() == (sha, False)                    # untracked files do not count
    (path / "a.txt").write_text("2\n")
    assert g.head_and_dirty() == (sha, True)                     # unstaged change
    git(path, "add", "a.txt")
    assert g.head_and_dirty() == (sha, True)                     # staged change
    git(path, "commit", "-q", "-m", "two")
    sha2 = git(path, "rev-parse", "HEAD").stdout.strip()
    assert g.head_and_dirty() == (sha2, False)
    assert g.head() == sha2
    _ = g.raw                                                    # once pygit2 is open, it answers
    assert g.head() == sha2


def test_inotify_events_are_parsed() -> None:
    def event(wd: int, mask: int, name: bytes) -> bytes:
        padded = name + b"\0" * (16 - len(name) % 16) if name else b""
        return struct.pack("iIII", wd, mask, 0, len(padded)) + padded

    buf = event(1, IN_OPEN, b"data.csv") + event(2, IN_CREATE | IN_ISDIR, b"new") + event(3, 0x400, b"")
    assert parse_events(buf) == [(1, IN_OPEN, "data.csv"), (2, IN_CREATE | IN_ISDIR, "new"), (3, 0x400, "")]


def test_inotify_sees_a_shell_and_stops_at_once(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    with Tracer(tmp_path, audit=False) as tracer:
        assert tracer.kernel and tracer._ino is not None
        subprocess.run(["sh", "-c", "mkdir -p new/deep && cat in.txt > new/deep/out.txt"],
                       cwd=tmp_path, check=True)
        t0 = time.monotonic()
        res = tracer.finish()
        assert time.monotonic() - t0 < 1.0
    assert "in.txt" in res.reads and "new/deep/out.txt" in res.writes and "inotify" in res.mode
    with Tracer(tmp_path, audit=False) as tracer:   # left before the command ran
        ino = tracer._ino
        assert ino is not None and ino._thread.is_alive()
    assert not ino._thread.is_alive()


def test_a_trial_imports_only_what_it_needs(repo: Path) -> None:
    make_project(repo)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "gitml.cli.main", "exp", "run",
                           "-n", "train", "-S", "train.lr=0.2"], cwd=repo, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "gitml.sweep.trials" in imported                     # the measurement saw the trial
    heavy = {"pygit2", "inotify_simple", "gitml.sweep.queue", "secrets", "rich"} & imported
    assert heavy == set()
    rows = json.loads(gitml(repo, "exp", "show", "--json").stdout)
    assert len(rows) == 1 and rows[0]["state"] == "complete"
