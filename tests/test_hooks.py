"""Hooks installed for real and triggered by real git commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import git, gitml


def test_install_chains_existing_hook_and_uninstall_restores(repo: Path) -> None:
    hooks = Path(git(repo, "rev-parse", "--git-path", "hooks").stdout.strip())
    hooks = hooks if hooks.is_absolute() else repo / hooks
    hooks.mkdir(parents=True, exist_ok=True)
    mine = hooks / "pre-commit"
    mine.write_text("#!/bin/sh\necho user-hook-ran >> \"$(git rev-parse --show-toplevel)/hook.log\"\n")
    mine.chmod(0o755)
    gitml(repo, "install")
    assert (hooks / "pre-commit.gitml-chained").exists()
    (repo / "x.txt").write_text("x")
    git(repo, "add", "x.txt")
    git(repo, "commit", "-q", "-m", "x")
    assert (repo / "hook.log").read_text() == "user-hook-ran\n"
    gitml(repo, "install")  # idempotent: does not chain itself
    assert "gitml hook" not in (hooks / "pre-commit.gitml-chained").read_text()
    gitml(repo, "uninstall")
    assert mine.read_text().startswith("#!/bin/sh\necho user-hook-ran")


def test_pre_commit_refuses_changed_artifact(repo: Path) -> None:
    gitml(repo, "install")
    (repo / "m.bin").write_bytes(b"v1")
    gitml(repo, "add", "m.bin")
    (repo / "m.bin").write_bytes(b"v2 edited after add")
    proc = git(repo, "commit", "-q", "-m", "m", check=False)
    assert proc.returncode != 0
    assert "m.bin changed since it was added; run `git ml add m.bin`" in proc.stderr
    gitml(repo, "add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")


def test_a_split_index_stops_the_commit_with_the_fix_not_a_traceback(repo: Path) -> None:
    """libgit2 cannot read Git's split index: the hook must say so in one line."""
    gitml(repo, "install")
    (repo / "m.bin").write_bytes(b"v1")
    gitml(repo, "add", "m.bin")
    git(repo, "config", "core.splitIndex", "true")
    git(repo, "update-index", "--split-index")
    proc = git(repo, "commit", "-q", "-m", "m", check=False)
    assert proc.returncode != 0
    assert "index is split (core.splitIndex)" in proc.stderr
    assert "git update-index --no-split-index" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    git(repo, "config", "core.splitIndex", "false")
    git(repo, "update-index", "--no-split-index")
    git(repo, "commit", "-q", "-m", "m")  # the fix it names works


def test_pre_commit_refuses_pointer_to_missing_content(repo: Path) -> None:
    gitml(repo, "install")
    (repo / "ghost.bin.gitml").write_text(
        "version 1\nkind file\noid " + "ab" * 16 + "\nsize 3\n")
    git(repo, "add", "ghost.bin.gitml")
    proc = git(repo, "commit", "-q", "-m", "ghost", check=False)
    assert proc.returncode != 0 and "not in the gitml store" in proc.stderr


def test_commit_all_uses_the_temporary_index(repo: Path) -> None:
    """`git commit -a` runs hooks with GIT_INDEX_FILE set to a temporary index."""
    gitml(repo, "install")
    (repo / "m.bin").write_bytes(b"v1")
    gitml(repo, "add", "m.bin")
    git(repo, "commit", "-q", "-m", "v1")
    (repo / "m.bin").write_bytes(b"v2")
    gitml(repo, "add", "m.bin")
    git(repo, "reset", "-q")  # unstage: only `-a` stages the pointer now
    (repo / "m.bin").write_bytes(b"v3 not added")
    proc = git(repo, "commit", "-a", "-q", "-m", "v2", check=False)
    assert proc.returncode != 0 and "m.bin changed since it was added" in proc.stderr


