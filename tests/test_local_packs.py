"""Packs in the local store: a folder of small files is a few store files, read back
verified, repaired, gc'd and pulled as packs, and safe against killed writers."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

from tests.conftest import git, gitml
from tests.support.store import (
    flip_object_byte,
    has_key,
    open_store,
    pack_files,
    pointer_oid,
    store_root,
    tree_member_oid,
)

FILES = 120


def make_folder(root: Path, n: int = FILES, seed: int = 7, size: tuple[int, int] = (200, 6000)) -> dict[str, bytes]:
    rnd = random.Random(seed)
    out = {}
    for i in range(n):
        rel = f"sub{i % 4}/f{i:03d}.bin"
        data = rnd.randbytes(rnd.randint(*size))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        out[rel] = data
    return out


def published_folder(repo: Path, remote: Path, n: int = FILES) -> dict[str, bytes]:
    """A folder ``d`` of ``n`` small files added, committed and pushed to the folder remote."""
    data = make_folder(repo / "d", n=n)
    gitml(repo, "add", "d")
    gitml(repo, "remote", "add", "origin", str(remote), "--default")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    gitml(repo, "push")
    return data


def store_files(repo: Path) -> list[Path]:
    root = store_root(repo)
    return [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_checkout_restores(repo: Path, made: dict[str, dict[str, bytes]]) -> None:
    """Deletes each folder in ``made`` and checks ``git ml checkout`` writes it back byte for byte."""
    for name in made:
        shutil.rmtree(repo / name)
    assert gitml(repo, "checkout").returncode == 0
    for name, files in made.items():
        assert folder_bytes(repo / name) == files, name


def test_a_folder_of_small_files_is_one_pack_and_reads_back(repo: Path) -> None:
    data = make_folder(repo / "d")
    gitml(repo, "add", "d")
    packs = pack_files(repo)
    assert len(packs) == 1
    # one pack, its index and the folder's tree: not one file per object
    assert len(store_files(repo)) == 3, store_files(repo)
    assert json.loads(gitml(repo, "status", "--json").stdout)["artifacts"][0]["state"] == "clean"
    # a checkout of the whole folder writes it from the pack, byte for byte
    shutil.rmtree(repo / "d")
    gitml(repo, "checkout", "d")
    assert folder_bytes(repo / "d") == data
    assert json.loads(gitml(repo, "status", "--json").stdout)["artifacts"][0]["state"] == "clean"
    # and one file restored into a folder that exists (temp file + rename)
    (repo / "d/sub1/f001.bin").unlink()
    gitml(repo, "checkout", "d")
    assert (repo / "d/sub1/f001.bin").read_bytes() == data["sub1/f001.bin"]
    assert not [p for p in repo.rglob("*") if ".tmp-gitml-" in p.name]
    # the library reads a file inside the packed folder too
    proc = subprocess.run(["python", "-c", "import gitml, sys; sys.stdout.buffer.write("
                           "gitml.open('d/sub2/f002.bin').read())"],
                          cwd=repo, capture_output=True, check=True)
    assert proc.stdout == data["sub2/f002.bin"]


def test_a_damaged_packed_object_is_found_refused_and_repaired(repo: Path, tmp_path: Path) -> None:
    data = published_folder(repo, tmp_path / "remote")
    victim = tree_member_oid(repo, pointer_oid(repo, "d"), "sub3/f007.bin")
    flip_object_byte(repo, victim, 10)
    fsck = gitml(repo, "fsck", check=False)
    assert fsck.returncode != 0 and victim[2:] in fsck.stdout + fsck.stderr
    # a checkout never writes the damaged bytes: the file is left out and named
    shutil.rmtree(repo / "d")
    out = gitml(repo, "checkout", "d", check=False)
    assert out.returncode != 0 and "damaged" in out.stderr
    assert not (repo / "d/sub3/f007.bin").exists()
    # repair downloads a good copy: the pack is rewritten without the bad object
    old_packs = pack_files(repo)
    gitml(repo, "fetch", "--repair")
    assert pack_files(repo) != old_packs
    assert gitml(repo, "fsck").returncode == 0
    shutil.rmtree(repo / "d", ignore_errors=True)
    gitml(repo, "checkout", "d")
    assert folder_bytes(repo / "d") == data


def test_gc_rewrites_packs_without_unreachable_objects(repo: Path) -> None:
    make_folder(repo / "d", seed=1)
    gitml(repo, "add", "d")  # never committed: unreachable once replaced
    first = pack_files(repo)
    data = make_folder(repo / "d", seed=2)  # every file changes
    keep = make_folder(repo / "e", n=40, seed=3)
    gitml(repo, "add", "d", "e")
    git(repo, "commit", "-q", "-m", "v2")
    assert len(pack_files(repo)) == 3
    before = sum(p.stat().st_size for p in pack_files(repo))
    out = json.loads(gitml(repo, "gc", "--json").stdout)
    assert out["unreachable_objects"] >= FILES  # the first folder's files (and its tree)
    assert not set(first) & set(pack_files(repo))  # its pack is gone
    after = sum(p.stat().st_size for p in pack_files(repo))
    assert after < before - sum(len(v) for v in data.values()) // 2
    assert gitml(repo, "fsck").returncode == 0
    shutil.rmtree(repo / "d")
    shutil.rmtree(repo / "e")
    gitml(repo, "checkout")
    assert folder_bytes(repo / "d") == data and folder_bytes(repo / "e") == keep


def test_a_pack_without_its_index_is_never_read_and_gc_removes_it(repo: Path) -> None:
    make_folder(repo / "d")
    gitml(repo, "add", "d")
    git(repo, "commit", "-q", "-m", "d")
    (pack,) = pack_files(repo)
    orphan = pack.with_name("0" * 32 + ".pack")
    orphan.write_bytes(pack.read_bytes())  # as a writer killed between its two renames leaves it
    store = open_store(repo)
    store.packs.refresh()
    assert orphan.stem not in store.packs.by_pack
    old = 2 * 3600
    os.utime(orphan, (orphan.stat().st_atime - old, orphan.stat().st_mtime - old))
    gitml(repo, "gc")
    assert not orphan.exists() and pack.exists()


def test_a_killed_checkout_leaves_no_half_folder(repo: Path) -> None:
    data = make_folder(repo / "d")
    gitml(repo, "add", "d")
    shutil.rmtree(repo / "d")
    # what a checkout killed while writing the new folder leaves: a temp sibling of a gone pid
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = repo / f".tmp-gitml-d.{dead.pid}.1.incomplete"
    (leftover / "sub0").mkdir(parents=True)
    (leftover / "sub0/f000.bin").write_bytes(b"half")
    assert json.loads(gitml(repo, "status", "--json").stdout)["artifacts"][0]["state"] == "missing"
    gitml(repo, "checkout")
    assert not leftover.exists()
    assert folder_bytes(repo / "d") == data


def test_concurrent_adds_write_separate_intact_packs(repo: Path) -> None:
    made = {name: make_folder(repo / name, n=300, seed=i) for i, name in enumerate(("a", "b", "c"))}
    procs = [subprocess.Popen(["git-ml", "add", name], cwd=repo, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for name in made]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert len(pack_files(repo)) == 3
    assert gitml(repo, "fsck").returncode == 0
    assert_checkout_restores(repo, made)


def test_pull_lands_as_packs_and_a_packed_store_pushes(repo: Path, tmp_path: Path) -> None:
    data = published_folder(repo, tmp_path / "remote", n=300)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    gitml(clone, "pull")
    assert folder_bytes(clone / "d") == data
    assert len(store_files(clone)) < 10  # a handful of packs and the tree, not 301 files
    # the clone's packed objects go up again to a second remote, whole and verified
    gitml(clone, "remote", "add", "second", str(tmp_path / "second"))
    gitml(clone, "push", "-r", "second")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(clone), str(other))
    gitml(other, "remote", "add", "second", str(tmp_path / "second"), "--default")
    gitml(other, "pull")
    assert folder_bytes(other / "d") == data


def test_packs_written_by_another_process_are_seen(repo: Path) -> None:
    store = open_store(repo)
    make_folder(repo / "d")
    assert not has_key(repo, "objects/00/" + "0" * 30)
    store.packs.refresh()
    assert not store.packs.entries
    gitml(repo, "add", "d")  # another process writes a pack
    member = tree_member_oid(repo, pointer_oid(repo, "d"), "sub0/f000.bin")
    assert store.has_object(member)  # found without being told to look again
    assert store.read_verified(member) == (repo / "d/sub0/f000.bin").read_bytes()


def test_pull_from_a_folder_remote_takes_its_packs_whole_and_verified(repo: Path, tmp_path: Path) -> None:
    data = published_folder(repo, tmp_path / "remote", n=300)
    remote_packs = sorted((tmp_path / "remote/packs").glob("*.pack"))
    assert remote_packs
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    gitml(clone, "pull")
    assert folder_bytes(clone / "d") == data
    local = {p.name: p for p in pack_files(clone)}
    # the same pack files, linked (no bytes copied): git clone of a local path does the same
    for rp in remote_packs:
        assert rp.name in local and os.path.samefile(rp, local[rp.name])

    # a remote pack with one damaged object is not taken whole: what is wanted is read by
    # ranges, and a damaged wanted object is an error naming it, with nothing kept
    victim = remote_packs[0]
    victim.chmod(0o644)
    with open(victim, "r+b") as f:
        f.seek(5)
        b = f.read(1)
        f.seek(5)
        f.write(bytes([b[0] ^ 0xFF]))
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    proc = gitml(other, "pull", check=False)
    assert proc.returncode != 0 and "damaged" in proc.stderr and "Traceback" not in proc.stderr
    assert not any(os.path.samefile(victim, p) for p in pack_files(other))
    kept = json.loads(gitml(other, "fsck", "--json", check=False).stdout)
    assert not kept["damaged"] and kept["missing"] == ["d"]  # what was kept is whole


def test_gc_merges_many_small_packs(repo: Path) -> None:
    made = {}
    for i in range(18):  # 18 adds, 18 packs
        made[f"p{i}"] = make_folder(repo / f"p{i}", n=10, seed=100 + i)
        gitml(repo, "add", f"p{i}")
    git(repo, "commit", "-q", "-m", "many")
    assert len(pack_files(repo)) == 18
    gitml(repo, "gc")
    assert len(pack_files(repo)) == 1
    assert gitml(repo, "fsck").returncode == 0
    assert_checkout_restores(repo, made)


def test_a_damaged_pack_index_hides_its_objects_until_a_fetch_brings_them_back(
        repo: Path, tmp_path: Path) -> None:
    data = published_folder(repo, tmp_path / "remote")
    (pack,) = pack_files(repo)
    idx = pack.with_suffix(".idx")
    idx.chmod(0o644)
    idx.write_bytes(idx.read_bytes()[:-40])  # cut short: the index no longer parses
    fsck = gitml(repo, "fsck", "--json", check=False)
    assert fsck.returncode != 0
    assert f"packs/{pack.stem}.idx" in json.loads(fsck.stdout)["damaged"]
    shutil.rmtree(repo / "d")
    out = gitml(repo, "checkout", "d", check=False)  # nothing read from a pack it cannot trust
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "fetch --repair" in out.stderr
    gitml(repo, "fetch", "--repair")
    gitml(repo, "checkout", "d")
    assert folder_bytes(repo / "d") == data
    assert gitml(repo, "fsck").returncode == 0


def test_pack_writer_blocks_small_objects_and_keeps_every_byte(tmp_path: Path) -> None:
    """Small objects leave in ~1 MiB writes, large ones at once, packs close at their limit:
    whatever the mix, each object reads back verified at its own offset."""
    from gitml.store import local_packs
    from gitml.store.ids import hash_bytes
    from gitml.store.keys import OBJECTS, key_for
    from gitml.store.objects import ObjectStore

    rnd = random.Random(5)
    sizes = [rnd.randint(1, 9000) for _ in range(600)] + [local_packs.WRITE_BLOCK + 7, 3]
    sizes += [rnd.randint(1, 9000) for _ in range(300)]
    blobs = [rnd.randbytes(n) for n in sizes]
    store = ObjectStore(tmp_path / "store")
    with store.packs.writer(limit=2 * local_packs.WRITE_BLOCK) as writer:
        for blob in blobs:
            writer.add(key_for(OBJECTS, hash_bytes(blob)), blob)
    assert len(writer.pack_ids) >= 3  # the limit closed packs along the way
    packed = sum(os.path.getsize(p) for p in (tmp_path / "store").rglob("*.pack"))
    assert packed == sum(len(b) for b in set(blobs))
    fresh = ObjectStore(tmp_path / "store")  # read back through the indexes on disk
    for blob in blobs:
        assert fresh.read_verified(hash_bytes(blob)) == blob


def test_a_listed_file_is_read_whole_even_when_it_changed_since(tmp_path: Path) -> None:
    from gitml.store.fsutil import read_listed

    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 5000)
    assert read_listed(str(f), 5000) == b"x" * 5000
    f.write_bytes(b"y" * 3_000_000)  # grew past the listing (and past one read)
    assert read_listed(str(f), 5000) == b"y" * 3_000_000
    f.write_bytes(b"z" * 10)  # shrank
    assert read_listed(str(f), 5000) == b"z" * 10
    f.write_bytes(b"")
    assert read_listed(str(f), 0) == b""
