"""A no-op status proved from the last status's snapshot, and the watcher that vouches for
folders: each must step aside for every change, made any way, right before the question."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitml import inotify
from tests.conftest import git, gitml

OLD_NS = (time.time_ns() - 3_600_000_000_000)  # an hour ago: past the racy window


def age(*paths: Path) -> None:
    """Move mtimes out of the racy window (a stat taken in the tick of a change is not
    trusted), as if the files had been written a while ago."""
    for p in paths:
        for q in [p, *p.rglob("*")] if p.is_dir() else [p]:
            os.utime(q, ns=(OLD_NS, OLD_NS), follow_symlinks=False)


def tracked_repo(repo: Path) -> None:
    (repo / "model.bin").write_bytes(b"m" * 5000)
    for i in range(60):
        f = repo / "data" / f"d{i % 4}" / f"f{i}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"row {i}\n" * (i + 1))
    age(repo / "model.bin", repo / "data")
    gitml(repo, "add", "model.bin", "data")
    git(repo, "commit", "-q", "-m", "data")
    age(repo / "model.bin.gitml", repo / "data.gitml", repo / ".git" / "index")


def imported(stderr: str) -> set[str]:
    """The modules a run imported, from ``PYTHONPROFILEIMPORTTIME``'s report."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def status(repo: Path, **env: str) -> tuple[str, bool]:
    """(stdout, whether the quick path answered: it imports none of the repository code)."""
    proc = gitml(repo, "status", env={"PYTHONPROFILEIMPORTTIME": "1", **env})
    return proc.stdout.strip(), "gitml.repo" not in imported(proc.stderr)


def snapshot(repo: Path) -> Path:
    return repo / ".git" / "ml" / "status-snapshot.bin"


@pytest.fixture
def watcher(repo: Path) -> Iterator[Path]:
    if not inotify.available():
        pytest.skip("no inotify")
    yield repo
    info = gitml(repo, "watch", "--json", check=False).stdout
    gitml(repo, "watch", "stop", check=False)
    pid = json.loads(info or "{}").get("pid")
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_quick_status_proves_clean_and_steps_aside_for_any_change(repo: Path) -> None:
    tracked_repo(repo)
    assert status(repo) == ("2 artifacts, all clean", False)  # full: writes the snapshot
    assert snapshot(repo).exists()
    assert status(repo) == ("2 artifacts, all clean", True)
    # the quick path's whole cost is Python's start and a few stats: nothing heavy, not even
    # `re` (10 ms here), which an entry-point wrapper would import before gitml
    quick = imported(gitml(repo, "status", env={"PYTHONPROFILEIMPORTTIME": "1"}).stderr)
    assert "gitml.artifacts.quick_status" in quick
    assert not quick & {"gitml.repo", "pygit2", "sqlite3", "rich", "argparse"}, quick

    # same size, mtime put back: only ctime tells
    (repo / "model.bin").write_bytes(b"M" * 5000)
    os.utime(repo / "model.bin", ns=(OLD_NS, OLD_NS))
    out, quick = status(repo)
    assert "modified: model.bin" in out and not quick
    assert not snapshot(repo).exists()
    (repo / "model.bin").write_bytes(b"m" * 5000)
    age(repo / "model.bin")
    assert status(repo)[0] == "2 artifacts, all clean"
    assert status(repo) == ("2 artifacts, all clean", True)

    # a file added to the folder (no watcher: the fingerprint sees it)
    (repo / "data" / "d1" / "new.txt").write_text("new")
    out, quick = status(repo)
    assert "modified: data (1 added)" in out and not quick
    (repo / "data" / "d1" / "new.txt").unlink()
    age(repo / "data")
    assert status(repo)[0] == "2 artifacts, all clean"

    # the index changes (a pointer unstaged): the tracked set is read again
    git(repo, "rm", "-q", "--cached", "model.bin.gitml")
    assert status(repo) == ("1 artifacts, all clean", False)
    git(repo, "reset", "-q")
    age(repo / ".git" / "index")
    assert status(repo)[0] == "2 artifacts, all clean"
    assert status(repo) == ("2 artifacts, all clean", True)

    # gitml's committed folder gone: the full status says gitml is not set up
    os.rename(repo / ".gitml", repo / "gitml-away")
    proc = gitml(repo, "status", check=False)
    assert proc.returncode != 0 and "not set up" in proc.stderr
    os.rename(repo / "gitml-away", repo / ".gitml")

    # gc forgets the completeness marks the snapshot relies on, and the snapshot with them
    gitml(repo, "gc")
    assert not snapshot(repo).exists()


