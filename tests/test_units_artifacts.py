"""Unit tests (in process, no `git ml` subprocess per step) for the artifact layer: the
selector, worktree helpers, gc's temp sweep and fsck verdicts, the API, the config and
the stat cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gitml.artifacts import api, gc, select, worktree
from gitml.config import Config
from gitml.errors import ConfigError, GitMLError, UsageError
from gitml.layout import is_temp_name, owner_is_gone, temp_name, temp_owner
from gitml.repo import MLRepo
from gitml.store.stat_cache import RACY_MARGIN_NS, StatCache
from tests.support.store import chunk_paths, flip_byte, pointer_oid


# select -------------------------------------------------------------------------------
def test_select_picks_named_contained_and_containing_artifacts() -> None:
    arts = ["data/images", "data/train.csv", "models/m.skops"]
    assert select.select(arts, None) == arts
    assert select.select(arts, ["data"]) == ["data/images", "data/train.csv"]
    assert select.select(arts, ["data/images/cat.png"]) == ["data/images"]
    assert select.select(arts, ["models/m.skops.gitml"]) == ["models/m.skops"]
    assert select.select(arts, [""]) == arts
    with pytest.raises(UsageError, match="nosuch"):
        select.select(arts, ["data/train.csv", "nosuch"])
    assert not select.matches("data/images", "data/imagesX")


# layout ---------------------------------------------------------------------------------
def test_temp_names_say_whose_they_are() -> None:
    name = temp_name("weights.bin")
    assert is_temp_name(name) and temp_owner(name) == os.getpid()
    assert not owner_is_gone(name)  # we are alive
    dead = name.replace(f".{os.getpid()}.", ".999999999.")
    assert owner_is_gone(dead)
    assert not is_temp_name("weights.bin") and temp_owner("x.incomplete") is None


# worktree helpers ------------------------------------------------------------------------
def test_ignore_pattern_escapes_what_git_would_read_as_syntax() -> None:
    assert worktree.ignore_pattern("a*b?[c]") == "/a\\*b\\?\\[c]"
    assert worktree.ignore_pattern("trail  ") == "/trail\\ \\ "
    assert worktree.ignore_pattern("#x") == "/#x"  # not at line start: no comment
    with pytest.raises(GitMLError, match="line breaks"):
        worktree.check_name("a\nb")


def test_pointer_size_problem_and_status(repo: Path) -> None:
    (repo / "d").mkdir()
    (repo / "d/a.txt").write_text("abc")
    ml = MLRepo.discover(repo)
    worktree.add(ml, [repo / "d"])
    p = worktree.worktree_pointer(ml, "d")
    assert p is not None and worktree.pointer_size_problem(ml, p) is None
    from dataclasses import replace

    assert "files" in (worktree.pointer_size_problem(ml, replace(p, files=2)) or "")
    assert "size 9" in (worktree.pointer_size_problem(ml, replace(p, size=9)) or "")
    assert [e.state for e in worktree.status(ml)] == ["clean"]


def test_checkout_result_names_damage_and_records_no_id_for_it(repo: Path) -> None:
    (repo / "f.bin").write_bytes(os.urandom(5000))
    ml = MLRepo.discover(repo)
    worktree.add(ml, [repo / "f.bin"])
    oid = pointer_oid(repo, "f.bin")
    flip_byte(ml.store.object_path(oid))
    (repo / "f.bin").unlink()
    res = worktree.checkout(ml, fetch=False)
    assert res.damaged == {"f.bin": oid} and res.restored == []
    err = res.damage_error()
    assert err is not None and "fetch --repair" in (err.hint or "")
    assert not (repo / "f.bin").exists()


# gc and fsck ------------------------------------------------------------------------------
def test_gc_sweeps_temp_files_of_dead_processes_and_old_ones(repo: Path) -> None:
    ml = MLRepo.discover(repo)
    tmp = ml.store.tmp_dir
    tmp.mkdir(parents=True, exist_ok=True)
    dead = tmp / temp_name("x").replace(f".{os.getpid()}.", ".999999999.")
    mine = tmp / temp_name("y")
    dead.write_bytes(b"partial")
    mine.write_bytes(b"being written")
    gc.gc_local(ml, dry_run=False)
    assert not dead.exists() and mine.exists()
    old = time.time() - gc.STALE_TMP_SECONDS - 10
    os.utime(mine, (old, old))
    gc.gc_local(ml, dry_run=False)
    assert not mine.exists()


def test_fsck_tells_incomplete_from_damaged(repo: Path) -> None:
    (repo / "big.bin").write_bytes(os.urandom(9 << 20))
    (repo / "small.bin").write_bytes(os.urandom(100))
    ml = MLRepo.discover(repo)
    worktree.add(ml, [repo / "big.bin", repo / "small.bin"])
    chunk_paths(repo, pointer_oid(repo, "big.bin"))[0].unlink()
    flip_byte(ml.store.object_path(pointer_oid(repo, "small.bin")))
    res = gc.fsck(ml)
    assert list(res.incomplete) == [f"chunked/{pointer_oid(repo, 'big.bin')[:2]}/"
                                    f"{pointer_oid(repo, 'big.bin')[2:]}"]
    assert len(res.damaged) == 1 and "hashes to" in next(iter(res.damaged.values()))
    assert not res.ok


# api -----------------------------------------------------------------------------------------
def test_api_reads_a_member_of_a_folder_artifact_at_a_revision(repo: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import git

    monkeypatch.chdir(repo)  # the API takes paths as a user gives them

    (repo / "d").mkdir()
    (repo / "d/a.txt").write_text("one")
    ml = MLRepo.discover(repo)
    worktree.add(ml, [repo / "d"])
    git(repo, "commit", "-qm", "v1")
    (repo / "d/a.txt").write_text("two")
    worktree.add(ml, [repo / "d"])
    assert api.read_bytes("d/a.txt", rev="HEAD", repo=ml) == b"one"
    assert api.read_bytes("d/a.txt", repo=ml) == b"two"
    with pytest.raises(GitMLError, match="not in the folder artifact"):
        api.read_bytes("d/b.txt", repo=ml)
    with pytest.raises(GitMLError, match="folder artifact"):
        api.read_bytes("d", repo=ml)


def test_library_reads_do_not_change_the_allocator() -> None:
    import gitml.store.transfer as transfer

    assert transfer._arenas_capped is False  # only the fetch/pull commands cap it
    import inspect

    assert "cap_malloc_arenas" not in inspect.getsource(transfer.fetch)


# config -------------------------------------------------------------------------------------
def test_config_remembers_remotes_and_refuses_non_utf8(tmp_path: Path) -> None:
    committed, local, known = tmp_path / "c.toml", tmp_path / "l.toml", tmp_path / "k.toml"
    committed.write_text('[remote.origin]\nurl = "/r"\n[core]\nremote = "origin"\n')
    Config(committed, local, known_path=known).remotes()
    committed.write_text("")  # an older commit, before the remote was added
    cfg = Config(committed, local, known_path=known)
    assert cfg.remotes() == {"origin": {"url": "/r"}} and cfg.default_remote() == "origin"
    cfg.remove_remote("origin")
    assert Config(committed, local, known_path=known).remotes() == {}
    committed.write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        Config(committed, local)


def test_config_recalls_remotes_committed_on_other_branches(tmp_path: Path) -> None:
    committed, local, known = tmp_path / "c.toml", tmp_path / "l.toml", tmp_path / "k.toml"
    branch = b'[remote.s3]\nurl = "s3://b/p"\n[core]\nremote = "s3"\n'
    cfg = Config(committed, local, known_path=known, history=lambda: [branch])
    assert cfg.default_remote() == "s3" and "s3" in cfg.remotes()


def test_config_edits_reread_the_file_under_the_lock(tmp_path: Path) -> None:
    committed, local = tmp_path / "c.toml", tmp_path / "l.toml"
    a = Config(committed, local)
    b = Config(committed, local)  # loaded before a's edit
    a.add_remote("one", "/1", default=False, local=False)
    b.add_remote("two", "/2", default=False, local=False)
    assert set(Config(committed, local).remotes()) == {"one", "two"}


# stat cache ------------------------------------------------------------------------------
def test_stat_cache_trusts_only_entries_older_than_the_racy_window(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "cache.sqlite")
    f = tmp_path / "f"
    f.write_text("x")
    st = f.stat()
    cache.record_many([("f", st, "a" * 32)])
    assert cache.lookup("f", st) is None  # just modified: racy
    cache.record_many([("f", st, "a" * 32)], written_by_us=True)
    assert cache.lookup("f", st) == "a" * 32
    f.write_text("y")
    assert cache.lookup("f", f.stat()) is None
    assert RACY_MARGIN_NS > 0


def test_stat_cache_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    cache = StatCache(tmp_path / "dir.sqlite")
    with pytest.raises(GitMLError, match="cannot open the stat cache"):
        cache.lookup("f", os.stat(tmp_path))
