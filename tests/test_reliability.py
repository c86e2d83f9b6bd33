"""Issue 9: damaged or half-written bytes never reach a work tree, a remote or a commit;
shared files survive concurrency; bad input gets a one-line error. One test per bug,
each failing on the code before its fix."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.support.store import (
    chunk_paths,
    flip_byte,
    object_path,
    pointer_oid,
    temp_leftovers,
    tree_member_oid,
    truncate,
)


def _with_remote(repo: Path, tmp_path: Path) -> Path:
    remote = tmp_path / "remote"
    gitml(repo, "remote", "add", "origin", str(remote), "--default")
    return remote


# 1. checkout verifies what it writes --------------------------------------------------
def test_checkout_refuses_a_damaged_object_and_fetch_repair_restores_it(repo: Path, tmp_path: Path) -> None:
    data = os.urandom(20_000)
    (repo / "f.bin").write_bytes(data)
    _with_remote(repo, tmp_path)
    gitml(repo, "add", "f.bin")
    gitml(repo, "push")
    flip_byte(object_path(repo, pointer_oid(repo, "f.bin")), 100)
    (repo / "f.bin").unlink()
    proc = gitml(repo, "checkout", "--force", check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "f.bin" in err[0] and pointer_oid(repo, "f.bin") in err[0]
    assert "git ml fetch --repair" in err[0]
    assert not (repo / "f.bin").exists()  # no wrong bytes written
    assert "missing: f.bin" in gitml(repo, "status").stdout  # not "all clean"
    out = gitml(repo, "fetch", "--repair").stdout
    assert "replaced 1 damaged local objects" in out
    gitml(repo, "checkout")
    assert (repo / "f.bin").read_bytes() == data


def test_checkout_names_the_damaged_member_of_a_folder_and_a_truncated_chunk(repo: Path) -> None:
    (repo / "d").mkdir()
    (repo / "d/good.txt").write_text("good\n")
    (repo / "d/bad.txt").write_text("soon damaged\n")
    (repo / "big.bin").write_bytes(os.urandom(9 << 20))  # chunked
    gitml(repo, "add", "d", "big.bin")
    flip_byte(object_path(repo, tree_member_oid(repo, pointer_oid(repo, "d"), "bad.txt")))
    truncate(chunk_paths(repo, pointer_oid(repo, "big.bin"))[1], 1000)
    (repo / "d/bad.txt").unlink()
    (repo / "big.bin").unlink()
    proc = gitml(repo, "checkout", check=False)
    assert proc.returncode == 1
    assert "d/bad.txt" in proc.stderr or "big.bin" in proc.stderr
    assert "and 1 more" in proc.stderr
    assert not (repo / "d/bad.txt").exists() and not (repo / "big.bin").exists()
    report = json.loads(gitml(repo, "checkout", "--json", check=False).stdout)
    assert set(report["damaged"]) == {"d/bad.txt", "big.bin"}
    status = gitml(repo, "status").stdout
    assert "all clean" not in status


# 2. push verifies what it sends; --verify-remote repairs the remote ----------------------
def test_push_refuses_a_damaged_local_object(repo: Path, tmp_path: Path) -> None:
    remote = _with_remote(repo, tmp_path)
    (repo / "f.bin").write_bytes(os.urandom(5000))
    gitml(repo, "add", "f.bin")
    oid = pointer_oid(repo, "f.bin")
    flip_byte(object_path(repo, oid))
    proc = gitml(repo, "push", check=False)
    assert proc.returncode == 1 and "damaged" in proc.stderr and "fetch --repair" in proc.stderr
    assert not any(remote.rglob(oid[2:]))
    assert not [p for p in remote.rglob("*.pack")]


@pytest.mark.parametrize("where", ["loose", "pack"])
def test_push_verify_remote_replaces_damaged_remote_copies(repo: Path, tmp_path: Path, where: str) -> None:
    remote = _with_remote(repo, tmp_path)
    if where == "loose":
        gitml(repo, "remote", "modify", "origin", "pack_mib", "0")
    (repo / "f.bin").write_bytes(b"precious " * 1000)
    (repo / "g.bin").write_bytes(b"another " * 1000)  # two objects: they go up as a pack
    gitml(repo, "add", "f.bin", "g.bin")
    gitml(repo, "push")
    target = next(remote.rglob("*.pack")) if where == "pack" else next((remote / "objects").rglob("*"))
    while target.is_dir():
        target = next(target.iterdir())
    flip_byte(target, 3)
    assert gitml(repo, "fsck", "--remote", check=False).returncode == 1
    out = gitml(repo, "push", "--verify-remote").stdout
    assert "replaced 1 damaged objects" in out
    assert "every object intact" in gitml(repo, "fsck", "--remote").stdout


# 3. an interrupted pull is incomplete, not damaged ----------------------------------------
def test_fsck_says_incomplete_when_only_chunks_are_missing(repo: Path) -> None:
    (repo / "big.bin").write_bytes(os.urandom(9 << 20))
    gitml(repo, "add", "big.bin")
    chunk_paths(repo, pointer_oid(repo, "big.bin"))[0].unlink()
    proc = gitml(repo, "fsck", check=False)
    assert proc.returncode == 1
    assert "incomplete: chunked/" in proc.stderr and "git ml pull" in proc.stderr
    assert "damaged" not in proc.stderr


# 4. a pointer whose size is wrong is reported --------------------------------------------
def test_pointer_with_a_wrong_size_is_reported(repo: Path) -> None:
    (repo / "f.txt").write_text("twelve bytes")
    gitml(repo, "add", "f.txt")
    pointer = repo / "f.txt.gitml"
    pointer.write_text(pointer.read_text().replace("size 12", "size 13"))
    status = gitml(repo, "status")
    assert "invalid-pointer: f.txt" in status.stdout and "size 13" in status.stdout
    proc = gitml(repo, "fsck", check=False)
    assert proc.returncode == 1 and "size 13" in proc.stderr


# 5. concurrent adds in one folder keep every ignore line ----------------------------------
def test_concurrent_adds_in_one_folder_keep_every_gitignore_line(repo: Path) -> None:
    names = [f"f{i}.bin" for i in range(6)]
    for n in names:
        (repo / n).write_bytes(os.urandom(1000))
    procs = [subprocess.Popen(["git", "ml", "add", n], cwd=repo, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for n in names]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else ""
    lines = (repo / ".gitignore").read_text().splitlines()
    assert sorted(lines) == sorted(f"/{n}" for n in names)
    untracked = git(repo, "status", "--porcelain", "--untracked-files=all").stdout
    assert ".bin\n" not in untracked.replace(".bin.gitml", "")


# 6. a killed checkout leaves nothing in the work tree --------------------------------------
def test_checkout_writes_its_temp_files_in_the_store(repo: Path) -> None:
    (repo / "f.bin").write_bytes(os.urandom(3 << 20))
    gitml(repo, "add", "f.bin")
    (repo / "f.bin").unlink()
    # stop the copy half way: the temp file must be in the store's tmp folder
    code = (
        "import os\n"
        "from gitml.repo import MLRepo\n"
        "from gitml.store import objects\n"
        "objects._copy_stream = lambda src, dst: os._exit(9)  # killed mid-copy\n"
        "objects._try_clone = lambda s, d: False\n"
        "from gitml.artifacts import worktree\n"
        "worktree.checkout(MLRepo.discover(), fetch=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert [p for p in repo.iterdir() if p.name.endswith(".incomplete")] == []
    assert len(temp_leftovers(repo / ".git/ml/store/tmp")) == 1  # where the kill left it
    gitml(repo, "checkout")
    assert (repo / "f.bin").stat().st_size == 3 << 20


def test_gc_sweeps_stale_temp_files_on_a_folder_remote(repo: Path, tmp_path: Path) -> None:
    remote = _with_remote(repo, tmp_path)
    (repo / "f.bin").write_bytes(os.urandom(1000))
    gitml(repo, "add", "f.bin")
    gitml(repo, "push")
    stale = remote / "objects" / ".tmp-gitml-abc.4242.1.incomplete"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    fresh = remote / "objects" / ".tmp-gitml-def.4243.1.incomplete"
    fresh.write_bytes(b"being written")
    out = json.loads(gitml(repo, "gc", "--remote", "--force", "--json").stdout)
    assert out["temp_removed"] == 1
    assert not stale.exists() and fresh.exists()


# 8. a remote stays usable on an older commit -----------------------------------------------
def test_checking_out_a_commit_older_than_the_remote_keeps_it(repo: Path, tmp_path: Path) -> None:
    (repo / "a.txt").write_text("first\n")
    gitml(repo, "add", "a.txt")
    git(repo, "commit", "-qm", "data before the remote")
    _with_remote(repo, tmp_path)
    git(repo, "commit", "-qam", "remote")
    gitml(repo, "push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    gitml(clone, "pull")
    git(clone, "checkout", "-q", "HEAD~1")
    assert "remote" not in (clone / ".gitml/config.toml").read_text()
    (clone / "a.txt").unlink()
    gitml(clone, "pull")
    assert (clone / "a.txt").read_text() == "first\n"
    # a fresh clone that never ran gitml on the branch tip finds it in the branch's config
    clone2 = tmp_path / "clone2"
    git(tmp_path, "clone", "-q", str(repo), str(clone2))
    git(clone2, "checkout", "-q", "HEAD~1")
    gitml(clone2, "pull")
    assert (clone2 / "a.txt").read_text() == "first\n"


# 9. the known-keys index is keyed by what the remote is -------------------------------------
def test_a_remote_url_changed_through_git_gets_the_objects(repo: Path, tmp_path: Path) -> None:
    _with_remote(repo, tmp_path)
    (repo / "a.txt").write_text("content\n")
    gitml(repo, "add", "a.txt")
    gitml(repo, "push")
    other = tmp_path / "other"
    cfg = repo / ".gitml/config.toml"
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "remote"), str(other)))
    out = gitml(repo, "push").stdout
    assert "pushed 1 objects" in out
    assert any(other.rglob("*"))


def test_remote_modify_url_resolves_like_add_and_empty_urls_are_refused(repo: Path, tmp_path: Path) -> None:
    _with_remote(repo, tmp_path)
    sub = repo / "sub"
    sub.mkdir()
    gitml(sub, "remote", "modify", "origin", "url", "../../elsewhere")
    assert str(tmp_path / "elsewhere") in (repo / ".gitml/config.toml").read_text()
    proc = gitml(repo, "remote", "add", "empty", "", check=False)
    assert proc.returncode == 2 and "empty" in proc.stderr
    assert "empty" not in (repo / ".gitml/config.toml").read_text()


# 10-12. bad input -----------------------------------------------------------------------------
def test_add_refuses_a_fifo_without_hanging(repo: Path) -> None:
    os.mkfifo(repo / "pipe")
    proc = subprocess.run(["git", "ml", "add", "pipe"], cwd=repo, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1 and "named pipe" in proc.stderr
    (repo / "d").mkdir()
    os.mkfifo(repo / "d/pipe")
    proc = subprocess.run(["git", "ml", "add", "d"], cwd=repo, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1 and "named pipe" in proc.stderr


def test_file_names_with_a_newline_are_refused_and_trailing_spaces_escaped(repo: Path) -> None:
    (repo / "line.txt").write_text("not an artifact\n")
    (repo / "a\nline.txt").write_text("x")
    proc = gitml(repo, "add", "a\nline.txt", check=False)
    assert proc.returncode == 1 and "line breaks" in proc.stderr
    assert not (repo / ".gitignore").exists()
    (repo / "trail ").write_text("y")
    gitml(repo, "add", "trail ")
    assert git(repo, "check-ignore", "trail ", check=False).returncode == 0
    assert git(repo, "check-ignore", "trail", check=False).returncode == 1


@pytest.mark.parametrize("args, expect", [
    (["-C", "/nonexistent", "status"], "No such file"),
    (["add", "-j", "0", "x"], "at least 1"),
    (["checkout", "-j", "-2"], "at least 1"),
    (["gc", "--grace-days", "nan"], "number of days"),
    (["remote", "add", "s", "s3://"], "names no bucket"),
    (["remote", "add", "f", "ftp://x"], "unsupported URL scheme"),
    (["status", "nosuch"], "no gitml artifact"),
    (["checkout", "nosuch"], "no gitml artifact"),
])
def test_bad_arguments_get_a_one_line_error(repo: Path, args: list[str], expect: str) -> None:
    proc = gitml(repo, *args, check=False)
    assert proc.returncode in (1, 2), proc
    assert expect in proc.stderr and "internal error" not in proc.stderr


def test_bad_config_and_pointer_paths_get_a_one_line_error(repo: Path) -> None:
    (repo / "a.txt").write_text("a")
    gitml(repo, "add", "a.txt")
    gitml(repo, "remote", "add", "origin", str(repo.parent / "r"), "--default")
    gitml(repo, "remote", "modify", "origin", "pack_mib", "nan", check=False)
    cfg = repo / ".gitml/config.toml"
    text = cfg.read_text()
    cfg.write_text(text + '\n[remote.bad]\nurl = "/tmp/x"\npack_mib = "inf"\n')
    proc = gitml(repo, "push", "-r", "bad", check=False)
    assert proc.returncode == 1 and "pack_mib" in proc.stderr and "internal" not in proc.stderr
    cfg.write_bytes(text.encode() + b"\n# caf\xe9\n")
    proc = gitml(repo, "push", check=False)
    assert proc.returncode == 1 and "not UTF-8" in proc.stderr
    cfg.write_text(text)
    (repo / "a.txt.gitml").unlink()
    (repo / "a.txt.gitml").mkdir()
    proc = gitml(repo, "status", check=False)
    assert "internal error" not in proc.stderr and "a folder where" in proc.stdout + proc.stderr


def test_non_utf8_file_names_are_refused(repo: Path) -> None:
    name = b"caf\xe9.bin"
    with open(os.path.join(os.fsencode(repo), name), "wb") as f:
        f.write(b"x")
    proc = subprocess.run([b"git", b"ml", b"add", name], cwd=repo, capture_output=True)
    assert proc.returncode == 1 and b"not valid UTF-8" in proc.stderr
    (repo / "d").mkdir()
    with open(os.path.join(os.fsencode(repo / "d"), name), "wb") as f:
        f.write(b"x")
    proc = subprocess.run(["git", "ml", "add", "d"], cwd=repo, capture_output=True)
    assert proc.returncode == 1 and b"not valid UTF-8" in proc.stderr


# 13. files gitml writes follow the umask --------------------------------------------------------
def test_pointers_and_gitignore_follow_the_umask(repo: Path) -> None:
    (repo / "a.txt").write_text("a")
    gitml(repo, "add", "a.txt")
    for name in ("a.txt.gitml", ".gitignore"):
        assert stat.S_IMODE((repo / name).stat().st_mode) == 0o644, name


def test_git_ml_help_prints_the_manual(repo: Path, tmp_path: Path) -> None:
    """Git turns `git ml --help` into `man git-ml`; the wheel ships the page in
    share/man/man1 beside bin/git-ml, where man looks (an editable install has no data
    files, so the installed layout is rebuilt here)."""
    import shutil

    if shutil.which("man") is None:
        pytest.skip("no man program")
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "scripts"))
    from make_manpage import render

    page = root / "docs/man/git-ml.1"
    assert page.read_text() == render(), "run scripts/make_manpage.py"
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "share/man/man1").mkdir(parents=True)
    (prefix / "bin/git-ml").symlink_to(shutil.which("git-ml") or "")
    shutil.copy(page, prefix / "share/man/man1/git-ml.1")
    env = {**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80",
           "PATH": f"{prefix / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MANPATH", None)
    proc = subprocess.run(["git", "ml", "--help"], cwd=repo, capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "checkout" in proc.stdout and "fetch" in proc.stdout
