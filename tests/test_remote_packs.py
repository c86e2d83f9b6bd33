"""Packs on a folder remote, end to end with real Git: remote gc deletes dead packs and
rewrites mostly dead ones, a clone whose pack index went stale still pulls, and a pull of
part of a pack reads only what it needs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.conftest import git, gitml
from tests.support.remote import folder_remote_objects
from tests.support.store import has_key, read_key

FILE = 1000  # bytes per file; with pack_mib 0.0095 (9,961 bytes) a pack holds 9 files


def write_files(d: Path, names: range, tag: str) -> None:
    d.mkdir(exist_ok=True)
    for i in names:
        (d / f"f{i:02d}.bin").write_bytes(tag.encode() + os.urandom(FILE - len(tag)))


def test_remote_gc_deletes_and_rewrites_packs(repo: Path, tmp_path: Path) -> None:
    store = tmp_path / "mlstore"
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", f"file://{bare}")
    gitml(repo, "remote", "add", "origin", str(store), "--default")
    gitml(repo, "remote", "modify", "origin", "pack_mib", "0.0095")
    d = repo / "d"
    write_files(d, range(40), "v1")
    gitml(repo, "add", "d")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    first = json.loads(gitml(repo, "push", "--json").stdout)
    assert first["transferred"] == 41  # 40 files and the tree
    v1_packs = sorted(p.stem for p in (store / "packs").glob("*.pack"))
    assert len(v1_packs) == 5  # 9 + 9 + 9 + 9 + 4 files

    # v2 on a branch of its own; v1 becomes unreachable once main is gone
    git(repo, "checkout", "-q", "--orphan", "v2")
    write_files(d, range(32), "v2")  # f00..f31 change: 3 packs all dead, the 4th 5/9 dead
    (repo / "other.bin").write_bytes(b"another artifact")
    gitml(repo, "add", "d", "other.bin")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v2")
    gitml(repo, "push")
    git(repo, "push", "-q", "origin", "v2")
    live = folder_remote_objects(store)

    # a clone that learnt the pack index (pulling other.bin) before the gc rewrites packs
    early = tmp_path / "early"
    git(tmp_path, "clone", "-q", "-b", "v2", f"file://{bare}", str(early))
    gitml(early, "pull", "other.bin")
    assert (early / "other.bin").read_bytes() == b"another artifact"
    assert not (early / "d").exists()

    git(repo, "branch", "-q", "-D", "main")
    recent = json.loads(gitml(repo, "gc", "--remote", "--force", "--json").stdout)
    assert recent["unreachable_objects"] == 0 and recent["kept_recent"] == 33  # grace period
    dry = json.loads(gitml(repo, "gc", "--remote", "--grace-days", "0", "--json").stdout)
    assert dry["deleted"] is False
    assert (dry["packs_deleted"], dry["packs_repacked"]) == (3, 1)
    assert dry["unreachable_objects"] == 33  # 32 old files and the old tree
    # leftovers of interrupted work: a pack whose index never arrived, an index whose pack
    # is gone; both go too
    orphan, dangling = store / "packs" / f"{'a' * 32}.pack", store / "packs" / f"{'b' * 32}.idx"
    orphan.write_bytes(b"half a push")
    dangling.write_bytes(b"gitml-pack-index 1\n")
    out = gitml(repo, "gc", "--remote", "--grace-days", "0", "--force").stdout
    assert not orphan.exists() and not dangling.exists()
    assert "rewrote 1 mostly unreachable pack(s)" in out and "deleted 3 with none" in out, out
    left = set(p.stem for p in (store / "packs").glob("*.pack"))
    assert len(set(v1_packs) & left) == 1  # only the all-live pack of f36..f39 stayed
    # the remote now holds exactly what v2 needs: nothing lost, nothing dead
    after = folder_remote_objects(store)
    needed = {k for k in live if has_key(repo, k)}
    reachable = {k: v for k, v in live.items() if k in after}
    assert after == reachable and len(after) == 40 + 1 + 1  # files, tree, other.bin
    assert needed >= set(after)

    # the early clone's cached indexes name packs that are gone: they are dropped, it pulls
    gitml(early, "pull")
    for i in range(40):
        assert (early / f"d/f{i:02d}.bin").read_bytes() == (d / f"f{i:02d}.bin").read_bytes()
    # and a fresh clone pulls everything from the rewritten remote
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", "-b", "v2", f"file://{bare}", str(fresh))
    gitml(fresh, "pull")
    assert json.loads(gitml(fresh, "fsck", "--json").stdout)["ok"] is True


def test_partial_pull_reads_only_what_it_needs(repo: Path, tmp_path: Path) -> None:
    """Two folders in one pack; pulling one of them downloads about its own size."""
    store = tmp_path / "mlstore"
    gitml(repo, "remote", "add", "origin", str(store), "--default")
    for name in ("a", "b"):
        write_files(repo / name, range(20), name)
    gitml(repo, "add", "a", "b")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two folders")
    gitml(repo, "push")
    sizes = sorted(p.stat().st_size for p in (store / "packs").glob("*.pack"))
    assert len(sizes) == 2 and sizes[-1] == 40 * FILE  # all files in one pack; the trees in another
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    shutil.rmtree(repo / ".git" / "ml" / "store")  # the remote is the only copy
    out = json.loads(gitml(clone, "pull", "a", "--json").stdout)
    assert out["fetch"]["transferred"] == 21
    assert 20 * FILE <= out["fetch"]["bytes"] < 20 * FILE + 2048  # not the whole 40 KB pack
    assert not (clone / "b").exists()
    assert sorted(p.name for p in (clone / "a").iterdir()) == [f"f{i:02d}.bin" for i in range(20)]


def test_concurrent_pushes_and_a_pull_agree(repo: Path, tmp_path: Path) -> None:
    """Three pushes of the same artifacts at once (packs of ~10 files) leave a remote from
    which a fresh clone pulls exact bytes; nothing half-written is ever listed."""
    import subprocess

    store = tmp_path / "mlstore"
    gitml(repo, "remote", "add", "origin", str(store), "--default")
    gitml(repo, "remote", "modify", "origin", "pack_mib", "0.01")
    write_files(repo / "d", range(120), "c")
    gitml(repo, "add", "d")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    procs = [subprocess.Popen(["git-ml", "push", "-j", "4", "-q"], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    objects = folder_remote_objects(store)
    assert len(objects) == 121 and all(read_key(repo, k) == v for k, v in objects.items())
    assert not [p for p in store.rglob("*") if p.name.endswith(".incomplete")]
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    gitml(clone, "pull")
    for i in range(120):
        assert (clone / f"d/f{i:02d}.bin").read_bytes() == (repo / f"d/f{i:02d}.bin").read_bytes()


def test_bad_remote_option_values_are_refused_at_once(repo: Path, tmp_path: Path) -> None:
    gitml(repo, "remote", "add", "origin", str(tmp_path / "store"), "--default")
    for option, value in (("pack_mib", "lots"), ("pack_mib", "-1")):
        proc = gitml(repo, "remote", "modify", "origin", option, value, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "pack_mib" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    gitml(repo, "remote", "add", "s3", "s3://bucket/p")
    proc = gitml(repo, "remote", "modify", "s3", "jobs", "zero", check=False)
    assert proc.returncode == 1 and "jobs" in proc.stderr
    assert "pack_mib" not in (repo / ".gitml/config.toml").read_text()
    gitml(repo, "remote", "modify", "origin", "pack_mib", "4")
    assert 'pack_mib = "4"' in (repo / ".gitml/config.toml").read_text()


def test_push_of_an_object_lost_from_the_local_store_is_a_clear_error(repo: Path, tmp_path: Path) -> None:
    write_files(repo / "d", range(5), "x")
    gitml(repo, "add", "d")
    gitml(repo, "remote", "add", "origin", str(tmp_path / "store"), "--default")
    lost = sorted((repo / ".git/ml/store/objects").rglob("*"))
    victim = next(p for p in lost if p.is_file() and p.stat().st_size == FILE)
    victim.chmod(0o644)
    victim.unlink()
    proc = gitml(repo, "push", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "missing from the local store" in proc.stderr and "git ml fsck" in proc.stderr
    assert not (tmp_path / "store" / "packs").exists()  # nothing half-pushed