def test_no_snapshot_from_a_racy_stat(repo: Path) -> None:
    tracked_repo(repo)
    (repo / "model.bin").write_bytes(b"x" * 5000)  # changed in this very clock tick
    gitml(repo, "add", "model.bin")
    git(repo, "commit", "-q", "-m", "x")
    status(repo)
    assert not snapshot(repo).exists()  # the next status looks again


def test_watcher_sees_every_change_made_before_the_question(watcher: Path) -> None:
    repo = watcher
    tracked_repo(repo)
    gitml(repo, "watch", "start")
    assert status(repo) == ("2 artifacts, all clean", False)  # the first question starts the watch
    info = json.loads(gitml(repo, "watch", "--json").stdout)
    assert info["roots"][str(repo / "data")]["watches"] == 5  # data and its 4 sub-folders
    assert status(repo) == ("2 artifacts, all clean", True)

    target = repo / "data" / "d2" / "f10.txt"
    original = target.read_bytes()
    for i in range(8):  # changed, then asked at once: the cookie handshake orders them
        target.write_bytes(original[:-1] + bytes([65 + i]))
        os.utime(target, ns=(OLD_NS, OLD_NS))
        out, quick = status(repo)
        assert "modified: data (1 modified)" in out and not quick, (i, out)
        target.write_bytes(original)
        age(target)
        assert status(repo)[0] == "2 artifacts, all clean"

    # a new sub-folder is watched too, and a file in it shows
    (repo / "data" / "new").mkdir()
    assert status(repo)[0] == "2 artifacts, all clean"  # an empty folder is no content
    (repo / "data" / "new" / "g.txt").write_text("g")
    assert "modified: data (1 added)" in status(repo)[0]
    (repo / "data" / "new" / "g.txt").unlink()
    (repo / "data" / "new").rmdir()
    age(repo / "data")
    assert status(repo)[0] == "2 artifacts, all clean"
    assert status(repo) == ("2 artifacts, all clean", True)

    # the folder swapped for another behind the watch's back (its parent renamed)
    (repo / "outer").mkdir()
    os.rename(repo / "data", repo / "outer" / "data")
    os.rename(repo / "outer", repo / "outer2")
    shutil.copytree(repo / "outer2" / "data", repo / "data")
    (repo / "data" / "d0" / "f0.txt").write_text("changed in the copy\n")
    age(repo / "data")
    out, quick = status(repo, GITML_NO_QUICK_STATUS="1")
    assert "modified: data (1 modified)" in out
    shutil.rmtree(repo / "data")
    os.rename(repo / "outer2" / "data", repo / "data")
    assert status(repo)[0] == "2 artifacts, all clean"


def watching(repo: Path) -> int:
    """Track the data, start the watcher, let it watch the folder; its pid."""
    tracked_repo(repo)
    gitml(repo, "watch", "start")
    status(repo)
    return int(json.loads(gitml(repo, "watch", "--json").stdout)["pid"])


def wait_gone(pid: int) -> bool:
    for _ in range(200):
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.02)
    return False


def test_a_dead_watcher_costs_only_the_walk(watcher: Path) -> None:
    repo = watcher
    pid = watching(repo)
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    assert (repo / ".git" / "ml" / "watch.sock").exists()  # stale: nobody answers it
    (repo / "data" / "d3" / "f3.txt").write_text("edited while nobody watched\n")
    age(repo / "data")
    assert "modified: data (1 modified)" in status(repo)[0]
    assert "no watcher is running" in gitml(repo, "watch").stdout
    gitml(repo, "watch", "start")  # over the stale socket
    assert "modified: data (1 modified)" in status(repo)[0]
    assert "1 folders" in gitml(repo, "watch").stdout
    assert "watcher stopped" in gitml(repo, "watch", "stop").stdout
    assert "no watcher was running" in gitml(repo, "watch", "stop").stdout


def test_a_watcher_that_answers_nonsense_is_not_believed_and_can_be_stopped(watcher: Path) -> None:
    """Say a watcher of another gitml version, whose answers this one cannot read."""
    import socket
    import threading

    repo = watcher
    pid = watching(repo)
    sock_path = repo / ".git" / "ml" / "watch.sock"
    sock_path.unlink()
    impostor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    impostor.bind(str(sock_path))
    impostor.listen(8)

    def babble() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = impostor.accept()
                with conn:
                    conn.recv(1 << 16)
                    conn.sendall(b'{"roots": "all unchanged"}\n')

    threading.Thread(target=babble, daemon=True).start()
    try:
        (repo / "data" / "d1" / "f1.txt").write_text("edited\n")
        age(repo / "data")
        assert "modified: data (1 modified)" in status(repo)[0]
        err = gitml(repo, "watch", "start", check=False)
        assert err.returncode == 1 and f"(pid {pid}" in err.stderr and "git ml watch stop" in err.stderr
        assert "watcher stopped" in gitml(repo, "watch", "stop").stdout
        assert wait_gone(pid)
    finally:
        impostor.close()