def test_pre_commit_framework_hook_file_is_valid() -> None:
    text = (Path(__file__).parent.parent / ".pre-commit-hooks.yaml").read_text()
    ids = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("- id:")]
    assert ids[:2] == ["gitml-pointers", "gitml-gates"]
    entries = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.strip().startswith("entry:")]
    from gitml.hooks.entry import HANDLERS

    for entry in entries:
        exe, hook = entry.split()
        assert exe == "git-ml-hook" and hook in HANDLERS


def test_concurrent_adds_share_the_store_safely(repo: Path) -> None:
    for n in range(2):
        d = repo / f"set{n}"
        d.mkdir()
        for i in range(300):
            # half of the content is shared between the two folders
            (d / f"f{i}.txt").write_text(f"shared {i}\n" if i % 2 else f"own {n} {i}\n")
    env = {**os.environ}
    procs = [subprocess.Popen(["git", "ml", "add", f"set{n}"], cwd=repo, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(2)]
    results = [(*p.communicate(), p.returncode) for p in procs]
    ok = [r for r in results if r[2] == 0]
    assert ok, results
    for _out, err, code in results:
        assert code == 0 or ("Traceback" not in err and err.startswith("gitml: error:"))
    fsck = gitml(repo, "fsck", check=False)
    assert fsck.returncode == 0 or "missing" in fsck.stderr  # a failed add leaves no damage
    assert "damaged" not in fsck.stderr
    if all(r[2] == 0 for r in results):
        gitml(repo, "status", "--exit-code")


def test_interrupted_add_leaves_store_consistent(repo: Path) -> None:
    big = repo / "big.bin"
    big.write_bytes(os.urandom(64 * 1024 * 1024))
    proc = subprocess.Popen(["git", "ml", "add", "big.bin"], cwd=repo, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(0.8)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate()
    assert "Traceback" not in err
    if proc.returncode != 0:
        assert not (repo / "big.bin.gitml").exists()
    assert gitml(repo, "fsck").returncode == 0  # no partial object under a real name
    gitml(repo, "add", "big.bin")  # and the add completes afterwards
    assert gitml(repo, "status", "--exit-code").returncode == 0


def test_hooks_that_cannot_find_gitml_stop_the_commit_and_the_push(repo: Path, tmp_path: Path) -> None:
    """gitml uninstalled but its hooks left behind: the gates and the upload fail closed
    (as git-lfs's do) with the way out, and a commit that stages nothing of gitml's passes."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", remote.as_uri())
    gitml(repo, "install")
    (repo / "m.bin").write_bytes(b"v1")
    gitml(repo, "add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")  # with gitml: passes the gates, records the hook list

    hooks = repo / ".git" / "hooks"
    for name in ("pre-commit", "commit-msg", "pre-push"):
        text, n = re.subn(r'echo "[^"]*/git-ml-hook"\)', 'echo "/gone/git-ml-hook")', (hooks / name).read_text())
        assert n == 1, name
        (hooks / name).write_text(text)

    def git_without_gitml(*args: str) -> subprocess.CompletedProcess[str]:
        # no git-ml-hook on PATH, and the path recorded at install is gone
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              env={**os.environ, "PATH": "/usr/bin:/bin"})

    (repo / "notes.txt").write_text("unrelated")
    git(repo, "add", "notes.txt")
    assert git_without_gitml("commit", "-q", "-m", "notes").returncode == 0  # nothing to gate

    head = git(repo, "rev-parse", "HEAD").stdout
    (repo / "m.bin").write_bytes(b"v2")
    gitml(repo, "add", "m.bin")
    proc = git_without_gitml("commit", "-q", "-m", "m2")
    assert proc.returncode != 0
    assert "git-ml-hook not found, so the gates cannot check this commit" in proc.stderr
    assert "git commit --no-verify" in proc.stderr and "Traceback" not in proc.stderr
    assert git(repo, "rev-parse", "HEAD").stdout == head

    proc = git_without_gitml("push", "-q", "origin", "HEAD:refs/heads/main")
    assert proc.returncode != 0 and "cannot be uploaded" in proc.stderr
    assert git(remote, "for-each-ref").stdout == ""  # nothing reached the remote
