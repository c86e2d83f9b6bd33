"""A full disk mid-add: a clear error, no pointer, nothing partial in the store."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import gitml


@pytest.fixture
def tiny_store(repo: Path, tmp_path: Path) -> Iterator[Path]:
    """The repo's gitml folder on a 3 MiB tmpfs (needs root and mount rights; else skipped)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        ml = repo / ".git/ml"
        if ml.exists():
            import shutil

            shutil.rmtree(ml)
        ml.symlink_to(mnt)
        yield repo
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("size_mib", [4, 12])  # one whole object; chunks from the writer thread
def test_disk_full_during_add(tiny_store: Path, size_mib: int) -> None:
    repo = tiny_store
    (repo / "big.bin").write_bytes(os.urandom(size_mib << 20))
    proc = gitml(repo, "add", "big.bin", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "no space left on device" in proc.stderr and "free some space" in proc.stderr
    assert not (repo / "big.bin.gitml").exists()
    report = json.loads(gitml(repo, "fsck", "--json").stdout)
    assert report["ok"] is True and not report["damaged"]  # no partial object under a real name
    leftovers = [p for p in (repo / ".git/ml/store").rglob("*.incomplete")]
    assert leftovers == []
