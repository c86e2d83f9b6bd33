"""Push to a folder remote, clone, pull; hooks that upload and materialise; the Python API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.support.remote import folder_remote_objects, pack_location


@pytest.fixture
def published(repo: Path, tmp_path: Path) -> dict[str, object]:
    """A repo with artifacts, a bare Git remote and a folder gitml remote, all pushed."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    store = tmp_path / "mlstore"
    big = os.urandom(12 * 1024 * 1024)
    (repo / "data").mkdir()
    (repo / "data/big.bin").write_bytes(big)
    (repo / "data/set").mkdir()
    for i in range(30):
        (repo / f"data/set/f{i}.txt").write_text(f"row {i}\n" * (i + 1))
    gitml(repo, "add", "data/big.bin", "data/set")
    gitml(repo, "remote", "add", "origin", str(store), "--default")
    gitml(repo, "install")
    git(repo, "commit", "-q", "-m", "data v1")
    git(repo, "remote", "add", "origin", f"file://{bare}")
    push = git(repo, "push", "-q", "origin", "main")  # the pre-push hook uploads
    assert "uploaded" in push.stderr
    return {"repo": repo, "bare": bare, "store": store, "big": big}


def test_clone_install_pull_gives_exact_bytes(published: dict[str, object], tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", f"file://{published['bare']}", str(clone))
    assert not (clone / "data/big.bin").exists()
    gitml(clone, "install")
    out = json.loads(gitml(clone, "pull", "--json").stdout)
    assert out["fetch"]["transferred"] > 0
    assert (clone / "data/big.bin").read_bytes() == published["big"]
    assert (clone / "data/set/f29.txt").read_text() == "row 29\n" * 30
    assert json.loads(gitml(clone, "fsck", "--json").stdout)["ok"] is True
    # a second pull transfers nothing
    again = json.loads(gitml(clone, "pull", "--json").stdout)
    assert again["fetch"]["transferred"] == 0


def test_noop_push_is_cheap_and_status_remote(published: dict[str, object]) -> None:
    repo = published["repo"]
    assert isinstance(repo, Path)
    out = json.loads(gitml(repo, "push", "--json").stdout)
    assert out["transferred"] == 0 and out["already_there"] > 0
    (repo / "new.bin").write_bytes(b"not pushed yet")
    gitml(repo, "add", "new.bin")
    st = json.loads(gitml(repo, "status", "--remote", "--json").stdout)
    assert st["not_on_remote"] == ["new.bin"]
    gitml(repo, "push")
    st = json.loads(gitml(repo, "status", "--remote", "--json").stdout)
    assert st["not_on_remote"] == []


def test_damaged_remote_object_is_refused(published: dict[str, object], tmp_path: Path) -> None:
    store = published["store"]
    assert isinstance(store, Path)
    objects = folder_remote_objects(store)
    victim = sorted(k for k in objects if k.startswith("objects/"))[0]
    listed = [p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()]
    where, entry = pack_location(listed, lambda k: (store / k).read_bytes(), victim)
    pack = store / where
    data = bytearray(pack.read_bytes())
    data[entry.offset: entry.offset + 7] = b"bit rot"[: entry.size]
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    clone = tmp_path / "clone2"
    git(tmp_path, "clone", "-q", f"file://{published['bare']}", str(clone))
    proc = gitml(clone, "pull", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is damaged" in proc.stderr and "remote 'origin'" in proc.stderr
    assert victim in proc.stderr
    assert not (clone / ".git/ml/store" / victim).exists()  # nothing bad was kept


def test_python_api_reads_any_revision(published: dict[str, object], tmp_path: Path) -> None:
    repo = published["repo"]
    assert isinstance(repo, Path)
    (repo / "data/set/f0.txt").write_text("changed\n")
    gitml(repo, "add", "data/set")
    git(repo, "commit", "-q", "-m", "v2")
    clone = tmp_path / "clone3"
    git(repo, "push", "-q", "origin", "main")
    git(tmp_path, "clone", "-q", f"file://{published['bare']}", str(clone))
    code = (
        "import gitml, sys\n"
        "assert gitml.read_bytes('data/set/f0.txt', rev='HEAD~1') == b'row 0\\n'\n"
        "assert gitml.read_bytes('data/set/f0.txt', rev='HEAD') == b'changed\\n'\n"
        "with gitml.open('data/big.bin', rev='HEAD~1') as f: sys.stdout.write(str(len(f.read())))\n"
    )
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], cwd=clone, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == str(12 * 1024 * 1024)


def test_gc_keeps_reachable_and_stash(repo: Path) -> None:
    (repo / "a.bin").write_bytes(b"version 1")
    gitml(repo, "add", "a.bin")
    git(repo, "commit", "-q", "-m", "a1")
    (repo / "a.bin").write_bytes(b"version 2 (stashed)")
    gitml(repo, "add", "a.bin")
    git(repo, "stash", "-q")
    (repo / "a.bin").write_bytes(b"version 3 (dropped)")
    gitml(repo, "add", "a.bin")
    git(repo, "checkout", "-q", "HEAD", "--", "a.bin.gitml")  # drop v3's pointer
    dry = json.loads(gitml(repo, "gc", "--dry-run", "--json").stdout)
    assert dry["unreachable_objects"] == 1 and dry["deleted"] is False
    gitml(repo, "gc")
    api = "import gitml; print(gitml.read_bytes('a.bin', rev='{}').decode())"
    import subprocess
    import sys

    for rev, want in (("HEAD", "version 1"), ("stash@{0}", "version 2 (stashed)")):
        out = subprocess.run([sys.executable, "-c", api.format(rev)], cwd=repo,
                             capture_output=True, text=True)
        assert out.stdout.strip() == want, out.stderr


def test_fsck_reports_damage(repo: Path) -> None:
    (repo / "a.bin").write_bytes(b"precious")
    gitml(repo, "add", "a.bin")
    obj = next(p for p in (repo / ".git/ml/store/objects").rglob("*") if p.is_file())
    obj.chmod(0o644)
    obj.write_bytes(b"damaged!")
    proc = gitml(repo, "fsck", "--json", check=False)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False and len(report["damaged"]) == 1


def test_many_files_pull_and_lost_remote_objects(repo: Path, tmp_path: Path) -> None:
    """A folder of more files than one checkout batch (threads) round-trips; a remote that lost
    objects behind our back is repaired by `push --verify-remote`."""
    store = tmp_path / "store"
    d = repo / "many"
    d.mkdir()
    for i in range(300):
        (d / f"f{i:03}.txt").write_text(f"file {i}\n")
    gitml(repo, "add", "many")
    gitml(repo, "remote", "add", "origin", str(store), "--default")
    gitml(repo, "push")
    import shutil

    shutil.rmtree(d)
    gitml(repo, "checkout")
    assert sorted(p.name for p in d.iterdir()) == [f"f{i:03}.txt" for i in range(300)]
    assert (d / "f123.txt").read_text() == "file 123\n"
    assert json.loads(gitml(repo, "status", "--json").stdout)["artifacts"][0]["state"] == "clean"
    # someone deletes a pack on the remote: the known index still believes it is there
    held = folder_remote_objects(store)
    assert len(held) == 301  # 300 files and the tree
    packs = sorted((store / "packs").glob("*.pack"))
    assert packs and len(list(store.rglob("*"))) < 20  # packed: a few files, not 301
    for p in (packs[0], packs[0].with_suffix(".idx")):
        p.chmod(0o644)
        p.unlink()
    lost = set(held) - set(folder_remote_objects(store))
    assert lost
    assert json.loads(gitml(repo, "push", "--json").stdout)["transferred"] == 0
    fixed = json.loads(gitml(repo, "push", "--verify-remote", "--json").stdout)
    assert fixed["transferred"] == len(lost)
    assert folder_remote_objects(store) == held
