"""The pointer diff driver and what `git ml install` configures for it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import BIN_DIR, git, gitml


def test_install_configures_driver_and_textconv_degrades_gracefully(repo: Path) -> None:
    gitml(repo, "install")
    assert "textconv" in git(repo, "config", "diff.gitml.textconv").stdout
    assert "*.gitml diff=gitml" in (repo / ".gitattributes").read_text().splitlines()
    gitml(repo, "install")  # idempotent
    assert (repo / ".gitattributes").read_text().count("*.gitml diff=gitml") == 1

    csv = repo / "t.csv"
    csv.write_text("a,b\n1,x\n3,\n")
    gitml(repo, "add", "t.csv")
    hook = str(Path(BIN_DIR) / "git-ml-hook")
    out = subprocess.run([hook, "textconv", "t.csv.gitml"], cwd=repo, capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("# gitml pointer") and "# csv: 2 rows, 2 columns" in out
    assert "#   a: int64  (nulls=0, min=1 max=3)" in out and "b: string  (nulls=1" in out

    # content that is not in the local store: the pointer and a hint, never an error
    missing = repo / "gone.parquet.gitml"
    missing.write_text("version 1\nkind file\noid " + "ab" * 16 + "\nsize 10\n")
    p = subprocess.run([hook, "textconv", str(missing)], cwd=repo, capture_output=True, text=True)
    assert p.returncode == 0 and "not in the local store; `git ml pull`" in p.stdout
    # not a pointer at all: shown as it is
    other = repo / "notes.gitml"
    other.write_text("hello\n")
    p = subprocess.run([hook, "textconv", str(other)], cwd=repo, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "hello\n"
    # plain git diff shows the summary change
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-q", "--no-verify", "-m", "t.csv")
    csv.write_text("a,b\n1,x\n3,y\n7,z\n")
    gitml(repo, "add", "t.csv")
    diff = git(repo, "diff", "--cached", "--", "t.csv.gitml").stdout
    assert "+# csv: 3 rows, 2 columns" in diff and "-# csv: 2 rows, 2 columns" in diff