def test_without_a_watcher_git_stats_the_files_against_a_private_index(repo: Path) -> None:
    """The quick path hands the folder's files to `git diff-files` over gitml's own index,
    whatever the user's Git settings, and watches the subfolders' mtimes for additions."""
    tracked_repo(repo)
    git(repo, "config", "core.trustctime", "false")  # would hide a same-size edit with mtime put back
    git(repo, "config", "core.splitIndex", "true")  # would scatter shared indexes into .git
    status(repo)
    assert status(repo) == ("2 artifacts, all clean", True)
    assert (repo / ".git/ml/status-index").exists()
    assert not list((repo / ".git").glob("sharedindex.*"))
    assert "data/d1/f1.txt" not in git(repo, "ls-files").stdout  # Git's own index untouched
    # a full status over an unchanged folder keeps the private index (no re-listing)
    held = (repo / ".git/ml/status-index").stat()
    assert status(repo, GITML_NO_QUICK_STATUS="1") == ("2 artifacts, all clean", False)
    again = (repo / ".git/ml/status-index").stat()
    assert (again.st_ino, again.st_mtime_ns) == (held.st_ino, held.st_mtime_ns)
    assert status(repo) == ("2 artifacts, all clean", True)

    # Git compares whole seconds of ctime (Debian builds it without USE_NSEC): an edit that
    # puts mtime back within the second the index was written would pass, as it would in
    # Git's own index. Edits come later than that in life; here, wait for the next second.
    index_s = (repo / ".git/ml/status-index").stat().st_mtime_ns // 10**9
    while time.time_ns() // 10**9 <= index_s:
        time.sleep(0.05)
    f = repo / "data" / "d1" / "f1.txt"
    original = f.read_bytes()
    f.write_bytes(original.upper())  # same size; mtime put back: only ctime moved
    os.utime(f, ns=(OLD_NS, OLD_NS))
    out, quick = status(repo)
    assert "modified: data (1 modified)" in out and not quick
    f.write_bytes(original)
    age(repo / "data")
    assert status(repo)[0] == "2 artifacts, all clean"
    assert status(repo) == ("2 artifacts, all clean", True)

    f.unlink()  # a file gone, its folder's mtime put back: Git sees the entry missing
    os.utime(f.parent, ns=(OLD_NS, OLD_NS))
    assert "modified: data (1 deleted)" in status(repo)[0]
    f.write_bytes(original)
    age(repo / "data")
    assert status(repo)[0] == "2 artifacts, all clean"

    (repo / "data" / "d2" / "extra.txt").write_text("new")  # the folder's mtime moves
    out, quick = status(repo)
    assert "modified: data (1 added)" in out and not quick


def test_a_damaged_snapshot_or_private_index_means_the_full_status(repo: Path) -> None:
    """Whatever is in the snapshot or the private index, status never trusts it blindly:
    damage sends it down the full path (which sees the real state) and writes them anew."""
    import marshal

    tracked_repo(repo)
    status(repo)
    good = snapshot(repo).read_bytes()
    damaged = [good[: len(good) // 2], b"\x00garbage", marshal.dumps([1, 2]),
               marshal.dumps({"v": "x"}), good.replace(b"model.bin", b"model.biN")]
    for bad in damaged:
        snapshot(repo).write_bytes(bad)
        out, quick = status(repo)
        assert (out, quick) == ("2 artifacts, all clean", False), bad[:20]
        assert status(repo) == ("2 artifacts, all clean", True)  # written anew

    (repo / "model.bin").write_bytes(b"M" * 5000)  # a real change under a damaged snapshot
    snapshot(repo).write_bytes(b"\x00garbage")
    assert "modified: model.bin" in status(repo)[0]
    (repo / "model.bin").write_bytes(b"m" * 5000)
    age(repo / "model.bin")

    assert status(repo)[0] == "2 artifacts, all clean"
    (repo / ".git/ml/status-index").write_bytes(b"DIRC not an index")
    proc = gitml(repo, "status", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.stdout.strip() == "2 artifacts, all clean" and "gitml.repo" in imported(proc.stderr)
    assert "Traceback" not in proc.stderr
