"""End-to-end: the core commands on real Git repositories, through `git ml`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import git, gitml


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _objects(repo: Path) -> list[Path]:
    store = repo / ".git/ml/store"
    return [p for p in store.rglob("*") if p.is_file() and p.relative_to(store).parts[0] != "tmp"]


def test_add_commit_status_checkout_cycle(repo: Path) -> None:
    _write(repo / "data/train.csv", b"a,b\n1,2\n")
    imgs = repo / "data/images"
    for i in range(20):
        _write(imgs / f"sub{i % 3}/img{i}.bin", os.urandom(100 + i))
    out = gitml(repo, "add", "data/train.csv", "data/images", "--json")
    results = {r["path"]: r for r in json.loads(out.stdout)}
    assert results["data/images"]["kind"] == "dir" and results["data/images"]["files"] == 20
    assert results["data/train.csv"]["size"] == 8
    staged = git(repo, "diff", "--cached", "--name-only").stdout.split()
    assert {"data/train.csv.gitml", "data/images.gitml", "data/.gitignore"} <= set(staged)
    assert "data/train.csv" not in staged
    ignore = (repo / "data/.gitignore").read_text().splitlines()
    assert "/train.csv" in ignore and "/images" in ignore
    git(repo, "commit", "-q", "-m", "data v1")
    # the real files are ignored by git
    assert git(repo, "status", "--porcelain").stdout == ""

    st = json.loads(gitml(repo, "status", "--json").stdout)
    assert {a["path"]: a["state"] for a in st["artifacts"]} == {
        "data/images": "clean", "data/train.csv": "clean"}

    (repo / "data/train.csv").write_bytes(b"a,b\n1,3\n")
    (imgs / "sub0/img0.bin").unlink()
    _write(imgs / "new.bin", b"new")
    st = json.loads(gitml(repo, "status", "--json").stdout)
    states = {a["path"]: a for a in st["artifacts"]}
    assert states["data/train.csv"]["state"] == "modified"
    assert states["data/images"]["state"] == "modified"
    assert states["data/images"]["changes"]["deleted"] == ["sub0/img0.bin"]
    assert states["data/images"]["changes"]["added"] == ["new.bin"]
    assert gitml(repo, "status", "--exit-code", check=False).returncode == 1

    # checkout never overwrites unsaved work without --force, and says what it kept
    res = gitml(repo, "checkout", check=False)
    assert "kept data/train.csv" in res.stderr
    assert (repo / "data/train.csv").read_bytes() == b"a,b\n1,3\n"
    assert (imgs / "new.bin").exists()
    gitml(repo, "checkout", "--force")
    assert (repo / "data/train.csv").read_bytes() == b"a,b\n1,2\n"
    assert (imgs / "sub0/img0.bin").exists() and not (imgs / "new.bin").exists()
    assert gitml(repo, "status", "--exit-code").returncode == 0


def test_saved_versions_switch_with_git_checkout(repo: Path) -> None:
    gitml(repo, "install")
    _write(repo / "model.bin", b"v1" * 1000)
    gitml(repo, "add", "model.bin")
    git(repo, "commit", "-q", "-m", "v1")
    _write(repo / "model.bin", b"v2" * 1000)
    gitml(repo, "add", "model.bin")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "checkout", "-q", "HEAD~1")  # post-checkout hook materialises v1
    assert (repo / "model.bin").read_bytes() == b"v1" * 1000
    git(repo, "checkout", "-q", "main")
    assert (repo / "model.bin").read_bytes() == b"v2" * 1000


def test_large_file_is_chunked_and_versions_share_chunks(repo: Path) -> None:
    data = os.urandom(20 * 1024 * 1024)
    _write(repo / "big.bin", data)
    first = json.loads(gitml(repo, "add", "big.bin", "--json").stdout)[0]
    assert first["new_bytes"] == len(data)
    _write(repo / "big.bin", data[:10_000_000] + b"inserted" * 10 + data[10_000_000:])
    second = json.loads(gitml(repo, "add", "big.bin", "--json").stdout)[0]
    assert second["oid"] != first["oid"]
    assert second["new_bytes"] < 0.35 * len(data), second  # only chunks near the edit are new
    (repo / "big.bin").unlink()
    gitml(repo, "checkout")
    assert (repo / "big.bin").read_bytes() == data[:10_000_000] + b"inserted" * 10 + data[10_000_000:]


def test_readd_unchanged_uses_stat_cache_and_store_is_read_only(repo: Path) -> None:
    _write(repo / "d/a.txt", b"hello")
    gitml(repo, "add", "d")
    again = json.loads(gitml(repo, "add", "d", "--json").stdout)[0]
    assert again["changed"] is False and again["new_bytes"] == 0
    objs = _objects(repo)
    assert objs and all((p.stat().st_mode & 0o222) == 0 for p in objs)


def test_subfolder_and_paths_relative_to_cwd(repo: Path) -> None:
    _write(repo / "sub/deep/x.bin", b"x")
    gitml(repo / "sub", "add", "deep/x.bin")
    assert (repo / "sub/deep/x.bin.gitml").is_file()
    assert "/x.bin" in (repo / "sub/deep/.gitignore").read_text()


def test_worktree_shares_the_store(repo: Path, tmp_path: Path) -> None:
    _write(repo / "m.bin", b"model")
    gitml(repo, "add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(wt), "-b", "other")
    gitml(wt, "checkout")
    assert (wt / "m.bin").read_bytes() == b"model"
    assert not (wt / ".git").is_dir()  # a linked worktree: the store lives in the common dir


# -- bad input: one line, exit 1, never a traceback -----------------------------------------
def _assert_clean_error(proc, code: int = 1) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gitml: error:"), proc.stderr
    return lines[0]


def test_corrupt_pointer_is_reported(repo: Path) -> None:
    _write(repo / "a.bin", b"a")
    gitml(repo, "add", "a.bin")
    (repo / "a.bin.gitml").write_text("version 1\nkind file\noid nothex\nsize 1\n")
    st = json.loads(gitml(repo, "status", "--json").stdout)
    assert st["artifacts"][0]["state"] == "invalid-pointer"
    msg = _assert_clean_error(gitml(repo, "checkout", check=False))
    assert "a.bin.gitml" in msg and "invalid oid" in msg


def test_missing_object_without_remote(repo: Path) -> None:
    _write(repo / "a.bin", b"abc")
    gitml(repo, "add", "a.bin")
    for p in _objects(repo):
        p.chmod(0o644)
        p.unlink()
    (repo / "a.bin").unlink()
    proc = gitml(repo, "checkout", check=False)
    assert proc.returncode == 1 and "git ml pull" in proc.stderr and "Traceback" not in proc.stderr
    st = json.loads(gitml(repo, "status", "--json").stdout)
    assert st["artifacts"][0]["state"] == "not-in-store"


def test_bad_add_targets(repo: Path, tmp_path: Path) -> None:
    assert "no such file" in _assert_clean_error(gitml(repo, "add", "nope.bin", check=False))
    assert "tracked by Git" in _assert_clean_error(gitml(repo, "add", "README.md", check=False))
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"o")
    assert "outside the repository" in _assert_clean_error(gitml(repo, "add", str(outside), check=False))
    (repo / "d").mkdir()
    (repo / "d/link").symlink_to(outside)
    assert "outside the repository" in _assert_clean_error(gitml(repo, "add", "d", check=False))
    _write(repo / "dd/inner.bin", b"i")
    gitml(repo, "add", "dd")
    assert "inside the artifact dd" in _assert_clean_error(gitml(repo, "add", "dd/inner.bin", check=False))


def test_malformed_config_and_not_a_repo(repo: Path, tmp_path: Path) -> None:
    (repo / ".gitml/config.toml").write_text("[remote.origin\nurl = 3")
    msg = _assert_clean_error(gitml(repo, "remote", "list", check=False))
    assert "malformed TOML" in msg
    plain = tmp_path / "plain"
    plain.mkdir()
    msg = _assert_clean_error(gitml(plain, "status", check=False))
    assert "not a Git repository" in msg
    git(plain, "init", "-q")
    msg = _assert_clean_error(gitml(plain, "status", check=False))
    assert "git ml init" in msg


def test_usage_error_exit_code_two(repo: Path) -> None:
    proc = gitml(repo, "add", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_read_only_store_fails_cleanly(repo: Path) -> None:
    if os.geteuid() == 0:
        # root ignores permission bits; simulate with a file where the store's folder must go
        store = repo / ".git/ml/store"
        import shutil

        shutil.rmtree(store)
        store.write_text("not a folder")
    else:
        (repo / ".git/ml/store").chmod(0o555)
    _write(repo / "a.bin", b"abc")
    proc = gitml(repo, "add", "a.bin", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "store" in proc.stderr
    assert not (repo / "a.bin.gitml").exists()  # nothing half-done in the work tree


def test_hardlink_checkout_protects_the_store(repo: Path) -> None:
    _write(repo / "w.bin", b"weights" * 100)
    gitml(repo, "add", "w.bin")
    (repo / "w.bin").unlink()
    gitml(repo, "checkout", "--link", "hardlink")
    st = (repo / "w.bin").stat()
    assert st.st_nlink == 2 and (st.st_mode & 0o222) == 0  # shared with the store, read-only
    assert gitml(repo, "status", "--exit-code").returncode == 0
    gitml(repo, "fsck")


def test_materialize_gives_a_verified_local_path(repo: Path) -> None:
    import subprocess
    import sys

    data = os.urandom(9 * 1024 * 1024)  # chunked
    _write(repo / "big.bin", data)
    gitml(repo, "add", "big.bin")
    git(repo, "commit", "-q", "-m", "big")
    code = "import gitml; p = gitml.materialize('big.bin', rev='HEAD'); print(p)"
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).read_bytes() == data
    bad = subprocess.run([sys.executable, "-c", "import gitml; gitml.read_bytes('nope.bin')"],
                         cwd=repo, capture_output=True, text=True)
    assert "is not a gitml artifact" in bad.stderr


def test_api_reads_the_index(repo: Path) -> None:
    import subprocess
    import sys

    _write(repo / "s.bin", b"staged")
    gitml(repo, "add", "s.bin")
    _write(repo / "s.bin", b"edited, not added")
    code = "import gitml; print(gitml.read_bytes('s.bin', rev=':').decode())"
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert out.stdout.strip() == "staged", out.stderr


def test_gate_commands_without_declared_models(repo: Path) -> None:
    proc = gitml(repo, "check", check=False)
    msg = _assert_clean_error(proc)
    assert "no models are declared" in msg and "[models.NAME]" in msg
